"""`status`, `retry` and `cancel` on a state file holding every kind of job."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest

from batchgen import store as st
from batchgen.cli import main
from tests.enginekit import body
from tests.opskit import env

NOW = time.time()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """One job per state (and more failures), plus two recorded runs."""
    path = tmp_path / "batchgen.db"
    s = st.Store(path)
    ids = ["pend", "subm", "infl", "soon", "later", "done", "cv1", "cv2", "img", "amb", "exp",
           "canc", "orph"]  # fmt: skip
    s.jobs.sync((i, "kling-2-1", body(n)) for n, i in enumerate(ids))
    seq = {i: s.jobs.get(i).seq for i in ids}
    for i in ids[1:]:
        s.moves.mark_submitting(seq[i])
    for i in ids[2:]:
        if i not in ("amb", "orph"):
            s.moves.mark_in_flight(seq[i], f"task_{i}")
    s.moves.mark_ambiguous(seq["amb"], "no answer to the submit: connection reset")
    s.moves.mark_orphaned(seq["orph"], 'answered with task id "t\\x1b[2J" (escaped)')
    times = {"create_time_ms": None, "complete_time_ms": None, "cost_time_ms": None}
    s.moves.mark_succeeded(
        seq["soon"], ["https://cdn/soon.mp4"], expires_at=NOW + 5 * 3600, **times
    )
    s.moves.mark_succeeded(
        seq["later"], ["https://cdn/l.mp4"], expires_at=NOW + 10 * 86400, **times
    )
    s.moves.mark_succeeded(seq["done"], ["https://cdn/d.mp4"], expires_at=NOW + 86400, **times)
    s.moves.mark_done(seq["done"])
    s.moves.mark_succeeded(seq["exp"], ["https://cdn/e.mp4"], expires_at=NOW - 10, **times)
    s.moves.mark_expired(seq["exp"], "result URL expired: 403")
    s.moves.mark_failed(seq["cv1"], "CONTENT_VIOLATION", "Content does not meet safety guidelines")
    s.moves.mark_failed(seq["cv2"], "CONTENT_VIOLATION", "Content does not meet safety guidelines")
    s.moves.mark_failed(
        seq["img"], "INVALID_IMAGE_URL", "could not fetch https://example.com/8.jpg"
    )
    s.moves.mark_submitting(seq["pend"])  # pend goes submitting -> pending, canc gets cancelled
    s.moves.mark_not_submitted(seq["pend"])
    s.db.execute("UPDATE jobs SET state='pending', task_id=NULL WHERE id='canc'")
    s.moves.cancel([seq["canc"]])
    r1 = s.runs.start(111)
    s.runs.end(r1, 0, "finished")
    r2 = s.runs.start(222)
    s.runs.end(r2, 75, "interrupted by SIGTERM")
    s.close()
    return path


def _counts(path: Path) -> dict[str, int]:
    s = st.Store(path, readonly=True)
    try:
        return s.jobs.counts()
    finally:
        s.close()


def test_status_text_shows_every_section(state: Path, capsys) -> None:
    assert main(["status", str(state)]) == 0
    out = capsys.readouterr().out
    assert "13 jobs" in out
    for part in ("pending 1", "submitting 1", "in flight 1", "downloading 2", "done 1",
                 "failed 3", "ambiguous 1", "orphaned 1", "expired 1", "cancelled 1"):  # fmt: skip
        assert part in out, part
    cv = next(line for line in out.splitlines() if "CONTENT_VIOLATION" in line)
    assert " 2 " in cv and "e.g. cv1: Content does not meet safety guidelines" in cv
    img = next(line for line in out.splitlines() if "INVALID_IMAGE_URL" in line)
    assert " 1 " in img and "img: could not fetch" in img
    assert "amb  no answer to the submit: connection reset" in out
    assert 'orph  answered with task id "t\\x1b[2J" (escaped)' in out
    assert "\x1b" not in out and "retry STATE --orphaned` submits them again" in out
    expiring = out.split("expiring within 48 h: ")[1]
    assert expiring.startswith("1 ") and "soon  expires" in expiring and "later" not in expiring
    last = out.splitlines()[-1]
    assert last.startswith("last run: started ")
    assert last.endswith(", exit 75 (interrupted by SIGTERM)") and ", ended " in last
    assert "running now" not in out


def test_status_json(state: Path, capsys) -> None:
    assert main(["status", str(state), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["total"] == 13
    assert info["counts"] == {"pending": 1, "submitting": 1, "in_flight": 1, "succeeded": 2,
                              "done": 1, "failed": 3, "ambiguous": 1, "orphaned": 1,
                              "expired": 1, "cancelled": 1}  # fmt: skip
    assert [(f["code"], f["count"], f["example_id"]) for f in info["failures"]] == [
        ("CONTENT_VIOLATION", 2, "cv1"),
        ("INVALID_IMAGE_URL", 1, "img"),
    ]
    assert [a["id"] for a in info["ambiguous"]] == ["amb"]  # never the orphaned job
    assert [(a["id"], a["note"]) for a in info["orphaned"]] == [
        ("orph", 'answered with task id "t\\x1b[2J" (escaped)')
    ]
    assert [e["id"] for e in info["expiring"]] == ["soon"]
    assert 4 * 3600 < info["expiring"][0]["expires_in_s"] <= 5 * 3600
    run = info["last_run"]
    assert (run["pid"], run["exit_code"], run["how"], run["outcome"]) == (
        222,
        75,
        "interrupted by SIGTERM",
        "ended",
    )
    assert info["running"] is None and info["runs"] == 2


def test_status_of_a_missing_file_is_a_usage_error(tmp_path: Path, capsys) -> None:
    assert main(["status", str(tmp_path / "nope.db")]) == 2
    assert "no such state file" in capsys.readouterr().err


def test_retry_by_code_then_failed_then_ambiguous_then_ids(state: Path, capsys) -> None:
    assert main(["retry", str(state), "--codes", "CONTENT_VIOLATION"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 job(s) put back in the queue (failed 2)")
    c = _counts(state)
    assert (c["pending"], c["failed"]) == (3, 1)
    s = st.Store(state, readonly=True)
    row = s.db.execute("SELECT task_id, fail_code FROM jobs WHERE id='cv1'").fetchone()
    s.close()
    assert row == (None, None)

    assert main(["retry", str(state), "--failed", "--dry-run"]) == 0
    assert "would put 1 job(s)" in capsys.readouterr().out
    assert _counts(state)["failed"] == 1

    assert main(["retry", str(state), "--ambiguous"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("1 job(s) put back") and "pay for that job twice" in captured.err
    assert _counts(state)["orphaned"] == 1  # a task surely exists: --ambiguous leaves it

    assert main(["retry", str(state), "--orphaned"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("1 job(s) put back in the queue (orphaned 1)")
    assert "were orphaned: their first task exists" in captured.err

    assert main(["retry", str(state), "--ids", "exp,done,ghost,canc"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("2 job(s) put back in the queue (expired 1, cancelled 1)")
    assert "done is done: left as it is" in captured.err
    assert "1 unknown id(s): ghost" in captured.err
    c = _counts(state)
    assert (c["pending"], c["ambiguous"], c["expired"], c["cancelled"], c["done"]) == (
        7,
        0,
        0,
        0,
        1,
    )


def test_retry_needs_a_selection(state: Path, capsys) -> None:
    assert main(["retry", str(state)]) == 2
    assert "say which jobs to retry" in capsys.readouterr().err


def test_cancel_pending_by_id_and_all(state: Path, capsys) -> None:
    assert main(["retry", str(state), "--failed"]) == 0
    capsys.readouterr()
    assert _counts(state)["pending"] == 4
    assert main(["cancel", str(state), "--ids", "cv1,infl"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("1 pending job(s) cancelled")
    assert "infl is in_flight: left as it is" in captured.err
    # tasks already created are left to finish and be downloaded
    assert "4 job(s) already submitted still run to their end" in captured.out
    assert main(["cancel", str(state)]) == 0
    assert capsys.readouterr().out.startswith("3 pending job(s) cancelled")
    c = _counts(state)
    assert (c["pending"], c["cancelled"], c["in_flight"], c["succeeded"]) == (0, 5, 1, 2)


async def test_retry_and_cancel_refuse_while_a_run_holds_the_lock(state: Path) -> None:
    hold = (
        "import sys, time; from batchgen.adapters.lock import StateLock\n"
        "with StateLock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", hold, str(state), env=env(), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"held\n"
        assert main(["retry", str(state), "--failed"]) == 4
        assert main(["cancel", str(state)]) == 4
        assert _counts(state)["failed"] == 3
    finally:
        proc.kill()
        await proc.wait()
