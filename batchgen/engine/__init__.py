"""The engine: one coroutine per job from submit to a terminal state, plus download workers.

Backpressure comes before spawning: the submitter takes an in-flight slot before it creates a
job's coroutine, so at most `max_in_flight` job coroutines exist, whatever the manifest's size,
and pending jobs are read from the state file a page at a time. Every request goes through the
shared rate limiter inside the client, where due polls outrank submits.

Each transition is committed to the state file before the next step: the intent before the POST,
the task id right after it (no `await` in between, so no cancellation can fall there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

from batchgen import models
from batchgen import store as st
from batchgen.adapters.answers import TaskStatus
from batchgen.adapters.client import ApiClient
from batchgen.adapters.download import Downloader
from batchgen.core.policy import (
    first_poll_delay,
)
from batchgen.engine.config import (
    EXIT_ACCOUNT,
    EXIT_BUDGET,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_WORK_LEFT,
    RESULT_LIFETIME_S,
    EngineConfig,
    EngineStats,
    RunOutcome,
    describe,
)
from batchgen.engine.downloads import Downloading
from batchgen.engine.gate import SubmitGate
from batchgen.engine.inflight import InFlightCap
from batchgen.engine.outage import OutageWatch
from batchgen.engine.submit import Submitting
from batchgen.engine.track import Tracking
from batchgen.engine.wakes import Wakeup
from batchgen.errors import (
    ApiError,
)
from batchgen.inputs.prepare import PrepareInputs
from batchgen.money import Money
from batchgen.states import UNSUCCESSFUL, WORK_LEFT
from batchgen.store import views

log = logging.getLogger("batchgen.engine")

__all__ = [
    "EXIT_ACCOUNT",
    "EXIT_BUDGET",
    "EXIT_OK",
    "EXIT_SOME_FAILED",
    "EXIT_WORK_LEFT",
    "RESULT_LIFETIME_S",
    "Engine",
    "EngineConfig",
    "EngineStats",
    "RunOutcome",
    "describe",
]


class Engine(Submitting, Tracking, Downloading):
    def __init__(
        self,
        store: st.Store,
        client: ApiClient,
        downloader: Downloader,
        config: EngineConfig,
        *,
        rng: random.Random | None = None,
        inputs: PrepareInputs | None = None,
        money: Money | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        # Wall-clock seconds, as the state file keeps them: submit times, the stuck rule,
        # result lifetimes, outage windows. Injected so tests can move it.
        self._wall = wall
        self.store = store
        self.inputs = inputs  # images checked, local files presigned (batchgen.inputs)
        # No cap, no learning, no balance reads unless the runner says so (batchgen/money.py).
        self.money = money or Money.build(store, None, learn=False)
        self._resubmits = asyncio.Event()  # a job went back to pending after a transient failure
        self.client = client
        self.downloader = downloader
        self.config = config
        self.rng = rng or random.Random()
        self.stats = EngineStats()
        recovered = store.counts()[st.IN_FLIGHT]
        # A cron run (--no-wait) sees no task end, so it cannot grow a window: it opens them all.
        self.cap = InFlightCap(
            config.max_in_flight, recovered=recovered, slow_start=not config.no_wait
        )
        self._no_slot: set[int] = set()  # jobs waiting for a slot after a concurrency 429
        if client is not None:  # a 429 naming no limit is read against our tasks (ApiClient)
            client.tasks_in_flight = lambda: self.cap.tasks
        self._learned_logged: int | None = None
        self._stop = asyncio.Event()  # stop everything that can wait (signal, deadline)
        self._stop_submits = asyncio.Event()  # stop creating tasks (also on account errors)
        self._account_error: ApiError | None = None
        self._disk_full: str | None = None
        self._downloads: asyncio.Queue[int | None] = asyncio.Queue()
        self._lifecycles: set[asyncio.Task[None]] = set()
        self._how = "finished"
        self._workers: list[asyncio.Task[None]] = []
        # task id -> event that wakes its tracker (a callback arrived); and statuses delivered
        # by a trusted callback, consumed instead of a poll.
        self._wake: dict[str, Wakeup] = {}
        self._delivered: dict[str, TaskStatus] = {}
        self._callback_seen: set[str] = set()  # tasks whose callback reached this run
        # Tasks a callback said had ended while their status said otherwise (an early or
        # forged post, or a status that lags): polled at the normal pace until it agrees.
        self._claimed_end: set[str] = set()
        self._messages: list[str] = []
        self._stuck = 0  # tasks given up for this run (stuck, unreadable): slots stay taken
        self.outage = OutageWatch(config.status_outage_s)
        self.gate = SubmitGate()

    def __repr__(self) -> str:
        return (
            f"<Engine in_flight={self.cap.in_flight}/{self.config.max_in_flight} "
            f"lifecycles={len(self._lifecycles)} downloads_queued={self._downloads.qsize()} "
            f"stopping={self._stop.is_set()}>"
        )

    # -- control ----------------------------------------------------------------------------

    def request_stop(self, how: str = "stopped") -> None:
        """First signal or deadline: no new submits, pollers and downloads wind down."""
        if not self._stop.is_set():
            self._how = how
        self._stop_submits.set()
        self._stop.set()
        for wake in list(self._wake.values()):
            wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def notify(
        self, task_id: str, status: TaskStatus | None = None, *, claims_end: bool = False
    ) -> bool:
        """A callback named this task: wake its tracker, which confirms with one status request
        (or, when `status` is given by a receiver that trusts callbacks, uses it as is).
        False when the task is not in flight (unknown, or already finished). News that comes
        before its tracker is ready (between the submit's answer and the first sleep, or for a
        recovered task not yet picked up) is kept for it, not dropped."""
        event = self._wake.get(task_id)
        if event is None:
            if not views.task_known(self.store.db, task_id, in_flight=True):
                return False
            event = self._wake[task_id] = Wakeup()
        self._callback_seen.add(task_id)
        if claims_end:
            self._claimed_end.add(task_id)
        if status is not None and status.terminal:
            self._delivered[task_id] = status
        event.set()
        return True

    def knows_task(self, task_id: str) -> bool:
        """Whether this state file ever recorded the task id (duplicate callbacks are normal)."""
        if task_id in self._wake:
            return True
        return views.task_known(self.store.db, task_id)

    def _prepare_body(self, row: st.JobRow) -> dict:  # type: ignore[type-arg]
        """With a callback receiver, ask the provider to call it at a per-job URL under the
        receiver's secret base; a manifest that names its own callback_url keeps it (the
        user's server gets those callbacks, we poll slowly)."""
        body = row.body_dict()
        if self.config.callback_url and body.get("request_type", "async") == "async":
            body["request_type"] = "callback"
            body["callback_url"] = f"{self.config.callback_url.rstrip('/')}/{row.id}"
        return body

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless a stop comes first; False means stop."""
        if self._stop.is_set():
            return False
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            return True
        return False

    # -- the run ----------------------------------------------------------------------------

    async def run(self) -> RunOutcome:
        self.store.recover_interrupted()
        async with asyncio.TaskGroup() as tg:
            self._workers = [
                tg.create_task(self._download_worker()) for _ in range(self.config.download_workers)
            ]
            watchdog = tg.create_task(self._drain_watchdog())
            audit = tg.create_task(self._audit_done_files())
            for row in self.store.jobs_in_state(st.SUCCEEDED):
                self._downloads.put_nowait(row.seq)
            for row in self.store.jobs_in_state(st.IN_FLIGHT):
                self._spawn(tg, self._track(row, self._recovered_first_delay(row), recovered=True))
            if self.config.no_wait:
                # Cron: finish the one status check of due tasks first, so the slots of tasks
                # that ended are refilled by this run instead of the next one (issue 7).
                while self._lifecycles:
                    await asyncio.wait(set(self._lifecycles))
            await self._submitter(tg)
            await audit  # it may queue downloads: let it finish before waiting on them
            await self._until_idle(tg)
            if not self._stop.is_set():
                await self._downloads.join()
            for _ in self._workers:
                self._downloads.put_nowait(None)
            watchdog.cancel()
        return self._outcome()

    async def _until_idle(self, tg: asyncio.TaskGroup) -> None:
        """Wait for every job's coroutine; jobs put back to pending after a transient failure
        meanwhile are submitted again (a new pass of the submitter)."""
        while self._lifecycles or self._resubmits.is_set():
            if self._resubmits.is_set():
                self._resubmits.clear()
                if not self._stop_submits.is_set():
                    await self._submitter(tg)
                continue
            every = asyncio.ensure_future(asyncio.wait(set(self._lifecycles)))
            news = asyncio.ensure_future(self._resubmits.wait())
            await asyncio.wait({every, news}, return_when=asyncio.FIRST_COMPLETED)
            every.cancel()
            news.cancel()

    async def _drain_watchdog(self) -> None:
        """After a stop, in-flight calls get `drain_s` to finish; then they are cancelled (a
        cancelled submit is recorded as ambiguous, a cancelled download keeps its .part)."""
        await self._stop.wait()
        await asyncio.sleep(self.config.drain_s)
        for task in [*self._lifecycles, *self._workers]:
            task.cancel()

    def _spawn(self, tg: asyncio.TaskGroup, coro) -> None:  # type: ignore[no-untyped-def]
        task = tg.create_task(coro)
        self._lifecycles.add(task)
        task.add_done_callback(self._lifecycles.discard)

    def _recovered_first_delay(self, row: st.JobRow) -> float:
        if row.submitted_at is None:
            return 0.0
        due = row.submitted_at + self._first_poll_delay(row)
        return max(0.0, due - self._wall())

    def _first_poll_delay(self, row: st.JobRow) -> float:
        """At the job's model's earliest finish for its duration (models/base.py)."""
        spec = models.find(row.model)
        factor = spec.poll_factor(row.duration) if spec is not None else None
        return first_poll_delay(row.duration or 5, self.config.poll, self.rng, factor)

    async def _submitter(self, tg: asyncio.TaskGroup) -> None:
        last_seq = 0
        while not self._stop_submits.is_set():
            page = self.store.pending_after(last_seq, self.config.page_size)
            if not page:
                return
            for row in page:
                last_seq = row.seq
                if not await self._take_slot():
                    return
                self._spawn(tg, self._lifecycle(row))
            # A cron run (--no-wait) stops once the cap is full: the next run continues.
            if self.config.no_wait and self.cap.available == 0:
                return

    async def _take_slot(self, *, front: bool = False) -> bool:
        if self.config.no_wait:
            return not self._stop_submits.is_set() and self.cap.try_acquire()
        acquire = asyncio.ensure_future(self.cap.acquire(front=front))
        stop = asyncio.ensure_future(self._stop_submits.wait())
        try:
            await asyncio.wait({acquire, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if acquire.done() and not acquire.cancelled() and acquire.exception() is None:
            if self._stop_submits.is_set():
                self.cap.unreserve()
                return False
            return True
        acquire.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await acquire
        if acquire.done() and not acquire.cancelled() and acquire.exception() is None:
            self.cap.unreserve()  # it was granted while we were cancelling it
        return False

    # -- the end ----------------------------------------------------------------------------

    def _outcome(self) -> RunOutcome:
        counts = self.store.counts()
        work_left = sum(counts[s] for s in WORK_LEFT)
        if self._disk_full:
            code, how = EXIT_WORK_LEFT, "output folder full or not writable"
        elif self._account_error is not None:
            code, how = EXIT_ACCOUNT, f"account error: {self._account_error.message}"
        elif self.money.stop_message is not None and counts[st.PENDING]:
            code, how = EXIT_BUDGET, self.money.stop_message
        elif work_left:
            code, how = EXIT_WORK_LEFT, self._how if self._stop.is_set() else "work left"
        elif any(counts[s] for s in UNSUCCESSFUL):
            code, how = EXIT_SOME_FAILED, "finished, some jobs did not succeed"
        else:
            code, how = EXIT_OK, "finished"
        outage = self.outage.summary(self._wall())
        messages = self._messages
        target = self.cap.target
        if target.learned is not None:  # first, so a long list of notes cannot hide it
            messages = [
                f"the API's concurrency cap is lower than --max-in-flight "
                f"{self.config.max_in_flight}: it refused submits at {target.learned} tasks in "
                f"flight ({target.lowered} such 429s); the run held at most {self.cap.limit}",
                *messages,
            ]
        return RunOutcome(
            exit_code=code,
            how=how,
            counts=counts,
            account_error=self._account_error.message if self._account_error else None,
            messages=([outage] if outage else []) + messages,
        )
