"""Issue 15: one table of moves between job states, and a store that refuses any other.

Each store method that moves a job is tried from every state on a real SQLite file: a move
the table holds is made (or, where the method asks for more, e.g. the intent only from
`pending`, declined with False); a move the table does not hold raises IllegalTransition and
leaves the row exactly as it was."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from batchgen import store as st
from batchgen.errors import IllegalTransition
from batchgen.states import (
    FINISHED,
    STATES,
    TRANSITIONS,
    UNSUCCESSFUL,
    WORK_LEFT,
    JobState,
    allowed,
    sources,
)

S = JobState

# method name -> (the state it moves to, the states it moves from, how to call it)
MOVES: dict[str, tuple[JobState, set[JobState], Callable[[st.Store, int], Any]]] = {
    "mark_submitting": (S.SUBMITTING, {S.PENDING}, lambda s, q: s.moves.mark_submitting(q)),
    "mark_in_flight": (
        S.IN_FLIGHT,
        {S.SUBMITTING},
        lambda s, q: s.moves.mark_in_flight(q, "t-new"),
    ),
    "mark_not_submitted": (S.PENDING, {S.SUBMITTING}, lambda s, q: s.moves.mark_not_submitted(q)),
    "mark_ambiguous": (S.AMBIGUOUS, {S.SUBMITTING}, lambda s, q: s.moves.mark_ambiguous(q, "n")),
    "mark_orphaned": (S.ORPHANED, {S.SUBMITTING}, lambda s, q: s.moves.mark_orphaned(q, "n")),
    "mark_failed": (
        S.FAILED,
        {S.PENDING, S.SUBMITTING, S.IN_FLIGHT},
        lambda s, q: s.moves.mark_failed(q, "C", "m"),
    ),
    "mark_succeeded": (
        S.SUCCEEDED,
        {S.IN_FLIGHT},
        lambda s, q: s.moves.mark_succeeded(
            q,
            ["https://r/x.mp4"],
            expires_at=9e9,
            create_time_ms=None,
            complete_time_ms=None,
            cost_time_ms=None,
        ),
    ),
    "mark_done": (S.DONE, {S.SUCCEEDED}, lambda s, q: s.moves.mark_done(q)),
    "mark_file_done": (
        S.DONE,
        {S.SUCCEEDED},
        lambda s, q: s.moves.mark_file_done(
            q, 0, path="x.mp4", size=1, sha256="0" * 64, mtime_ns=1, job_done=True
        ),
    ),
    "mark_expired": (
        S.EXPIRED,
        {S.SUCCEEDED, S.IN_FLIGHT},
        lambda s, q: s.moves.mark_expired(q, "n"),
    ),
    "mark_download_failed": (
        S.FAILED,
        {S.SUCCEEDED},
        lambda s, q: s.moves.mark_download_failed(q, "NOT_A_VIDEO", "m"),
    ),
    "resubmit": (
        S.PENDING,
        {S.IN_FLIGHT},
        lambda s, q: s.moves.resubmit(q, "n"),
    ),
}


def _job_in(tmp: Path, state: JobState) -> tuple[st.Store, int, tuple]:
    store = st.Store(tmp / "s.db")
    store.jobs.sync([("j1", "kling-2-1", {"model": "kling-2-1", "input": {"prompt": "p"}})])
    with store.transaction() as db:
        db.execute(
            "UPDATE jobs SET state=?, task_id=? WHERE seq=1",
            (state, None if state in (S.PENDING, S.SUBMITTING) else "t-1"),
        )
        db.execute("INSERT INTO files (job_seq, idx, url) VALUES (1, 0, 'https://r/x.mp4')")
    return store, 1, _row(store)


def _row(store: st.Store) -> tuple:
    return store.db.execute("SELECT * FROM jobs WHERE seq=1").fetchone()


@pytest.mark.parametrize("name", sorted(MOVES))
@pytest.mark.parametrize("src", STATES)
def test_each_move_from_each_state(tmp_path: Path, name: str, src: JobState) -> None:
    dst, froms, call = MOVES[name]
    assert froms <= set(sources(dst)), "a method may not move what the table forbids"
    store, seq, before = _job_in(tmp_path, src)
    try:
        if src != dst and not allowed(src, dst):
            with pytest.raises(IllegalTransition, match=f"{src} -> {dst}"):
                call(store, seq)
            assert _row(store) == before  # refused: nothing changed
        elif src in froms:
            assert call(store, seq) is True
            assert store.jobs.by_seq(seq).state == dst
        else:  # already there, or a legal move this method does not make
            assert call(store, seq) is False
            assert _row(store)[7] == src
    finally:
        store.close()


def test_every_move_the_table_holds_is_made_by_some_operation() -> None:
    """No dead rows in the table: each move is made by a method above, by `retry`
    (requeue), cancel, the restart's recovery, --resubmit-ambiguous or --resubmit-changed."""
    made = {(src, dst) for dst, froms, _ in MOVES.values() for src in froms}
    made |= {(s, S.PENDING) for s in STATES if s != S.SUBMITTING}  # --resubmit-changed
    made |= {(s, S.IN_FLIGHT) for s in (S.FAILED, S.AMBIGUOUS, S.CANCELLED)}  # retry keeps
    made |= {(S.PENDING, S.CANCELLED), (S.SUBMITTING, S.AMBIGUOUS), (S.DONE, S.SUCCEEDED)}
    table = {(src, dst) for src, dsts in TRANSITIONS.items() for dst in dsts}
    assert table == made


def test_retry_moves_only_what_the_table_allows(tmp_path: Path) -> None:
    for state in STATES:
        store, seq, before = (
            _job_in(tmp_path / state, state) if (tmp_path / state).mkdir() is None else None
        )
        pending, in_flight = store.moves.requeue([seq])
        after = store.jobs.by_seq(seq).state
        if state in (S.FAILED, S.AMBIGUOUS, S.ORPHANED, S.EXPIRED, S.CANCELLED):
            assert after in (S.PENDING, S.IN_FLIGHT) and allowed(state, after)
            assert pending + in_flight == 1
        else:
            assert (pending, in_flight) == (0, 0) and _row(store) == before
        store.close()


def test_the_groups_of_states_are_one_definition() -> None:
    assert set(STATES) == FINISHED | WORK_LEFT and not FINISHED & WORK_LEFT
    assert set(UNSUCCESSFUL) <= FINISHED and S.AMBIGUOUS in FINISHED
    from batchgen.ui import snapshot as progress

    assert set(progress.FINISHED) == FINISHED and set(progress.WORKING) == WORK_LEFT
    assert st.STATES == STATES
