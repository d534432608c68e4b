"""Features that pass alone, run together: transient resubmits while every slot is taken, a
state the table refuses, forged callbacks in callback mode (issue 25)."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchgen import store as st
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

    state = prepare_state(tmp_path, text_jobs(6))
    real = st.Store.mark_in_flight

    def refuse_one(self: st.Store, seq: int, task_id: str) -> bool:
        if seq == 2:
            raise IllegalTransition("job 'job-0002': submitting -> in_flight (injected)")
        return real(self, seq, task_id)

    monkeypatch.setattr(st.Store, "mark_in_flight", refuse_one)
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=1) as sim:
        outcome = await execute(options(tmp_path, sim.base_url))
    states = {r["id"]: r["state"] for r in state_rows(state)}
    assert states.pop("job-0002") == st.SUBMITTING  # as the state file had it
    assert set(states.values()) == {st.DONE}
    assert outcome.exit_code == 75  # work left: the next run judges the submit
    assert any("job-0002" in m and "a bug in batchgen" in m for m in outcome.messages)
