"""Issue 26: a state file belongs to its manifest, and every manifest path follows one rule.

Two manifests with one `name` (the repo's mixed-models.yaml and .csv) merged into one state
file without a word. Now the second is refused (exit 2, the state file untouched) with the
`--output`/`--state` way out, unless `--add-to-state`. And `output.dir` is read against the
manifest's folder, as images and `jobs_csv` are; `validate` prints the real output path.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

import batchgen
from batchgen import store as st
from batchgen.cli import main
from batchgen.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(180)


def _ids(state: Path) -> set[str]:
    store = st.Store(state, readonly=True)
    try:
        return {job_id for (job_id,) in store.db.execute("SELECT id FROM jobs")}
    finally:
        store.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def repo_manifests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "manifests"


def test_a_second_manifest_of_the_same_name_is_refused_untouched_unless_added(
    repo_manifests: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    yaml, csv = "manifests/mixed-models.yaml", "manifests/mixed-models.csv"
    state = Path("output/mixed-models/batchgen.db")
    assert main(["run", yaml, "--sandbox", "-q"]) == 0
    before, jobs = _digest(state), _ids(state)
    capsys.readouterr()
    assert main(["run", csv, "--sandbox", "-q"]) == 2
    err = capsys.readouterr().err
    assert "belongs to manifests/mixed-models.yaml" in err and "mixed-models.csv" in err
    assert "--output" in err and "--state" in err and "--add-to-state" in err
    assert _digest(state) == before  # untouched
    # Its own output: fine.
    assert main(["run", csv, "--sandbox", "-q", "--output", "output/csv"]) == 0
    # On purpose: its jobs join the first's state file, and later runs of either are fine.
    assert main(["run", csv, "--sandbox", "-q", "--add-to-state"]) == 0
    assert _ids(state) > jobs
    assert main(["run", csv, "--sandbox", "-q"]) == 0
    assert main(["run", yaml, "--sandbox", "-q"]) == 0


def test_the_python_api_refuses_too_and_takes_add_to_state(repo_manifests: Path) -> None:
    batchgen.run("manifests/mixed-models.yaml", sandbox=True)
    with pytest.raises(UsageError, match="--add-to-state"):
        batchgen.run("manifests/mixed-models.csv", sandbox=True)
    outcome = batchgen.run("manifests/mixed-models.csv", sandbox=True, add_to_state=True)
    assert outcome.exit_code == 0


def test_a_moved_manifest_takes_its_state_file_over(
    repo_manifests: Path, tmp_path: Path
) -> None:
    assert main(["run", "manifests/example.yaml", "--sandbox", "-q"]) == 0
    shutil.move(repo_manifests / "example.yaml", repo_manifests / "demo.yaml")
    assert main(["run", "manifests/demo.yaml", "--sandbox", "-q"]) == 0


def test_output_dir_is_read_against_the_manifest_folder_and_validate_prints_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    text = (ROOT / "manifests" / "example.yaml").read_text()
    text = text.replace("output:\n", "output:\n  dir: results\n", 1)
    (folder / "m.yaml").write_text(text)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["validate", "../project/m.yaml"]) == 0
    out = capsys.readouterr().out
    assert "  output:      ../project/results/{index:03d}-{id}.mp4" in out, out
    assert main(["run", "../project/m.yaml", "--sandbox", "-q"]) == 0
    assert (folder / "results" / "batchgen.db").exists()
    assert not (elsewhere / "results").exists()
    # Without output.dir: output/<name> here, as validate says.
    (folder / "n.yaml").write_text((ROOT / "manifests" / "example.yaml").read_text())
    assert main(["validate", "../project/n.yaml"]) == 0
    assert "  output:      output/demo/{index:03d}-{id}.mp4" in capsys.readouterr().out


def test_a_state_file_where_output_dir_used_to_point_is_not_abandoned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, output.dir was read against the current folder: a batch there is not silently
    left for a new, empty state file (paying again); the error names --output."""
    folder = tmp_path / "project"
    folder.mkdir()
    text = (ROOT / "manifests" / "example.yaml").read_text()
    (folder / "m.yaml").write_text(text.replace("output:\n", "output:\n  dir: results\n", 1))
    monkeypatch.chdir(tmp_path)
    assert main(["run", "project/m.yaml", "--sandbox", "-q", "--output", "results"]) == 0
    capsys.readouterr()
    assert main(["run", "project/m.yaml", "--sandbox", "-q"]) == 2
    err = capsys.readouterr().err
    assert "--output results" in err and "project/results" in err, err
    assert not (folder / "results").exists()
