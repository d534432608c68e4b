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
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from batchgen import models
from batchgen import store as st
from batchgen.adapters.client import (
    ApiClient,
    BadAnswer,
    SubmitSkipped,
    TaskStatus,
    UntrackableTaskId,
)
from batchgen.adapters.download import Downloader
from batchgen.adapters.paths import render_filename, safe_output_path
from batchgen.adapters.taskids import shown
from batchgen.core import verdicts
from batchgen.core.policy import (
    Backoff,
    PollSchedule,
    backoff_delay,
    first_poll_delay,
    next_poll_delay,
)
from batchgen.core.policy import retry_delay as policy_retry_delay
from batchgen.core.verdicts import Act
from batchgen.engine.gate import SubmitGate
from batchgen.engine.inflight import InFlightCap
from batchgen.engine.outage import OutageWatch, PollVerdict, after_unreadable
from batchgen.engine.wakes import POLL_GRID, Wakeup, confirm_delay
from batchgen.errors import (
    AccountError,
    ApiConnectionError,
    ApiError,
    RateLimited,
    ServerError,
)
from batchgen.inputs.prepare import InputRejected, PrepareInputs
from batchgen.money import Money
from batchgen.states import UNSUCCESSFUL, WORK_LEFT
from batchgen.store import ledger, views

log = logging.getLogger("batchgen.engine")

RESULT_LIFETIME_S = 15 * 86400.0

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_ACCOUNT = 3
EXIT_BUDGET = 5  # submits stopped at the spend cap (or the balance): raise it, run again
EXIT_WORK_LEFT = 75


@dataclass
class EngineConfig:
    output_dir: Path
    filename_template: str = "{id}.mp4"
    max_in_flight: int = 1000
    poll: PollSchedule = field(default_factory=PollSchedule)
    backoff: Backoff = field(default_factory=lambda: Backoff(base=1.0, cap=60.0))
    max_submit_tries: int = 8  # per job per run, for answers that prove no task was made
    # An unreadable status answer never fails a task (batchgen/engine/outage.py): its polls back off
    # up to poll_backoff.cap, and after status_outage_s of its status unreadable it is not
    # polled again in this run. None: keep asking for as long as it takes.
    poll_backoff: Backoff = field(default_factory=lambda: Backoff(base=1.0, cap=300.0))
    status_outage_s: float | None = 1800.0
    max_not_found: int = 5  # "unknown task" answers in a row before failing the job
    download_workers: int = 8
    download_tries: int = 3  # per file per run, beyond the downloader's own retries
    result_lifetime_s: float = RESULT_LIFETIME_S
    no_wait: bool = False  # cron: submit what fits, collect what is done, exit
    drain_s: float = 5.0  # on stop: how long in-flight HTTP calls may finish
    page_size: int = 256
    # Callback mode: submit with request_type=callback and this URL; poll only as a fallback.
    callback_url: str | None = None
    callback_grace_s: float = 60.0  # after the end of the expected generation time
    callback_poll_every_s: float = 30.0
    # News from callbacks costs at most one status request per task per this window (see
    # batchgen.engine.wakes); news within it is confirmed when it ends.
    callback_guard_s: float = 0.5
    # A task still pending or processing this long after its submit (30 times the documented
    # generation time) stops being polled in this run, so the run can end; it stays in flight
    # and keeps its slot, and the next run polls it again. None: poll for as long as it takes.
    stuck_after_s: float | None = 3600.0


@dataclass
class EngineStats:
    """Live figures for progress displays; read-only for everyone but the engine."""

    submitted: int = 0
    polls: int = 0
    done: int = 0
    failed: int = 0
    ambiguous: int = 0
    orphaned: int = 0
    expired: int = 0
    downloaded_bytes: int = 0
    rate_limited: int = 0
    started_at: float = field(default_factory=time.monotonic)


@dataclass
class RunOutcome:
    exit_code: int
    how: str
    counts: dict[str, int]
    account_error: str | None = None
    messages: list[str] = field(default_factory=list)


