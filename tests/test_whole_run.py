"""Features that pass alone, run together: transient resubmits while every slot is taken, a
state the table refuses, forged callbacks in callback mode (issue 25)."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchgen import store as st
from batchgen.hooks import RunHooks
from batchgen.runner import execute
from batchgen.simulator import Simulator
from tests.enginekit import KEY, SCALE, body, options, prepare_state, state_rows


def text_jobs(n: int) -> list[tuple[str, str, dict]]:
    return [
        (f"job-{i:04d}", "kling-2-1", body(i, "master-text-to-video", prompt=f"prompt {i}"))
        for i in range(1, n + 1)
    ]


@pytest.mark.parametrize("seed", [3, 4, 5])
async def test_transient_resubmits_while_jobs_wait_for_a_slot_never_end_the_run(
    tmp_path: Path, seed: int
) -> None:
    """43 jobs under a cap of 40, 30 % of tasks failing with transient codes: jobs put back to
    pending while others still wait for a slot are submitted by one lifecycle only (a second
    pass of the submitter used to take a job already spawned: in_flight -> submitting, exit 2)."""
    state = prepare_state(tmp_path, text_jobs(43))
    sim_kw = {"api_keys": frozenset({KEY}), "time_scale": SCALE, "seed": seed}
    async with Simulator(**sim_kw, p_transient=0.3, p_content_violation=0.07) as sim:
        outcome = await execute(options(tmp_path, sim.base_url, max_in_flight=40))
        per_body = sim.stats()["submits_per_body"]
    assert outcome.exit_code in (0, 1), outcome
    rows = state_rows(state)
    assert {r["state"] for r in rows} <= {st.DONE, st.FAILED}, rows
    assert all(r["fail_code"] for r in rows if r["state"] == st.FAILED)
    assert per_body["max_submits_of_one_body"] <= 3  # one submit and two resubmits at most


async def test_a_move_the_table_refuses_is_logged_with_its_job_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused move is a bug to log with the job, never the end of the run: before, it left
    the task group, cancelled every other job (submits on the wire turned ambiguous) and the
    CLI said exit 2, "nothing was sent"."""
    from batchgen.errors import IllegalTransition
    from batchgen.store.moves import JobMoves

    state = prepare_state(tmp_path, text_jobs(6))
    real = JobMoves.mark_in_flight

    def refuse_one(self: JobMoves, seq: int, task_id: str) -> bool:
        if seq == 2:
            raise IllegalTransition("job 'job-0002': submitting -> in_flight (injected)")
        return real(self, seq, task_id)

    monkeypatch.setattr(JobMoves, "mark_in_flight", refuse_one)
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=1) as sim:
        outcome = await execute(options(tmp_path, sim.base_url))
    states = {r["id"]: r["state"] for r in state_rows(state)}
    assert states.pop("job-0002") == st.SUBMITTING  # as the state file had it
    assert set(states.values()) == {st.DONE}
    assert outcome.exit_code == 75  # work left: the next run judges the submit
    assert any("job-0002" in m and "a bug in batchgen" in m for m in outcome.messages)


async def test_callbacks_clear_jobs_whose_submit_answer_was_lost(tmp_path: Path) -> None:
    """Issue 25 item 5: in callback mode, a submit answered by a proxy's 502 page after the
    task was made leaves its job ambiguous only until the task's callback reaches the job's
    own URL: confirmed by status, the task becomes the job's, and its video is saved. Before,
    each such job stayed ambiguous for the user to decide (and maybe pay twice)."""

    from tests.enginekit import assert_files_verified

    n = 30
    state = prepare_state(tmp_path, text_jobs(n))
    sim_kw = {"api_keys": frozenset({KEY}), "time_scale": SCALE, "seed": 9}
    async with Simulator(**sim_kw, p_502_after_create=0.3) as sim:
        opts = options(tmp_path, sim.base_url).replace(callback_listen=("127.0.0.1", 0))
        outcome = await execute(opts)
        lost = sum(sim.observer.unknowable.values())
        created = sum(sim.observer.bodies.values())
        files = assert_files_verified(sim, state, tmp_path / "out")
    assert lost >= 3, lost  # the fault fired: answers were lost after the task was made
    assert created == n  # and nothing was submitted twice
    assert [r["state"] for r in state_rows(state)] == [st.DONE] * n
    assert files == n
    assert outcome.exit_code == 0, outcome
    assert any(f"{lost} ambiguous job(s) adopted" in m for m in outcome.messages)


