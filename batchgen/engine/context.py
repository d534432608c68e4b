"""What every part of one run shares: the state file, the settings, the in-flight cap, the stop
signals, the counters and notes, and the clocks; plus the few acts more than one part performs
(fail a job, stop on an account error, wait unless stopped).

The parts (submit.py, track.py, downloads.py) each hold one `RunContext` and nothing of each
other's, so each can be built and driven alone in a unit test on a `FakeClock`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
from collections.abc import Callable

from batchgen import models
from batchgen import store as st
from batchgen.clock import LOOP_CLOCK, Clock
from batchgen.core.schedule import earliest_end, first_poll_delay
from batchgen.engine.chooser import AccountChooser
from batchgen.engine.config import EngineConfig, EngineStats
from batchgen.engine.inflight import InFlightCap
from batchgen.engine.outage import OutageWatch
from batchgen.engine.wakes import TaskNews
from batchgen.errors import AccountError, ApiError
from batchgen.money import Money

log = logging.getLogger("batchgen.engine")


class StopReason(enum.StrEnum):
    """Why a run stopped creating tasks: recorded as data when it happens (`stop_submitting`),
    so how the run ends is read off, not guessed afterwards. Tracking and downloads go on for
    every reason but STOPPED."""

    STOPPED = "stopped"  # a signal or a deadline: everything winds down
    ACCOUNT = "account"  # a key or balance error: every submit would fail alike
    BUDGET = "budget"  # the spend cap, or the balance before spending
    OUTAGE = "outage"  # no answer readable for --status-outage
    STUCK = "stuck"  # every slot held by a task not polled again in this run
    ACCOUNT_DB = "account-db"  # the account database cannot be reached: fail closed


class RunContext:
    """One run's shared state. `clock` times every wait (monotonic); `wall` gives the
    wall-clock seconds the state file keeps (submit times, the stuck rule, result lifetimes,
    outage windows). Both are injected so tests can move them."""

    def __init__(
        self,
        store: st.Store,
        config: EngineConfig,
        *,
        money: Money | None = None,
        rng: random.Random | None = None,
        clock: Clock = LOOP_CLOCK,
        wall: Callable[[], float] = time.time,
        cap: InFlightCap | None = None,
    ) -> None:
        self.store = store
        self.config = config
        # No cap, no learning, no balance reads unless the runner says so (batchgen/money).
        self.money = money or Money.build(store, None, learn=False)
        self.rng = rng or random.Random()
        self.clock = clock
        self.wall = wall
        self.stats = EngineStats()
        # A cron run (--no-wait) sees no task end, so it cannot grow a window: it opens them all.
        # (An account database's shared cap comes built: accounts/shared.py.)
        self.cap = cap or InFlightCap(
            config.max_in_flight,
            recovered=store.jobs.counts()[st.IN_FLIGHT],
            slow_start=not config.no_wait,
        )
        self.outage = OutageWatch(config.status_outage_s)
        self.news = TaskNews()  # what callbacks said, kept for each task's tracker
        self.stop = asyncio.Event()  # stop everything that can wait (signal, deadline)
        self.stop_submits = asyncio.Event()  # stop creating tasks: set by stop_submitting
        self.stopped_for: list[tuple[StopReason, str]] = []  # why, in the order it came
        self.held_back: str | None = None  # a partial run (--limit) left jobs pending: why
        self.resubmits = asyncio.Event()  # a job went back to pending after a transient failure
        self.downloads: asyncio.Queue[int | None] = asyncio.Queue()  # seqs of succeeded jobs
        self.how = "finished"
        self.account_error: ApiError | None = None
        self.disk_full: str | None = None
        self.messages: list[str] = []  # notes for the run's summary
        self.stuck = 0  # tasks given up for this run (stuck, unreadable): slots stay taken
        # Callback mode: submits ask the provider to post to this receiver's secret base;
        # polls are a fallback. Known once the receiver listens (Engine.receive_callbacks_at).
        self.callback_url: str | None = None
        # The per-job last segment of that URL: a key only this state file can compute, so a
        # callback there shows the task that job's submit made (engine/adopt.py).
        self.callback_key_of: Callable[[str], str] | None = None
        self.on_ambiguous: Callable[[st.JobRow], None] | None = None  # engine/adopt.py
        # Several accounts (--accounts): which one takes a job, which one polls a task
        # (engine/chooser.py). None: the run's one key.
        self.pool: AccountChooser | None = None

    def __repr__(self) -> str:
        return (
            f"<RunContext in_flight={self.cap.in_flight}/{self.config.max_in_flight} "
            f"downloads_queued={self.downloads.qsize()} stopping={self.stop.is_set()} "
            f"submits_stopped={self.stop_submits.is_set()}>"
        )

    # -- stopping and waiting ---------------------------------------------------------------

    def request_stop(self, how: str = "stopped") -> None:
        """First signal or deadline: no new submits, pollers and downloads wind down."""
        if not self.stop.is_set():
            self.how = how
        self.stop_submitting(StopReason.STOPPED, how)
        self.stop.set()
        for wake in list(self.news.wakes.values()):
            wake.set()

    def stop_submitting(self, reason: StopReason, note: str = "") -> bool:
        """No new task from now on, for `reason` (each reason is recorded once). True the
        first time submits stop, so the caller says so once."""
        first = not self.stop_submits.is_set()
        if reason not in (r for r, _ in self.stopped_for):
            self.stopped_for.append((reason, note))
        self.stop_submits.set()
        return first

    def stopped_by(self, reason: StopReason) -> bool:
        return any(r is reason for r, _ in self.stopped_for)

    async def sleep(self, seconds: float, *, until: asyncio.Event | None = None) -> bool:
        """Wait `seconds` on the run's clock unless a stop (or `until`) comes first. False
        means stop."""
        until = until or self.stop
        if until.is_set() or self.stop.is_set():
            return False
        waiter = asyncio.ensure_future(until.wait())
        timer = asyncio.ensure_future(self.clock.sleep(max(0.0, seconds)))
        try:
            await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            timer.cancel()
        return not until.is_set() and not self.stop.is_set()

    async def take_slot(self, *, front: bool = False) -> bool:
        """An in-flight slot for the next submit (backpressure before spawning); False when
        submits stop first. A cron run takes only what is free now."""
        if self.config.no_wait:
            return not self.stop_submits.is_set() and self.cap.try_acquire()
        acquire = asyncio.ensure_future(self.cap.acquire(front=front))
        stop = asyncio.ensure_future(self.stop_submits.wait())
        try:
            await asyncio.wait({acquire, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if acquire.done() and not acquire.cancelled() and acquire.exception() is None:
            if self.stop_submits.is_set():
                self.cap.unreserve()
                return False
            return True
        acquire.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await acquire
        if acquire.done() and not acquire.cancelled() and acquire.exception() is None:
            self.cap.unreserve()  # it was granted while we were cancelling it
        return False

    # -- acts more than one part performs ----------------------------------------------------

    def first_poll_delay(self, row: st.JobRow) -> float:
        """At the job's model's earliest finish for its duration (models/base.py)."""
        spec = models.find(row.model)
        factor = spec.poll_factor(row.duration) if spec is not None else None
        return first_poll_delay(row.duration or 5, self.config.poll, self.rng, factor)

    def earliest_end(self, row: st.JobRow) -> float:
        """Seconds from the submit to the earliest finish the job's model documents, at the
        run's pace (no jitter): a claim of the end before it is implausible."""
        spec = models.find(row.model)
        factor = spec.poll_factor(row.duration) if spec is not None else None
        return earliest_end(row.duration or 5, self.config.poll, factor)

    def fail(self, row: st.JobRow, code: str, message: str, **times: int | None) -> None:
        """The one way a job fails in a run: the state file, the count, one log line."""
        self.store.moves.mark_failed(row.seq, code, message, **times)
        self.stats.failed += 1
        log.info("%s failed: %s %s", row.id, code, message)

    def bug(self, row: st.JobRow, exc: Exception) -> None:
        """A move the table of states refuses (batchgen/states.py): a bug in batchgen, not in
        the batch. Logged with the job and noted in the summary; the job stays as the state
        file has it, and the run goes on."""
        note = f"{row.id}: {exc} (a bug in batchgen: the job is left as the state file has it)"
        self.messages.append(note)
        log.error("%s", note)

    def account_stop(self, exc: ApiError, account: str | None = None) -> None:
        """An account-level error (key, balance): no new submits; tracking goes on. With
        several accounts, only `account`'s submits stop, unless it was the last one."""
        if account is not None and self.pool is not None:
            self._one_account_stops(account, exc)
            return
        if self.account_error is None:
            self.account_error = exc
            log.error("account-level error, no new submits: %s", exc.message)
            self.cap.account_stopped(exc.status, exc.message)
        self.stop_submitting(StopReason.ACCOUNT, exc.message)

    def _one_account_stops(self, account: str, exc: ApiError) -> None:
        """One account of several stops; the run's outcome names it (exit 3), never its key."""
        assert self.pool is not None
        note = f"account {account}: {exc.message or f'HTTP {exc.status}'}"
        if self.pool.stop(account, f"{note} (HTTP {exc.status})", exc.status):
            log.error("%s: no new submits for it; the other accounts go on", note)
        if self.account_error is None:
            self.account_error = AccountError(exc.status, note)
        if self.pool.all_stopped():
            self.stop_submitting(StopReason.ACCOUNT, note)

    def account_over_budget(self, account: str, note: str) -> None:
        """One account reached its own max_spend: its submits stop; when none is left, the run's
        submits stop at the spend cap (exit 5)."""
        assert self.pool is not None
        if self.pool.stop(account, note):  # the summary says so (AccountPool.summary)
            log.warning("%s: no new submits for it", note)
        if not self.pool.all_stopped():
            return
        self.stop_submitting(StopReason.BUDGET, note)
        if self.money.spending.stop_message is None:  # the outcome says: spend cap (exit 5)
            self.money.spending.stop_message = note

    def readable(self, task_id: str | None) -> None:
        """The API answered in its own words: an outage, if any, is over."""
        lasted = self.outage.readable(task_id, self.wall())
        if lasted is not None:
            log.warning("status answers readable again after %.0f s", lasted)

    def give_up_for_run(self) -> None:
        """A task not polled again in this run keeps its slot (the provider still counts it);
        once every taken slot is such a task, no slot can ever free, so submits stop too and
        the run ends with exit 75."""
        self.stuck += 1
        if self.cap.in_flight <= self.stuck:
            self.stop_submitting(StopReason.STUCK, "every slot is held by a task left for later")
