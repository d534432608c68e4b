"""Issue 26 friction 11, the small things: `retry --codes` in any case and an error for a
code no failed job has; `status` on a folder; `--time-scale` in the help; `report --help`
that explains its formats."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchgen.cli import main
from tests.test_run_summary import write_manifest


def help_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


@pytest.fixture
def failed_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A sandbox batch of three jobs, two of them failed CONTENT_VIOLATION."""
    manifest = tmp_path / "m.yaml"
    write_manifest(manifest, 3, ok={0})
    out = tmp_path / "out"
    assert main(["run", str(manifest), "--sandbox", "--output", str(out)]) == 1
    capsys.readouterr()
    return out / "batchgen.db"


def test_retry_codes_is_case_insensitive_and_refuses_unknown_codes(
    failed_state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = str(failed_state)
    assert main(["retry", state, "--codes", "CONTENT_VIOLATON", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "no failed job has fail code CONTENT_VIOLATON" in err
    assert "CONTENT_VIOLATION (2)" in err
    assert main(["retry", state, "--codes", "content_violation", "--dry-run"]) == 0
    assert "would put 2 job(s) back in the queue" in capsys.readouterr().out


def test_status_on_a_folder_names_the_state_file(
    failed_state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = failed_state.parent
    for command in ("status", "report"):
        assert main([command, str(folder)]) == 2
        err = capsys.readouterr().err
        assert f"{folder} is a folder, not a state file; its state file is {failed_state}" in err
        assert "unable to open database file" not in err


def test_time_scale_is_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["run", "m.yaml"], ["resume", "s.db"]):
        text = help_of(command, capsys)
        assert "--time-scale S" in text and "with --sandbox" in text


def test_report_help_explains_its_formats(capsys: pytest.CaptureFixture[str]) -> None:
    text = " ".join(help_of(["report", "s.db"], capsys).split())
    assert "one JSON object per line" in text and "results.jsonl" in text
    assert "a header row then one row per job" in text
    assert "fail_code" in text  # the fields are named