class Engine:
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
    ) -> None:
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

    async def _audit_done_files(self) -> None:
        """Files recorded as done must still be on disk as they were: a missing or altered
        one is fetched again while its URL lives. Size and mtime first; a hash only when the
        mtime moved, so a resume does not reread gigabytes. One thread hop per page."""
        last = (0, -1)
        while not self._stop.is_set():
            rows = views.done_files_after(self.store.db, last, self.config.page_size)
            if not rows:
                return
            last = (rows[-1][0], rows[-1][1])
            intact = await asyncio.to_thread(
                lambda page=rows: [
                    rel is None or _file_intact(self.config.output_dir / rel, size, sha, mtime)
                    for _, _, rel, size, sha, mtime, _, _ in page
                ]
            )
            requeue: set[int] = set()
            for (seq, idx, rel, _, _, _, expires, job_id), ok in zip(rows, intact, strict=True):
                if ok:
                    continue
                if expires is not None and time.time() < expires:
                    self.store.mark_file_missing(seq, idx)
                    requeue.add(seq)
                    log.warning("%s: %s is missing or altered; fetching it again", job_id, rel)
                else:
                    self._messages.append(
                        f"{job_id}: {rel} is missing or altered and its URL has expired"
                    )
            for seq in sorted(requeue):
                self._downloads.put_nowait(seq)

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
        return max(0.0, due - time.time())

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

    # -- one job: submit, then track ----------------------------------------------------------

    async def _lifecycle(self, row: st.JobRow) -> None:
        # The first submit of a price class goes alone, to learn its price
        # (batchgen/money/pricing.py).
        async with self.money.turn(row) as ticket:
            task_id = await self._submit(row)
            if task_id is not None:
                await self.money.after(ticket, row.seq)
        if task_id is None:
            if row.seq in self._no_slot:  # stopped while waiting for a slot after a 429
                self._no_slot.discard(row.seq)
            else:
                self.cap.unreserve()
            return
        delay = self._first_poll_delay(row)
        if self.config.no_wait:
            return  # tracked by the next cron run
        await self._track(row, delay, task_id=task_id, submitted_at=time.time())

    async def _submit(self, row: st.JobRow) -> str | None:
        """POST with retries for answers that prove no task was created. None: no task now."""
        body = self._prepare_body(row)
        if self.inputs is not None:
            try:
                body = await self.inputs(row.id, body)
            except InputRejected as exc:  # nothing sent: the image would fail the task
                self._fail(row, exc.code, exc.message)
                return None
        intent = False  # True once the intent is on disk and the bytes may leave

        async def record_intent() -> bool:
            nonlocal intent
            if self._stop_submits.is_set() or not await self._reserve(row):
                return False
            try:
                await self.store.synced()  # survives a power cut before anything is sent
            except BaseException:
                self._not_submitted(row)  # nothing left: plainly pending again
                raise
            intent = True
            return True

        attempt = refusals = 0
        while attempt < self.config.max_submit_tries:
            if self._stop_submits.is_set():
                return None
            intent = False
            try:
                task_id = await self._gated_submit(body, record_intent, row.model)
            except asyncio.CancelledError:
                if intent:
                    self.money.sent(row.seq)
                    self._ambiguous(row, "the run was stopped while its submit was on the wire")
                raise
            except Exception as exc:
                verdict = verdicts.on_submit(exc)
                if verdict is None:
                    raise
                act = verdict.act
                if act is Act.SKIPPED:
                    return None
                if act is Act.AMBIGUOUS:
                    return self._ambiguous(row, verdict.note)
                if act is Act.ORPHANED:
                    assert isinstance(exc, UntrackableTaskId)
                    return self._orphaned(row, exc)
                if act is Act.FAIL:
                    self.money.release(row.seq)  # refused: no task was made
                    self.store.mark_failed(row.seq, verdict.code or "FAILED", verdict.note)
                    self.stats.failed += 1
                    return None
                self._not_submitted(row)  # the answer proves that no task was made
                if act is Act.STOP_ACCOUNT:
                    assert isinstance(exc, ApiError)
                    stop = exc if isinstance(exc, AccountError) else AccountError(exc.status, "")
                    stop.message = verdict.note
                    self._account_stop(stop)
                    return None
                if act is Act.WAIT:
                    # A 429 is not a failed try of this job: it waits for capacity, however
                    # long (--max-runtime bounds a run).
                    assert isinstance(exc, RateLimited)
                    self.stats.rate_limited += 1
                    refusals += 1
                    if not await self._wait_after_429(row, exc, refusals):
                        return None
                    continue
                delay = backoff_delay(attempt, self.config.backoff, self.rng)  # Act.RETRY
            else:
                # No await between the answer and this commit: nothing can interrupt it.
                if not self.store.mark_in_flight(row.seq, task_id):
                    self.money.sent(row.seq)
                    return self._duplicate_task(row, task_id)
                self.money.created(row.seq)
                self.cap.created()
                self.stats.submitted += 1
                await self.store.synced()
                return task_id
            if not await self._sleep(delay):
                return None
            attempt += 1
        self._messages.append(f"{row.id}: not submitted after {self.config.max_submit_tries} tries")
        return None

    async def _gated_submit(
        self,
        body: dict,
        before_send: Callable[[], Awaitable[bool]],  # type: ignore[type-arg]
        model: str | None = None,
    ) -> str:
        """client.submit through the submit gate (batchgen/engine/gate.py): while a submit's fate is
        in doubt, submits wait for a sign of life and then go single file."""
        gate = self.gate
        while True:
            while gate.in_doubt:
                await gate.lock.acquire()
                try:
                    if gate.in_doubt:
                        if not await self._sign_of_life():
                            raise SubmitSkipped()  # stopping: nothing was sent
                        return await self._judged_submit(body, before_send, model)
                finally:
                    gate.lock.release()
            closed = False

            async def unless_closed() -> bool:
                # The gate may have closed while this submit queued for the rate limiter:
                # it must not go out into the outage; it goes back to wait at the gate.
                nonlocal closed
                if gate.in_doubt:
                    closed = True
                    return False
                return await before_send()

            try:
                return await self._judged_submit(body, unless_closed, model)
            except SubmitSkipped:
                if not closed:
                    raise

    async def _judged_submit(
        self,
        body: dict,
        before_send: Callable[[], Awaitable[bool]],  # type: ignore[type-arg]
        model: str | None = None,
    ) -> str:
        """One submit; its answer opens or closes the gate."""
        try:
            task_id = await self.client.submit(body, before_send=before_send, model=model)
        except (BadAnswer, ApiConnectionError) as exc:
            if getattr(exc, "sent", True):
                self.gate.doubt(self.client.alive_answers)
                self._api_unreadable(exc)  # with no task to probe, the submits are the probes
            raise
        except (RateLimited, SubmitSkipped):
            raise  # no word on the API behind whoever refused
        except (ApiError, UntrackableTaskId):
            self.gate.answered()
            raise
        self.gate.answered()
        return task_id

    async def _sign_of_life(self) -> bool:
        """Wait, backing off with the run's backoff, until the API has answered in its own
        words since the doubtful answer; ask it about a task this state file knows (a GET:
        it creates nothing) when nothing else did. With no task to ask about, the next
        submit itself goes, alone. A probe that cannot be read counts toward the status
        outage (batchgen/engine/outage.py): once nothing was readable for --status-outage, submits
        stop and the run ends 75 instead of probing for ever. False: stop."""
        gate = self.gate
        while not gate.heard_since_doubt(self.client.alive_answers):
            if self._stop_submits.is_set():
                return False
            if gate.doubts == 1:
                log.warning(
                    "a submit's answer left its fate unknown: further submits wait for the "
                    "API to answer in its own words, then go one at a time"
                )
            delay = backoff_delay(gate.doubts - 1, self.config.backoff, self.rng)
            if not await self._sleep_unless_no_submits(delay):
                return False
            if gate.heard_since_doubt(self.client.alive_answers):
                break
            known = self.store.known_task()
            if known is None or known.task_id is None:
                return not self._stop_submits.is_set()
            await self._probe(known.task_id, known.model)
            gate.doubts += 1  # heard or not, the next wait (if any) is longer
        return not self._stop_submits.is_set()

    async def _probe(self, task_id: str, model: str | None) -> None:
        """One status request as a sign of life; an unreadable answer feeds the outage watch
        (under no task: the probed task may be long done), and a lasting one stops submits."""
        try:
            await self.client.status(task_id, model=model)
        except (ServerError, ApiConnectionError) as exc:
            self._api_unreadable(exc)
        except ApiError:
            self._readable(None)  # its own words: an outage is over
        else:
            self._readable(None)

    def _api_unreadable(self, exc: Exception) -> None:
        """An answer of the submit gate's (a probe, a doubtful submit) that cannot be read
        counts toward the outage under no task; once nothing was readable for
        --status-outage, submits stop (exit 75): an API down for good ends the run instead
        of turning one job after another ambiguous, one per backoff step."""
        now = time.time()
        self.outage.unreadable(None, now, str(exc) or type(exc).__name__)
        if self.outage.over(now) and not self._stop_submits.is_set():
            log.warning(
                "no answer from the API readable for %.0f s: no new submits in this run",
                now - (self.outage.since or now),
            )
            self._stop_submits.set()

    async def _sleep_unless_no_submits(self, seconds: float) -> bool:
        """Like _sleep, but a stop of submits (an outage, an account error) ends it too."""
        if self._stop_submits.is_set():
            return False
        try:
            await asyncio.wait_for(self._stop_submits.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            return not self._stop.is_set()
        return False

    async def _wait_after_429(self, row: st.JobRow, exc: RateLimited, refusals: int) -> bool:
        """Wait until this job may submit again; False: stop (no task, job still pending).

        A 429 that names the concurrency cap (or names no limit while tasks of ours exist:
        ApiClient reads that as the cap too) lowers the in-flight target to the tasks that
        exist and puts the job at the head of the queue for the next free slot: it goes when
        a task ends. Otherwise it is the request rate: the client's limiter is paused for
        everyone (ApiClient), and the job backs off on its own too, so jobs refused together
        do not all come back at the same instant."""
        if exc.limit != "concurrency":
            delay = policy_retry_delay(refusals - 1, self.config.backoff, self.rng, exc.retry_after)
            return await self._sleep(delay)
        self._saturated(exc)
        if self.config.no_wait:
            return False  # no task ends in a cron run: the next run submits it
        self.cap.unreserve()
        self._no_slot.add(row.seq)
        if self.cap.tasks and self.cap.in_flight <= self._stuck:
            self._cap_held_by_stuck()
            return False
        delay = exc.retry_after or 0.0
        if not self.cap.tasks:  # no task of ours to wait for: someone else holds the cap
            delay = max(delay, backoff_delay(refusals - 1, self.config.backoff, self.rng))
        if delay and not await self._sleep(delay):
            return False
        if not await self._take_slot(front=True):
            return False
        self._no_slot.discard(row.seq)
        return True

    def _cap_held_by_stuck(self) -> None:
        """A concurrency 429 while every slot of ours is held by a task not polled again in
        this run (stuck, or its status unreadable): none of them will free a slot that this
        run sees, so waiting for one would last for ever. Submits stop (exit 75); the next
        run polls those tasks again and submits when they end."""
        if self._stop_submits.is_set():
            return
        note = (
            f"the API's concurrency cap is full and all {self.cap.tasks} task(s) of ours "
            "holding it are no longer polled in this run: no new submits; the next run "
            "polls them again"
        )
        self._messages.append(note)
        log.warning("%s", note)
        self._stop_submits.set()

    def _saturated(self, exc: RateLimited) -> None:
        """Lower the in-flight target to the tasks that exist; say so when the cap learned
        from the server changes."""
        self.cap.saturated(time.monotonic())
        learned = self.cap.target.learned
        if learned is None or learned == self._learned_logged:
            return
        first = self._learned_logged is None
        self._learned_logged = learned
        log.log(
            logging.WARNING if first else logging.INFO,
            "the API refused a submit with %d of our tasks in flight (%s): holding at most "
            "%d in flight, probing upward slowly (--max-in-flight %d)",
            self.cap.tasks,
            exc.message,
            self.cap.limit,
            self.config.max_in_flight,
        )

    async def _reserve(self, row: st.JobRow) -> bool:
        """The intent and its price's reservation under the cap (batchgen/money/spending.py)."""
        ok = await self.money.reserve(row)
        if ok is False:  # over the cap: no new submits; tracking and downloads go on
            if not self._stop_submits.is_set():
                log.warning("%s", self.money.stop_message)
                ledger.note_pending(self.store, self.money.stop_message or "")
            self._stop_submits.set()
        return bool(ok)

    def _not_submitted(self, row: st.JobRow) -> None:
        """The POST surely made no task: plainly pending again, its reservation released."""
        self.money.release(row.seq)
        self.store.mark_not_submitted(row.seq)

    def _ambiguous(self, row: st.JobRow, note: str) -> None:
        self.money.sent(row.seq)  # may have made a task: its price stays counted
        self.store.mark_ambiguous(row.seq, note)
        self.stats.ambiguous += 1
        log.warning("%s is ambiguous: %s", row.id, note)
        return None

    def _duplicate_task(self, row: st.JobRow, task_id: str) -> None:
        """The API answered this submit with a task id another job already holds: that task's
        result belongs to the other job. Whether a task was made for this body is unknown."""
        owner = self.store.task_owner(task_id, besides=row.seq)
        if owner is None:  # not a duplicate: the job left `submitting` meanwhile (cannot happen)
            log.error("%s: task id %s not recorded", row.id, shown(task_id))
            return None
        note = (
            f"the API answered its submit with task id {shown(task_id)}, which job "
            f"{owner} already holds: a task for this body may or may not exist; the other "
            "job's result is never taken as this one's"
        )
        self._messages.append(f"{row.id}: {note}")
        return self._ambiguous(row, note)

    def _orphaned(self, row: st.JobRow, exc: UntrackableTaskId) -> None:
        """A task was created (an answer came) under an id batchgen cannot send back."""
        note = (
            f'the API created a task and answered with task id "{exc.kept}" (escaped), which '
            f"cannot be sent back ({exc.reason}): the task exists and is probably billed, but "
            "batchgen cannot poll or download it; `batchgen retry STATE --orphaned` submits "
            "the job again and pays again"
        )
        self.money.sent(row.seq)
        self.store.mark_orphaned(row.seq, note)
        self.stats.orphaned += 1
        self._messages.append(f'{row.id}: orphaned, task id "{exc.shown}": {exc.reason}')
        log.warning("%s is orphaned: %s", row.id, note)
        return None

    def _account_stop(self, exc: ApiError) -> None:
        if self._account_error is None:
            self._account_error = exc
            log.error("account-level error, no new submits: %s", exc.message)
        self._stop_submits.set()

    async def _track(
        self,
        row: st.JobRow,
        first_delay: float,
        *,
        task_id: str | None = None,
        recovered: bool = False,
        submitted_at: float | None = None,
    ) -> None:
        """Poll one task until it ends; release its in-flight slot exactly once."""
        task_id = task_id or row.task_id
        assert task_id is not None
        submitted_at = submitted_at or row.submitted_at or time.time()
        callback = self._is_callback(row)
        if callback and not recovered:
            first_delay = first_delay * 1.5 + self.config.callback_grace_s
        if self.config.no_wait and recovered and first_delay > 0:
            return  # not due yet: a later cron run will look
        released = False
        wake = self._wake.setdefault(task_id, Wakeup())  # news may have come before us
        last_request: float | None = None  # loop time of this task's last status request
        try:
            if not await self._sleep_or_wake(wake, first_delay, task_id, last_request):
                return
            not_found = attempt = 0
            while True:
                delay: float
                try:
                    delivered = self._delivered.pop(task_id, None)
                    if delivered is not None:
                        status = delivered
                    else:
                        wake.clear()  # news so far is confirmed by this request
                        last_request = asyncio.get_running_loop().time()
                        status = await self.client.status(task_id, model=row.model)
                        self.stats.polls += 1
                except Exception as exc:
                    verdict = verdicts.on_status(exc)
                    if verdict is None:
                        raise
                    if verdict.act is Act.STOP_ACCOUNT:
                        assert isinstance(exc, AccountError)
                        self._account_stop(exc)
                        return  # the task stays in_flight; a run with a working key goes on
                    if verdict.act is Act.WAIT:
                        self.stats.rate_limited += 1
                        delay = policy_retry_delay(
                            attempt, self.config.backoff, self.rng, verdict.retry_after
                        )
                        attempt += 1
                    elif verdict.act is Act.UNREADABLE:
                        outage = self._unreadable(row, task_id, submitted_at, exc)
                        if outage is PollVerdict.EXPIRE:
                            released = True
                            return
                        if outage is PollVerdict.PARK:
                            return
                        delay = policy_retry_delay(
                            attempt, self.config.poll_backoff, self.rng, verdict.retry_after
                        )
                        attempt += 1
                    else:  # Act.NOT_FOUND: the API's own word
                        self._readable(task_id)
                        not_found += 1
                        if not_found >= self.config.max_not_found:
                            self._fail(
                                row,
                                "TASK_NOT_FOUND",
                                f"the provider does not know task {shown(task_id)}: {verdict.note}",
                            )
                            released = True
                            return
                        delay = next_poll_delay(self.config.poll, self.rng)
                else:
                    self._readable(task_id)
                    attempt = not_found = 0
                    if status.terminal:
                        self._finish(row, status)
                        released = True
                        return
                    if self.config.no_wait:
                        return
                    if self._stuck_now(row, task_id, status.raw_state, submitted_at):
                        return
                    delay = self._next_delay(callback, recovered, task_id)
                if not await self._sleep_or_wake(wake, delay, task_id, last_request):
                    return
        finally:
            self._wake.pop(task_id, None)
            self._delivered.pop(task_id, None)
            self._claimed_end.discard(task_id)
            if released:
                self.cap.release()

    def _readable(self, task_id: str | None) -> None:
        lasted = self.outage.readable(task_id, time.time())
        if lasted is not None:
            log.warning("status answers readable again after %.0f s", lasted)

    def _unreadable(
        self, row: st.JobRow, task_id: str, submitted_at: float, exc: Exception
    ) -> PollVerdict:
        """Note an unreadable status answer and decide (outage.after_unreadable) whether the
        tracker waits, stops polling for this run, or the task's result lifetime is over."""
        now = time.time()
        error = str(exc) or type(exc).__name__
        if self.outage.unreadable(task_id, now, error):
            log.warning(
                "status answers unreadable (%s): tasks stay in flight and are polled with "
                "backoff, never failed for it",
                error,
            )
        verdict = after_unreadable(
            now=now,
            task_since=self.outage.task_since(task_id, now),
            submitted_at=submitted_at,
            window_s=self.config.status_outage_s,
            result_lifetime_s=self.config.result_lifetime_s,
            no_wait=self.config.no_wait,
        )
        if verdict is PollVerdict.EXPIRE:
            self.outage.tasks.pop(task_id, None)
            self.store.mark_expired(
                row.seq,
                f"task {task_id}: status unreadable ({error}) and its result lifetime is over",
            )
            self.stats.expired += 1
            log.warning("%s: task %s expired while its status was unreadable", row.id, task_id)
        elif verdict is PollVerdict.PARK:
            self.outage.park(task_id)
            self._give_up_for_run()
        if self.outage.over(now) and not self._stop_submits.is_set():
            log.warning(
                "no status answer readable for %.0f s: no new submits in this run",
                now - (self.outage.since or now),
            )
            self._stop_submits.set()
        return verdict

    def _give_up_for_run(self) -> None:
        """A task not polled again in this run keeps its slot (the provider still counts it);
        once every taken slot is such a task, no slot can ever free, so submits stop too and
        the run ends with exit 75."""
        self._stuck += 1
        if self.cap.in_flight <= self._stuck:
            self._stop_submits.set()

    def _stuck_now(self, row: st.JobRow, task_id: str, state: str, submitted_at: float) -> bool:
        """Give a task up for this run once it has run far past any documented time (see
        _give_up_for_run)."""
        limit = self.config.stuck_after_s
        spec = models.find(row.model)
        if limit is not None and spec is not None:
            limit *= spec.stuck_factor(row.duration)  # a model slower than Kling 2.1 waits longer
        age = time.time() - submitted_at
        if limit is None or age < limit:
            return False
        self._give_up_for_run()
        self._messages.append(
            f"{row.id}: task {shown(task_id)} is still {state!r} {age:.0f} s after its submit; "
            "left in flight: the next run polls it again"
        )
        log.warning(
            "%s: task %s still %r after %.0f s; not polled again in this run",
            row.id,
            shown(task_id),
            state,
            age,
        )
        return True

    def _is_callback(self, row: st.JobRow) -> bool:
        if self.config.callback_url:
            return True
        return '"request_type":"callback"' in row.body.replace(" ", "")

    def _next_delay(self, callback: bool, recovered: bool, task_id: str) -> float:
        """Callback tasks are polled slowly, as a fallback for lost callbacks; after a restart
        a task is polled at the normal pace until its own callback reaches this run (the
        provider may still be calling an address the last run listened on). A task whose
        callback claimed an end its status does not show yet is polled at the normal pace:
        the provider may not post again, and the slow pace would leave it waiting minutes."""
        if task_id in self._claimed_end:
            return next_poll_delay(self.config.poll, self.rng)
        if callback and (not recovered or task_id in self._callback_seen):
            every = self.config.callback_poll_every_s
            return every * (1 + self.config.poll.jitter * (2 * self.rng.random() - 1))
        return next_poll_delay(self.config.poll, self.rng)

    async def _sleep_or_wake(
        self, wake: Wakeup, seconds: float, task_id: str, last_request: float | None
    ) -> bool:
        """Like _sleep, but news from a callback ends the wait early. The news is confirmed at
        once, or when the guard window after this task's last status request ends (news that
        comes meanwhile joins that one confirmation; a trusted end needs none). False means
        stop. One future and one timer per sleep: a thousand trackers sleep at little cost."""
        if self._stop.is_set():
            return False
        news = await wake.sleep(seconds, grid=self.config.poll.poll_every * POLL_GRID)
        loop = asyncio.get_running_loop()
        while news and not self._stop.is_set() and task_id not in self._delivered:
            wait = confirm_delay(loop.time(), last_request, self.config.callback_guard_s)
            if wait <= 0:
                break
            await wake.sleep(wait)
        return not self._stop.is_set()

    def _fail(self, row: st.JobRow, code: str, message: str) -> None:
        self.store.mark_failed(row.seq, code, message)
        self.stats.failed += 1
        log.info("%s failed: %s %s", row.id, code, message)

    def _finish(self, row: st.JobRow, status: TaskStatus) -> None:
        times = {
            "create_time_ms": status.create_time_ms,
            "complete_time_ms": status.complete_time_ms,
            "cost_time_ms": status.cost_time_ms,
        }
        if status.state == "failed":
            code = status.fail_code or "FAILED"
            if self.money.finished(row, status.task_id, code, status.fail_msg or ""):
                self._resubmits.set()  # a transient failure: the job is pending again
                return
            self.store.mark_failed(
                row.seq, status.fail_code or "FAILED", status.fail_msg or "", **times
            )
            self.stats.failed += 1
            return
        completed = (status.complete_time_ms / 1000.0) if status.complete_time_ms else time.time()
        completed = min(completed, time.time())  # a server clock in the future buys no time
        self.money.finished(row, status.task_id, None, "")
        self.store.mark_succeeded(
            row.seq,
            status.result_urls,
            expires_at=completed + self.config.result_lifetime_s,
            **times,
        )
        self._downloads.put_nowait(row.seq)

    # -- downloads --------------------------------------------------------------------------

    async def _download_worker(self) -> None:
        while True:
            seq = await self._downloads.get()
            try:
                if seq is None:
                    return
                if not self._stop.is_set() and self._disk_full is None:
                    await self._download_job(seq)
            finally:
                self._downloads.task_done()

    async def _download_job(self, seq: int) -> None:
        row = self.store.job_by_seq(seq)
        if row is None or row.state != st.SUCCEEDED:
            return
        files = self.store.files_of(seq)
        mode = row.mode or ""
        missing = [f for f in files if f.done_at is None]
        if not missing:
            self.store.mark_done(seq)
            self.stats.done += 1
            return
        for f in missing:
            try:
                rel = render_filename(
                    self.config.filename_template,
                    job_id=row.id,
                    index=f.idx,
                    task_id=row.task_id,
                    mode=mode,
                    n_results=len(files),
                    job_index=row.seq,
                )
                dest = safe_output_path(self.config.output_dir, rel)
            except ValueError as exc:  # a hostile id or task id, or a symlink pointing out
                self._expire_or_fail(row, f"no safe file name: {exc}", fail=True)
                return
            # The last file's record and the job's `done` share one transaction.
            ok = await self._download_file(row, f.idx, f.url, dest, last=f is missing[-1])
            if not ok:
                return
        self.stats.done += 1

    async def _download_file(
        self, row: st.JobRow, idx: int, url: str, dest: Path, *, last: bool = False
    ) -> bool:
        for attempt in range(self.config.download_tries):
            try:
                result = await self.downloader.fetch(url, dest)
            except Exception as exc:
                verdict = verdicts.on_download(
                    exc,
                    now=time.time(),
                    expires_at=self.store.expires_at(row.seq) or 0.0,
                    last_try=attempt + 1 >= self.config.download_tries,
                )
                if verdict is None:
                    raise
                if verdict.act is Act.STOP_RUN:
                    self._disk_full = verdict.note
                    self._messages.append(f"output folder unusable: {verdict.note}")
                    self.request_stop("output folder full or not writable")
                    return False
                if verdict.act is Act.FAIL:
                    self._expire_or_fail(row, verdict.note, fail=True, code=verdict.code or "")
                    return False
                if verdict.act is Act.EXPIRE:
                    self._expire_or_fail(row, verdict.note)
                    return False
                if verdict.act is Act.LEAVE:
                    self._messages.append(f"{row.id}: {verdict.note}")
                    return False
                log.warning("%s: %s", row.id, verdict.note)  # Act.RETRY: back off, again
            else:
                self.stats.downloaded_bytes += result.fetched_bytes
                st_ = os.stat(result.path)
                self.store.mark_file_done(
                    row.seq,
                    idx,
                    path=str(result.path.relative_to(self.config.output_dir)),
                    size=result.bytes,
                    sha256=result.sha256,
                    mtime_ns=st_.st_mtime_ns,
                    job_done=last,
                )
                return True
            if not await self._sleep(backoff_delay(attempt + 2, self.config.backoff, self.rng)):
                return False
        return False

    def _expire_or_fail(
        self, row: st.JobRow, message: str, *, fail: bool = False, code: str = "DOWNLOAD_REFUSED"
    ) -> None:
        if fail:
            self.store.mark_download_failed(row.seq, code, message)
            self.stats.failed += 1
        else:
            self.store.mark_expired(row.seq, message)
            self.stats.expired += 1
        log.warning("%s: %s", row.id, message)

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
        outage = self.outage.summary(time.time())
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


def describe(outcome: RunOutcome) -> str:
    parts = [f"{k} {v}" for k, v in outcome.counts.items() if v]
    return f"{outcome.how}: " + (", ".join(parts) or "no jobs")


def _file_intact(path: Path, size: int | None, sha256: str | None, mtime_ns: int | None) -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return False
    if size is not None and info.st_size != size:
        return False
    if mtime_ns is not None and info.st_mtime_ns == mtime_ns:
        return True
    return sha256 is None or Downloader.verify_existing(path, sha256, info.st_size)
