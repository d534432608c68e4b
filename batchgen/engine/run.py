"""The run loop: one coroutine per job from submit to a terminal state, plus download workers.

Backpressure comes before spawning: the submitter takes an in-flight slot before it creates a
job's coroutine, so at most `max_in_flight` job coroutines exist, whatever the manifest's size,
and pending jobs are read from the state file a page at a time. Every request goes through the
shared rate limiter inside the client, where due polls outrank submits.

Each transition is committed to the state file before the next step: the intent before the POST,
the task id right after it (no `await` in between, so no cancellation can fall there).

`Engine` composes the parts around one `RunContext`: a `Submitter` (submit.py), a `Tracker`
(track.py) and `Downloads` (downloads.py). It owns the task group, the paging submitter, the
stop and drain, and what callbacks tell a running engine (`notify`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any

from batchgen import store as st
from batchgen.adapters.answers import TaskStatus
from batchgen.adapters.client import ApiClient
from batchgen.adapters.download.attempt import Downloader
from batchgen.clock import LOOP_CLOCK, Clock
from batchgen.engine.adopt import Adoptions
from batchgen.engine.chains import Chains
from batchgen.engine.chooser import AccountChooser
from batchgen.engine.config import EngineConfig, EngineStats, RunOutcome
from batchgen.engine.context import RunContext
from batchgen.engine.downloads import Downloads
from batchgen.engine.inflight import InFlightCap
from batchgen.engine.outcome import outcome
from batchgen.engine.submit import Submitter
from batchgen.engine.track import Tracker
from batchgen.engine.wakes import Wakeup
from batchgen.errors import IllegalTransition
from batchgen.inputs.prepare import PrepareInputs
from batchgen.money import Money
from batchgen.store import views


class Engine:
    """A run of one state file: its parts, composed around one RunContext."""

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
        clock: Clock = LOOP_CLOCK,
        wall: Callable[[], float] = time.time,
        cap: InFlightCap | None = None,
        pool: AccountChooser | None = None,
    ) -> None:
        self.context = run = RunContext(
            store, config, money=money, rng=rng, clock=clock, wall=wall, cap=cap
        )
        run.pool = pool  # several accounts (--accounts): accounts/pool.py
        self.client = client
        self.tracker = Tracker(run, client)
        self.chains = Chains(run)  # children wait for their parent here, holding no slot
        self.submitter = Submitter(run, client, self.tracker, self.chains.wrap(inputs))
        self.downloads = Downloads(run, downloader)
        if client is not None:  # a 429 naming no limit is read against our tasks (ApiClient)
            client.tasks_in_flight = lambda: run.admission.cap.tasks
        self._lifecycles: set[asyncio.Task[None]] = set()
        self._workers: list[asyncio.Task[None]] = []
        self._tg: asyncio.TaskGroup | None = None
        self.adoptions = Adoptions(run, client, self.tracker, self._spawn_now)
        run.callbacks.on_ambiguous = self.adoptions.turned_ambiguous
        # Money freed under the cap while jobs are left for it: a new pass looks at them.
        run.admission.money.spending.on_room = run.resubmits.set
        # Jobs whose coroutine lives: a page of pending rows is a snapshot, and a job spawned
        # by one pass of the submitter may still read `pending` when the next pass pages
        # (a transient resubmit starts one): it is never given a second coroutine.
        self._active: set[int] = set()
        self._passed_over: set[int] = set()  # skipped as active: a new pass when it ends
        self._chosen: set[int] = set()  # jobs this run submits (--limit counts these)

    # What progress displays, signal handlers and the callback receiver read.
    @property
    def store(self) -> st.Store:
        return self.context.store

    @property
    def config(self) -> EngineConfig:
        return self.context.config

    @property
    def stats(self) -> EngineStats:
        return self.context.stats

    @property
    def cap(self) -> InFlightCap:
        return self.context.admission.cap

    @property
    def money(self) -> Money:
        return self.context.admission.money

    def __repr__(self) -> str:
        run = self.context
        return (
            f"<Engine in_flight={run.admission.cap.in_flight}/{run.config.max_in_flight} "
            f"lifecycles={len(self._lifecycles)} downloads_queued={run.downloads.qsize()} "
            f"stopping={run.stops.all.is_set()}>"
        )

    # -- control ----------------------------------------------------------------------------

    def receive_callbacks_at(self, url: str, key_of: Callable[[str], str] | None = None) -> None:
        """Submits from now on ask the provider to post their news under `url` (the
        receiver's secret base), each job at its own `key_of(job id)` below it; polls become a
        fallback. With keys, ambiguous jobs can be adopted (engine/adopt.py)."""
        self.context.callbacks.url = url
        self.context.callbacks.key_of = key_of
        if key_of is not None:
            self.adoptions.start(key_of)

    def adopt(self, key: str, task_id: str) -> bool:
        """A callback at a job's own URL named a task this state file does not know: if that
        job is ambiguous, the task is confirmed and becomes its own. True when taken."""
        if self._tg is None or self.context.stops.all.is_set():
            return False
        return self.adoptions.offer(key, task_id)

    def request_stop(self, how: str = "stopped") -> None:
        """First signal or deadline: no new submits, pollers and downloads wind down."""
        self.context.request_stop(how)

    @property
    def stopping(self) -> bool:
        return self.context.stops.all.is_set()

    def notify(
        self,
        task_id: str,
        status: TaskStatus | None = None,
        *,
        claims_end: bool = False,
        still_running: bool = False,
    ) -> bool:
        """A callback named this task: wake its tracker, which confirms with one status request
        (or, when `status` is given by a receiver that trusts callbacks, uses it as is).
        A notice that the task still runs (`still_running`) wakes nobody: it claims nothing a
        request would need to check, and only says the provider calls this run. False when
        the task is not in flight (unknown, or already finished). News that comes before its
        tracker is ready (between the submit's answer and the first sleep, or for a recovered
        task not yet picked up) is kept for it, not dropped."""
        run = self.context
        news = run.callbacks.news
        event = news.wakes.get(task_id)
        if event is None:
            if not views.task_known(run.store.db, task_id, in_flight=True):
                return False
            event = news.wakes[task_id] = Wakeup(run.clock)
        news.seen.add(task_id)
        if still_running and not claims_end and status is None:
            return True
        if claims_end:
            news.claimed_end[task_id] = run.wall()
        if status is not None and status.terminal:
            news.delivered[task_id] = status
        event.set()
        return True

    def knows_task(self, task_id: str) -> bool:
        """Whether this state file ever recorded the task id (duplicate callbacks are normal)."""
        if task_id in self.context.callbacks.news.wakes:
            return True
        return views.task_known(self.context.store.db, task_id)

    # -- the run ----------------------------------------------------------------------------

    async def run(self) -> RunOutcome:
        run = self.context
        run.store.moves.recover_interrupted()
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            self._workers = [
                tg.create_task(self.downloads.worker()) for _ in range(run.config.download_workers)
            ]
            watchdog = tg.create_task(self._drain_watchdog())
            audit = tg.create_task(self.downloads.audit())
            for row in run.store.jobs.in_state(st.SUCCEEDED):
                run.downloads.put_nowait(row.seq)
            for row in run.store.jobs.in_state(st.IN_FLIGHT):
                first = self._recovered_first_delay(row)
                self._spawn(tg, row, self.tracker.track(row, first, recovered=True))
            if run.config.no_wait:
                # Cron: finish the one status check of due tasks first, so the slots of tasks
                # that ended are refilled by this run instead of the next one (issue 7).
                while self._lifecycles:
                    await asyncio.wait(set(self._lifecycles))
            await self._submit_pending(tg)
            await audit  # it may queue downloads: let it finish before waiting on them
            await self._until_idle(tg)
            if not run.stops.all.is_set():
                await run.downloads.join()
            for _ in self._workers:
                run.downloads.put_nowait(None)
            watchdog.cancel()
        self._tg = None
        if run.admission.money.halted:
            # Jobs put back to pending after the halt (a transient resubmit) say why they
            # were not sent either.
            run.store.ledger.note_pending(run.admission.money.stop_message or "")
        for seq in run.admission.money.spending.left:  # each job the cap left, with its price
            run.store.ledger.note_pending(
                run.admission.money.spending.left_note(seq) or "", seq=seq
            )
        if self.chains.still_waiting():
            run.messages.append(
                f"{self.chains.still_waiting()} job(s) wait for a parent job that did not "
                "succeed in this run: they stay pending for the next run"
            )
        if self.adoptions.adopted:
            run.messages.append(
                f"{self.adoptions.adopted} ambiguous job(s) adopted their task: its callback "
                "reached the job's own URL and its status confirmed it"
            )
        return outcome(run)

    async def _until_idle(self, tg: asyncio.TaskGroup) -> None:
        """Wait for every job's coroutine; jobs put back to pending after a transient failure
        meanwhile are submitted again (a new pass of the submitter)."""
        run = self.context
        while self._lifecycles or run.resubmits.is_set():
            if run.resubmits.is_set():
                run.resubmits.clear()
                if not run.stops.submits.is_set():
                    await self._submit_pending(tg)
                continue
            every = asyncio.ensure_future(asyncio.wait(set(self._lifecycles)))
            news = asyncio.ensure_future(run.resubmits.wait())
            await asyncio.wait({every, news}, return_when=asyncio.FIRST_COMPLETED)
            every.cancel()
            news.cancel()

    async def _drain_watchdog(self) -> None:
        """After a stop, in-flight calls get `drain_s` to finish; then they are cancelled (a
        cancelled submit is recorded as ambiguous, a cancelled download keeps its .part)."""
        run = self.context
        await run.stops.all.wait()
        await run.clock.sleep(run.config.drain_s)
        for task in [*self._lifecycles, *self._workers]:
            task.cancel()

    def _spawn(
        self, tg: asyncio.TaskGroup, row: st.JobRow, coro: Coroutine[Any, Any, None]
    ) -> None:
        self._active.add(row.seq)
        task = tg.create_task(self._guarded(row, coro))
        self._lifecycles.add(task)
        task.add_done_callback(lambda t: self._ended(t, row.seq))

    def _may_submit(self, row: st.JobRow) -> bool:
        """A partial run (--only, --limit) submits only the jobs it was asked for; a job it
        submitted may go again after a transient failure. The rest stay pending, and the
        run's outcome says so."""
        cfg = self.context.config
        if cfg.only_ids is not None and row.id not in cfg.only_ids:
            self.context.stops.held_back = (
                "--only: the jobs not named stay pending for the next run"
            )
            return False
        limit = cfg.submit_limit
        if limit is None or row.seq in self._chosen or len(self._chosen) < limit:
            return True
        self.context.stops.held_back = (
            f"--limit {limit}: {limit} job(s) submitted in this run; the rest stay pending for "
            "the next run"
        )
        return False

    def _still_pending(self, row: st.JobRow) -> bool:
        """A page is a snapshot: a job active when it was read (waiting for its price's turn)
        may have been sent and finished before this pass reached it. Read again before a
        second coroutine is made for it (a child's pass makes this common)."""
        fresh = self.context.store.jobs.by_seq(row.seq)
        return fresh is not None and fresh.state == st.PENDING

    def _spawn_now(self, row: st.JobRow, coro: Coroutine[Any, Any, None]) -> None:
        """Spawn into the running task group (adoptions, watchers of ambiguous jobs)."""
        if self._tg is None:
            coro.close()
            return
        self._spawn(self._tg, row, coro)

    def _ended(self, task: asyncio.Task[None], seq: int) -> None:
        self._lifecycles.discard(task)
        self._active.discard(seq)
        if self.chains.ended(seq):  # its children may go: a new pass
            self.context.resubmits.set()
        if seq in self._passed_over:  # a pass skipped it while it lived: look again
            self._passed_over.discard(seq)
            self.context.resubmits.set()

    async def _guarded(self, row: st.JobRow, coro: Coroutine[Any, Any, None]) -> None:
        """A move the table refuses is a bug in batchgen, never the end of a run: it is
        logged with the job, the job stays as the state file has it, and the run goes on
        (the task group would otherwise cancel every other job, leaving submits on the wire
        ambiguous)."""
        try:
            await coro
        except IllegalTransition as exc:
            self.context.bug(row, exc)

    def _recovered_first_delay(self, row: st.JobRow) -> float:
        if row.submitted_at is None:
            return 0.0
        due = row.submitted_at + self.context.first_poll_delay(row)
        return max(0.0, due - self.context.wall())

    async def _submit_pending(self, tg: asyncio.TaskGroup) -> None:
        """Pending jobs a page at a time, each spawned only once it holds an in-flight slot."""
        run = self.context
        last_seq = 0
        while not run.stops.submits.is_set():
            page = run.store.jobs.pending_after(last_seq, run.config.page_size)
            if not page:
                return
            for row in page:
                last_seq = row.seq
                if not self._may_submit(row) or not self.chains.may_go(row):
                    continue
                if row.seq in self._active:
                    self._passed_over.add(row.seq)
                    continue
                if not await run.admission.money.may_fit(row):  # left for the cap: the next may fit
                    self.submitter.over_cap(row)
                    if run.admission.money.halted:
                        return
                    continue
                if not await run.admission.take_slot():
                    return
                if row.seq in self._active:  # spawned by another pass while this one waited
                    self._passed_over.add(row.seq)
                    run.admission.cap.unreserve()
                    continue
                if not self._still_pending(row):  # its coroutine ran and ended meanwhile
                    run.admission.cap.unreserve()
                    continue
                self._chosen.add(row.seq)
                self._spawn(tg, row, self.submitter.lifecycle(row))
            # A cron run (--no-wait) stops once the cap is full: the next run continues.
            if run.config.no_wait and run.admission.cap.available == 0:
                return
