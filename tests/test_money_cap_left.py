"""Issue 26: a spend cap must not strand the cheaper jobs after a dear one.

With `--max-spend 2.6`, a $2.00 job that did not fit stopped every job after it, though jobs
of $1.00 and $0.25 still fit. Now the run goes on with the jobs that fit, in manifest order;
the ones left stay pending with a note, are named in the summary, the exit code is the cap's
(5), and a resume with a higher cap submits them.
"""

from __future__ import annotations

from pathlib import Path

from batchgen import store as st
from batchgen.engine import EXIT_BUDGET
from batchgen.money.prices import MICROS
from batchgen.money.spending import OVER_CAP, Spending
from batchgen.runner import execute
from batchgen.simulator import Simulator
from tests.enginekit import KEY, SCALE, body, options, prepare_state, state_rows

# Table prices of kling-2-1 (the simulator charges the same).
JOBS = [
    ("a-master-5", "master-text-to-video", 5),  # $1.00
    ("b-master-10", "master-text-to-video", 10),  # $2.00: does not fit under $2.60 after a
    ("c-image-5", "master-image-to-video", 5),  # $1.00
    ("d-std-5", "standard-image-to-video", 5),  # $0.25
    ("e-std-5", "standard-image-to-video", 5),  # $0.25
]


def _jobs() -> list[tuple[str, str, dict]]:
    return [
        (job_id, "kling-2-1", body(i, mode, prompt=f"cap {job_id}", duration=duration))
        for i, (job_id, mode, duration) in enumerate(JOBS)
    ]


def _notes(state: Path) -> dict[str, str | None]:
    store = st.Store(state, readonly=True)
    try:
        return dict(store.db.execute("SELECT id, note FROM jobs").fetchall())
    finally:
        store.close()


async def test_a_dear_job_over_the_cap_leaves_the_cheaper_ones_after_it_running(
    tmp_path: Path,
) -> None:
    state = prepare_state(tmp_path, _jobs())
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=11) as sim:
        first = await execute(options(tmp_path, sim.base_url, max_spend_micros=2_600_000))
        charged_first = sim.billing.charged
        rows = {r["id"]: r["state"] for r in state_rows(state)}
        assert first.exit_code == EXIT_BUDGET, first.how
        assert rows == {
            "a-master-5": st.DONE,
            "b-master-10": st.PENDING,
            "c-image-5": st.DONE,
            "d-std-5": st.DONE,
            "e-std-5": st.DONE,
        }, rows
        assert float(charged_first) == 2.5
        assert "spend cap reached" in first.how and "b-master-10 ($2.00)" in first.how
        assert "1 job(s) did not fit" in first.how and "--max-spend" in first.how
        note = _notes(state)["b-master-10"] or ""
        assert note.startswith("not submitted: costs $2.00, the spend cap leaves $0.10"), note

        again = await execute(options(tmp_path, sim.base_url, max_spend_micros=5 * MICROS))
    assert again.exit_code == 0, again.how
    assert {r["state"] for r in state_rows(state)} == {st.DONE}
    assert float(sim.billing.charged) == 4.5
    assert not _notes(state)["b-master-10"]


def _store(tmp_path: Path) -> st.Store:
    store = st.Store(tmp_path / "b.db")
    store.jobs.sync(_jobs())
    return store


def test_reservations_on_the_wire_count_and_their_release_looks_at_the_jobs_left(
    tmp_path: Path,
) -> None:
    """Concurrency: a submit on the wire holds its price; a job that does not fit beside it is
    left (the next that fits still goes); when the wire's submit proves it made no task, the
    freed room wakes the engine to look at the jobs left again."""
    store = _store(tmp_path)
    woken: list[int] = []
    spending = Spending(store, cap=2_600_000)
    spending.on_room = lambda: woken.append(1)
    a, b, c, d, e = store.jobs.in_state(st.PENDING)
    assert spending.reserve(a) == 1  # $1.00 on the wire
    assert spending.reserve(b) == OVER_CAP  # $2.00 does not fit beside it
    assert spending.reserve(d) == 1  # $0.25 after it still fits
    assert spending.left == {b.seq: ("b-master-10", 2_000_000)}
    assert "b-master-10 ($2.00)" in (spending.stop_message or "")
    assert not woken
    spending.release(a.seq)  # a's submit made no task: $1.00 is free again
    assert woken == [1]
    assert spending.reserve(b) == 1  # $0.25 + $2.00 fits now
    assert spending.left == {} and spending.stop_message is None
    assert spending.reserve(c) == OVER_CAP and spending.reserve(e) == 1
