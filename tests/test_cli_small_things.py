"""Issue 26 friction 11, the small things: `retry --codes` in any case and an error for a
code no failed job has; `status` on a folder; `--time-scale` in the help; `report --help`
that explains its formats."""

from __future__ import annotations

import subprocess
import sys
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


def test_status_on_a_run_folder_reads_its_state_file(
    failed_state: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`batchgen status output/demo` is what a user types after `make demo`: the folder's
    batchgen.db is meant, as the run printed it. A folder without one is named as such."""
    folder = failed_state.parent
    assert failed_state.name == "batchgen.db"
    for command in ("status", "report"):
        assert main([command, str(failed_state)]) == 0
        by_file = capsys.readouterr().out
        assert main([command, str(folder)]) == 0
        assert capsys.readouterr().out == by_file
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    assert main(["status", str(empty)]) == 2
    err = capsys.readouterr().err
    assert f"{empty} is a folder with no state file (batchgen.db) in it" in err
    assert "unable to open database file" not in err


def test_a_command_on_a_run_folder_takes_the_lock_the_run_takes(
    failed_state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder given to a writing command locks the run's batchgen.db, not a lock of its own:
    otherwise `retry output/demo` could change a state file a run is using."""
    folder = failed_state.parent
    assert main(["retry", str(folder), "--failed", "--dry-run"]) == 0
    capsys.readouterr()
    hold = "import sys, time; from batchgen.adapters.lock import StateLock\n" + (
        "with StateLock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(failed_state)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert main(["retry", str(folder), "--failed"]) == 4
        assert f"process {holder.pid}" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()


def test_time_scale_is_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["run", "m.yaml"], ["resume", "s.db"]):
        text = help_of(command, capsys)
        assert "--time-scale S" in text and "with --sandbox" in text


def test_report_help_explains_its_formats(capsys: pytest.CaptureFixture[str]) -> None:
    text = " ".join(help_of(["report", "s.db"], capsys).split())
    assert "one JSON object per line" in text and "results.jsonl" in text
    assert "a header row then one row per job" in text
    assert "fail_code" in text  # the fields are named
