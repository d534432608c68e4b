"""An interrupted --sandbox run resumes against the same simulated tasks (journal.py): the
promise a new user tries first, interrupt and resume, holds in the sandbox too."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from batchgen import store as st
from batchgen.simulator import SimConfig, Simulator
from batchgen.simulator.journal import TaskJournal, journal_path
from tests.opskit import counts, finish, run_cli, spawn, wait_for_state

MANIFEST = """\
defaults:
  mode: master-text-to-video
  input:
    duration: 5
    aspect_ratio: "16:9"
jobs:
""" + "".join(
    f"  - id: clip-{i:02d}\n    prompt: a calm sea at dawn, take {i}\n" for i in range(12)
)


def _manifest(tmp: Path) -> Path:
    path = tmp / "m.yaml"
    path.write_text(MANIFEST, encoding="utf-8")
    return path


def _journal_lines(state: Path) -> list[dict]:
    return [json.loads(line) for line in journal_path(state).read_text().splitlines()]


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
async def test_an_interrupted_sandbox_run_resumes_without_losing_or_repaying(
    tmp_path: Path, how: signal.Signals
) -> None:
    out = tmp_path / "out"
    state = out / "batchgen.db"
    argv = [sys.executable, "-m", "batchgen", "run", str(_manifest(tmp_path)), "--sandbox"]
    proc = await spawn([*argv, "--output", str(out), "--quiet"])
    # Stop it once every task exists at the simulator and none has finished (the first poll is
    # 1.2 s away): a kill during a submit would rightly leave that job ambiguous.
    await wait_for_state(state, lambda c: c.get(st.IN_FLIGHT, 0) == 12, proc=proc)
    proc.send_signal(how)
    code, _, err = await finish(proc)
    assert code == (75 if how == signal.SIGINT else -signal.SIGKILL), err
    assert counts(state).get(st.DONE, 0) < 12
    first = _journal_lines(state)

    code, _, err = await run_cli(
        [sys.executable, "-m", "batchgen", "resume", str(state), "--sandbox", "--quiet"]
    )
    assert code == 0, err
    left = {k: v for k, v in counts(state).items() if v}
    assert left == {st.DONE: 12}, left  # none failed as TASK_NOT_FOUND
    lines = _journal_lines(state)
    assert lines[0]["seed"] == first[0]["seed"]
    tasks = [rec["task_id"] for rec in lines[1:]]
    assert len(tasks) == len(set(tasks)) == 12  # every job created exactly one task
    assert len(list(out.glob("*.mp4"))) == 12


async def test_a_journal_gives_a_new_simulator_the_same_tasks(tmp_path: Path) -> None:
    state = tmp_path / "batchgen.db"
    body = {"request_type": "async", "input": {"prompt": "x [sim:two_results]", "duration": 10}}
    config = SimConfig(time_scale=0.01, seed=41)
    async with Simulator(config) as first:
        journal = TaskJournal(journal_path(state))
        assert journal.load(0.01) is None
        journal.attach(first)
        task = first.create_task(body, first.now())
        journal.close()
        port = first.origin.rsplit(":", 1)[1]
        urls = task.result_urls(first.origin)
    later = TaskJournal(journal_path(state))
    header = later.load(0.01)
    assert header is not None and header["seed"] == 41 and str(header["port"]) == port
    assert TaskJournal(journal_path(state)).load(0.02) is None  # another time scale: fresh
    async with Simulator(config, port=header["port"]) as second:
        later.attach(second)
        again = second.task(task.task_id)
        assert again.result_urls(second.origin) == urls  # recorded URLs still work
        assert (again.end_s, again.pending_s, again.n_results) == (task.end_s, task.pending_s, 2)
        assert abs(again.create_ms - task.create_ms) <= 1
        assert second.expected_sha256(task.task_id) == first.expected_sha256(task.task_id)
        new = second.create_task(body, second.now())
        assert new.task_id != task.task_id  # ids go on where the journal stopped
        later.close()
    assert [rec["task_id"] for rec in _journal_lines(state)[1:]] == [task.task_id, new.task_id]
