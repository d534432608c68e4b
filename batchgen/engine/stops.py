"""Whether, and why, a run stops: one home for the stop state the engine's parts read
(`run.stops`). Recorded as data when it happens, so how the run ends is read off
(engine/outcome.py), not guessed afterwards."""

from __future__ import annotations

import asyncio
import enum

from batchgen.errors import ApiError


class StopReason(enum.StrEnum):
    """Why a run stopped creating tasks (`Stops.stop_submitting`). Tracking and downloads go
    on for every reason but STOPPED."""

    STOPPED = "stopped"  # a signal or a deadline: everything winds down
    ACCOUNT = "account"  # a key or balance error: every submit would fail alike
    BUDGET = "budget"  # the spend cap, or the balance before spending
    OUTAGE = "outage"  # no answer readable for --status-outage
    STUCK = "stuck"  # every slot held by a task not polled again in this run
    ACCOUNT_DB = "account-db"  # the account database cannot be reached: fail closed


class Stops:
    """The run's stop state: `all` stops everything that can wait (signal, deadline),
    `submits` stops creating tasks; `reasons` says why, in the order they came."""

    def __init__(self) -> None:
        self.all = asyncio.Event()
        self.submits = asyncio.Event()  # set by stop_submitting
        self.reasons: list[tuple[StopReason, str]] = []
        self.how = "finished"
        self.held_back: str | None = None  # a partial run (--limit) left jobs pending: why
        self.account_error: ApiError | None = None
        self.disk_full: str | None = None

    def __repr__(self) -> str:
        why = ",".join(r for r, _ in self.reasons) or "-"
        return f"<Stops all={self.all.is_set()} submits={self.submits.is_set()} why={why}>"

    def stop_all(self, how: str) -> None:
        """First signal or deadline: no new submits; pollers and downloads wind down."""
        if not self.all.is_set():
            self.how = how
        self.stop_submitting(StopReason.STOPPED, how)
        self.all.set()

    def stop_submitting(self, reason: StopReason, note: str = "") -> bool:
        """No new task from now on, for `reason` (each reason is recorded once). True the
        first time submits stop, so the caller says so once."""
        first = not self.submits.is_set()
        if reason not in (r for r, _ in self.reasons):
            self.reasons.append((reason, note))
        self.submits.set()
        return first

    def stopped_by(self, reason: StopReason) -> bool:
        return any(r is reason for r, _ in self.reasons)
