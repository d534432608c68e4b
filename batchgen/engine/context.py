"""What every part of one run shares, in groups by question: `stops` (whether and why the run
stops, engine/stops.py), `admission` (the in-flight cap and the money, engine/admission.py),
`callbacks` (callback news and where submits ask for callbacks, engine/wakes.py), `outage`,
`pool` (several accounts: which one takes a job, which one polls a task, engine/chooser.py);
beside them the state file, the settings, the counters and notes, the clocks, and the few
acts more than one part performs (fail a job, stop on an account error or an account's
budget, wait unless stopped).

The parts (submit.py, track.py, downloads.py) each hold one `RunContext` and nothing of each
other's, so each can be built and driven alone in a unit test on a `FakeClock`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from batchgen import models
from batchgen import store as st
from batchgen.clock import LOOP_CLOCK, Clock
from batchgen.core.schedule import earliest_end, first_poll_delay
from batchgen.engine.admission import Admission
from batchgen.engine.chooser import AccountChooser
from batchgen.engine.config import EngineConfig, EngineStats
from batchgen.engine.inflight import InFlightCap
from batchgen.engine.outage import OutageWatch
from batchgen.engine.stops import StopReason, Stops
from batchgen.engine.wakes import CallbackLink
from batchgen.errors import AccountError, ApiError
from batchgen.money import Money

log = logging.getLogger("batchgen.engine")


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
        self.rng = rng or random.Random()
        self.clock = clock
        self.wall = wall
        self.stats = EngineStats()
        self.messages: list[str] = []  # notes for the run's summary
        self.stops = Stops()  # whether and why the run stops
        # A cron run (--no-wait) sees no task end, so it cannot grow a window: it opens them all.
        # (An account database's shared cap comes built: accounts/shared.py.) No spend cap, no
        # learning, no balance reads unless the runner says so (batchgen/money).
        self.admission = Admission(
            cap
            or InFlightCap(
                config.max_in_flight,
                recovered=store.jobs.counts()[st.IN_FLIGHT],
                slow_start=not config.no_wait,
            ),
            money or Money.build(store, None, learn=False),
            self.stops,
            no_wait=config.no_wait,
        )
        self.callbacks = CallbackLink()  # callback news, and where submits ask for callbacks
        self.outage = OutageWatch(config.status_outage_s)
        # Several accounts (--accounts): which one takes a job, which one polls a task
        # (engine/chooser.py). None: the run's one key.
        self.pool: AccountChooser | None = None
        self.resubmits = asyncio.Event()  # a job went back to pending after a transient failure
        self.downloads: asyncio.Queue[int | None] = asyncio.Queue()  # seqs of succeeded jobs
        self.stuck = 0  # tasks given up for this run (stuck, unreadable): slots stay taken

    def __repr__(self) -> str:
        return (
            f"<RunContext in_flight={self.admission.cap.in_flight}/{self.config.max_in_flight} "
            f"downloads_queued={self.downloads.qsize()} stopping={self.stops.all.is_set()} "
            f"submits_stopped={self.stops.submits.is_set()}>"
        )

    # -- stopping and waiting ---------------------------------------------------------------

    def request_stop(self, how: str = "stopped") -> None:
        """First signal or deadline: no new submits, pollers and downloads wind down (every
        tracker's sleep is woken)."""
        self.stops.stop_all(how)
        for wake in list(self.callbacks.news.wakes.values()):
            wake.set()

    async def sleep(self, seconds: float, *, until: asyncio.Event | None = None) -> bool:
        """Wait `seconds` on the run's clock unless a stop (or `until`) comes first. False
        means stop."""
        stop = self.stops.all
        until = until or stop
        if until.is_set() or stop.is_set():
            return False
        waiter = asyncio.ensure_future(until.wait())
        timer = asyncio.ensure_future(self.clock.sleep(max(0.0, seconds)))
        try:
            await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            timer.cancel()
        return not until.is_set() and not stop.is_set()

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
        if self.stops.account_error is None:
            self.stops.account_error = exc
            log.error("account-level error, no new submits: %s", exc.message)
            self.admission.cap.account_stopped(exc.status, exc.message)
        self.stops.stop_submitting(StopReason.ACCOUNT, exc.message)

    def _one_account_stops(self, account: str, exc: ApiError) -> None:
        """One account of several stops; the run's outcome names it (exit 3), never its key."""
        assert self.pool is not None
        note = f"account {account}: {exc.message or f'HTTP {exc.status}'}"
        if self.pool.stop(account, f"{note} (HTTP {exc.status})", exc.status):
            log.error("%s: no new submits for it; the other accounts go on", note)
        if self.stops.account_error is None:
            self.stops.account_error = AccountError(exc.status, note)
        if self.pool.all_stopped():
            self.stops.stop_submitting(StopReason.ACCOUNT, note)

    def account_over_budget(self, account: str, note: str) -> None:
        """One account reached its own max_spend: its submits stop; when none is left, the run's
        submits stop at the spend cap (exit 5)."""
        assert self.pool is not None
        if self.pool.stop(account, note):  # the summary says so (AccountPool.summary)
            log.warning("%s: no new submits for it", note)
        if not self.pool.all_stopped():
            return
        self.stops.stop_submitting(StopReason.BUDGET, note)
        if self.admission.money.spending.stop_message is None:  # the outcome: spend cap (exit 5)
            self.admission.money.spending.stop_message = note

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
        if self.admission.cap.in_flight <= self.stuck:
            self.stops.stop_submitting(
                StopReason.STUCK, "every slot is held by a task left for later"
            )
