"""How a run ends: its exit code, its one-line reason and the notes for its summary, read off
the state file's counts and what the run context recorded."""

from __future__ import annotations

from batchgen import store as st
from batchgen.engine.config import (
    EXIT_ACCOUNT,
    EXIT_BUDGET,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_WORK_LEFT,
    RunOutcome,
)
from batchgen.engine.context import RunContext
from batchgen.engine.stops import StopReason
from batchgen.states import UNSUCCESSFUL, WORK_LEFT


def outcome(run: RunContext) -> RunOutcome:
    """The first reason that applies wins: a full disk, an account error, the spend cap, work
    left (stopped, or not finished), some jobs unsuccessful, or all done."""
    counts = run.store.jobs.counts()
    work_left = sum(counts[s] for s in WORK_LEFT)
    if run.stops.disk_full:
        code, how = EXIT_WORK_LEFT, "output folder full or not writable"
    elif run.stops.account_error is not None:
        code, how = EXIT_ACCOUNT, f"account error: {run.stops.account_error.message}"
    elif run.admission.money.stop_message is not None and counts[st.PENDING]:
        code, how = EXIT_BUDGET, run.admission.money.stop_message
    elif work_left:
        code, how = EXIT_WORK_LEFT, run.stops.how if run.stops.all.is_set() else _left_why(run)
    elif any(counts[s] for s in UNSUCCESSFUL):
        code, how = EXIT_SOME_FAILED, "finished, some jobs did not succeed"
    else:
        code, how = EXIT_OK, "finished"
    outage = run.outage.summary(run.wall())
    messages = run.messages
    target = run.admission.cap.target
    if target.learned is not None:  # first, so a long list of notes cannot hide it
        messages = [
            f"the API's concurrency cap is lower than --max-in-flight "
            f"{run.config.max_in_flight}: it refused submits at {target.learned} tasks in "
            f"flight ({target.lowered} such 429s); the run held at most {run.admission.cap.limit}",
            *messages,
        ]
    return RunOutcome(
        exit_code=code,
        how=how,
        counts=counts,
        account_error=run.stops.account_error.message if run.stops.account_error else None,
        messages=([outage] if outage else []) + messages,
    )


def _left_why(run: RunContext) -> str:
    """Work left without a stop: the reason submits stopped, as recorded when it happened, or
    the partial run's limit."""
    if run.stops.held_back is not None:
        return f"work left: {run.stops.held_back}"
    for reason, note in run.stops.reasons:
        if reason in (StopReason.OUTAGE, StopReason.STUCK, StopReason.ACCOUNT_DB):
            return f"work left: {note}" if note else "work left"
    return "work left"
