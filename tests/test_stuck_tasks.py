"""A task the provider never finishes must not keep a run going for ever.

Past `stuck_after_s` (1 h by default, 30 times the documented generation time) the tracker
stops polling it for this run; the job stays `in_flight` with its task id, keeps its slot, and
the next run polls it again. Time scaled by 0.01, as in test_engine.py.
"""

from __future__ import annotations

from pathlib import Path

from batchgen import store as st
from batchgen.engine import EXIT_WORK_LEFT
from batchgen.runner import execute
from batchgen.simulator import Simulator
from tests.enginekit import KEY, SCALE, body, options, prepare_state, state_rows

STUCK = "[sim:stuck]"


def jobs(n: int, stuck: set[int]) -> list[tuple[str, str, dict]]:
    return [
        (
            f"job-{i:02d}",
            "kling-2-1",
            body(i, prompt=f"job {i}: waves" + (f" {STUCK}" if i in stuck else "")),
        )
        for i in range(n)
    ]


def sim(**kw) -> Simulator:  # type: ignore[no-untyped-def]
    return Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=5, **kw)


async def test_a_stuck_task_is_left_in_flight_and_the_rest_of_the_batch_finishes(
    tmp_path: Path,
) -> None:
    state = prepare_state(tmp_path, jobs(6, stuck={2}))
    limit = 200 * SCALE  # 200 s of service time: past the documented 60-120 s, short of 1 h
    async with sim() as server:
        outcome = await execute(options(tmp_path, server.base_url, stuck_after_s=limit))
        created = len(server.store)
        polls_before = server.stats()["requests"]["status"]
        # The next run polls it again at once (it is already past the limit: one look, then
        # out) and submits nothing.
        again = await execute(options(tmp_path, server.base_url, stuck_after_s=limit))
        polls_after = server.stats()["requests"]["status"]
        created_again = len(server.store)
    assert outcome.exit_code == EXIT_WORK_LEFT, outcome
    rows = {r["id"]: r for r in state_rows(state)}
    assert rows["job-02"]["state"] == st.IN_FLIGHT and rows["job-02"]["task_id"]
    assert all(r["state"] == st.DONE for k, r in rows.items() if k != "job-02")
    assert created == created_again == 6
    assert any("job-02" in m and "still 'processing'" in m for m in outcome.messages)
    assert again.exit_code == EXIT_WORK_LEFT, again
    assert sum(polls_after.values()) == sum(polls_before.values()) + 1


async def test_when_every_slot_holds_a_stuck_task_submits_stop_and_the_run_ends(
    tmp_path: Path,
) -> None:
    state = prepare_state(tmp_path, jobs(5, stuck={0, 1}))
    async with sim() as server:
        outcome = await execute(
            options(tmp_path, server.base_url, stuck_after_s=200 * SCALE, max_in_flight=2)
        )
        created = len(server.store)
        tasks = [(t.task_id, t.end_s) for t in server.store.tasks.values()]
    assert outcome.exit_code == EXIT_WORK_LEFT, outcome
    rows = state_rows(state)
    counts = {s: 0 for s in st.STATES}
    for r in rows:
        counts[r["state"]] += 1
    # jobs 0 and 1 took both slots and never finish: nothing else could ever be sent
    seen = (outcome, rows, tasks)  # a failure says what the run did
    assert created == 2, seen
    assert counts[st.IN_FLIGHT] == 2 and counts[st.PENDING] == 3, seen


async def test_without_a_limit_a_stuck_task_is_polled_until_the_run_is_stopped(
    tmp_path: Path,
) -> None:
    prepare_state(tmp_path, jobs(2, stuck={1}))
    async with sim() as server:
        outcome = await execute(
            options(tmp_path, server.base_url, stuck_after_s=None, max_runtime_s=300 * SCALE)
        )
    assert outcome.exit_code == EXIT_WORK_LEFT
    assert "max-runtime" in outcome.how


async def test_a_stuck_callback_task_is_never_due_for_a_callback() -> None:
    callback = {"request_type": "callback", "callback_url": "http://127.0.0.1:9/x"}
    async with sim() as server:
        task = server.store.create(
            {**body(0, prompt=f"waves {STUCK}"), **callback}, server.now(), 0
        )
        server.callbacks.schedule(task)
        assert task.ends == float("inf")
        assert server.callbacks.summary()["pending"] == 0