async def test_a_forged_callback_at_an_ambiguous_jobs_url_adopts_nothing(
    tmp_path: Path,
) -> None:
    """Only a task the API confirms is taken on: a callback at an ambiguous job's own URL
    naming a task the API does not know leaves the job ambiguous (one status request). A
    job's URL with its id instead of its key is refused outright."""
    import asyncio
    import json
    from typing import Any

    import aiohttp

    from tests.conftest import eventually

    state = prepare_state(tmp_path, text_jobs(2))
    store = st.Store(state)
    try:
        store.moves.mark_submitting(1)
        store.moves.mark_ambiguous(1, "lost answer")  # from an earlier run
    finally:
        store.close()
    got: dict[str, Any] = {}
    forged = json.dumps({"code": 200, "data": {"taskId": "task_forged", "state": "success"}})
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=2) as sim:
        opts = options(tmp_path, sim.base_url).replace(callback_listen=("127.0.0.1", 0))
        hooks = RunHooks(
            on_engine=lambda e: got.__setitem__("engine", e),
            on_receiver=lambda r: got.__setitem__("receiver", r),
        )
        run = asyncio.create_task(execute(opts, hooks))
        await eventually(lambda: "engine" in got and got["engine"].stats.submitted == 1)
        rec = got["receiver"]
        base = rec.url_for(None)
        async with aiohttp.ClientSession() as http:
            answers = []
            for tail in (rec.job_key("job-0001"), "job-0001"):
                async with http.post(f"{base}/{tail}", data=forged) as r:
                    answers.append(r.status)
        outcome = await asyncio.wait_for(run, 60)
        asked = sim.stats()["requests"]["status"]
    assert answers == [200, 404]
    states = {r["id"]: r["state"] for r in state_rows(state)}
    assert states == {"job-0001": st.AMBIGUOUS, "job-0002": st.DONE}
    assert asked.get("404", 0) == 1  # the one confirmation, which the API refused
    assert outcome.exit_code == 1


async def test_an_ambiguous_job_with_no_callback_is_said_probably_not_created(
    tmp_path: Path,
) -> None:
    """A connection reset before the server read the submit: no task, so no callback. After
    the generation time and the grace the job stays ambiguous (the user decides), and its
    note in `status` says it was probably not created."""

    from batchgen.commands.status import collect

    state = prepare_state(tmp_path, text_jobs(12))
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=4, p_reset=0.25) as sim:
        opts = options(tmp_path, sim.base_url).replace(callback_listen=("127.0.0.1", 0))
        outcome = await execute(opts)
        created = sum(sim.observer.bodies.values())
    rows = state_rows(state)
    ambiguous = [r for r in rows if r["state"] == st.AMBIGUOUS]
    assert ambiguous, "the fault never hit a submit: pick another seed"
    assert created == len(rows) - len(ambiguous)  # a reset before reading made no task
    store = st.Store(state, readonly=True)
    try:
        info = collect(store, state)
    finally:
        store.close()
    notes = [a["note"] for a in info["ambiguous"]]
    assert len(notes) == len(ambiguous)
    assert all("probably not created" in n for n in notes), notes
    assert outcome.exit_code == 1


def test_limit_and_only_submit_a_few_and_leave_the_rest_for_the_next_run(tmp_path: Path) -> None:
    """`--limit 3` on an 8-job batch submits 3 (the rest stay pending, exit 75 says why) and
    the next run continues; `--only` submits just the jobs named; an unknown id is exit 2."""
    import os
    import subprocess
    import sys

    state = prepare_state(tmp_path, text_jobs(8))

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "batchgen", "resume", str(state), "--sandbox", *extra]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)

    first = run("--limit", "3")
    assert first.returncode == 75, first.stderr
    assert "--limit 3" in first.stderr
    states = [r["state"] for r in state_rows(state)]
    assert states.count(st.DONE) == 3 and states.count(st.PENDING) == 5
    second = run("--only", "job-0007,job-0008")
    assert second.returncode == 75, second.stderr
    done = {r["id"] for r in state_rows(state) if r["state"] == st.DONE}
    assert {"job-0007", "job-0008"} <= done and len(done) == 5
    typo = run("--only", "job-9999")
    assert typo.returncode == 2 and "job-9999" in typo.stderr
    last = run()
    assert last.returncode == 0, last.stderr
    assert [r["state"] for r in state_rows(state)] == [st.DONE] * 8
