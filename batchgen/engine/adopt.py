"""Ambiguous jobs in callback mode: the provider itself says which tasks exist.

A submit whose answer was lost (a reset, a proxy's 502 page after the task was made) leaves its
job ambiguous: a task may or may not exist, and only the user may decide to pay again. In
callback mode each job's submit carries its own callback URL, whose last segment is a key only
this state file can compute (an HMAC of the job's id under the receiver's secret). A callback
that reaches that URL naming a task this state file does not know shows the task that submit
made; one status request confirms the task exists, and it becomes the job's: polled, and its
result downloaded, as if the answer had come.

What this proves and what it does not: a confirmed callback at a job's own URL proves a task
was made for that job's submit (nobody else was given the URL). No callback proves nothing:
the provider may have lost it, so a job whose callback has not come within its generation time
plus the grace stays ambiguous, with a note that it was probably not created.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from batchgen import store as st
from batchgen.adapters.answers import TaskStatus
from batchgen.core.policy import retry_delay as policy_retry_delay
from batchgen.core.schedule import callback_first_delay
from batchgen.core.taskids import shown
from batchgen.core.verdicts import Act
from batchgen.engine.context import RunContext
from batchgen.engine.track import StatusClient, Tracker
from batchgen.errors import IllegalTransition

log = logging.getLogger("batchgen.engine")

CONFIRM_TRIES = 3  # status requests to confirm a task before the offer is dropped


class Adoptions:
    """Watches this run's ambiguous jobs for their callback and adopts the tasks it shows.
    `spawn(row, coro)` runs a coroutine in the run's task group (the run waits for it)."""

    def __init__(
        self,
        run: RunContext,
        client: StatusClient,
        tracker: Tracker,
        spawn: Callable[[st.JobRow, Coroutine[Any, Any, None]], None],
    ) -> None:
        self.run = run
        self.client = client
        self.tracker = tracker
        self.spawn = spawn
        self.key_of: Callable[[str], str] | None = None  # the receiver's per-job key
        self.keys: dict[str, int] = {}  # key -> seq of an ambiguous job
        self.offers: dict[int, str] = {}  # seq -> a task id a callback showed
        self.wakes: dict[int, asyncio.Event] = {}  # watchers waiting for their callback
        self.adopted = 0

    def __repr__(self) -> str:
        return f"<Adoptions watched={len(self.wakes)} adoptable={len(self.keys)}>"

    def start(self, key_of: Callable[[str], str]) -> None:
        """Callback mode is on: ambiguous jobs of earlier runs can be adopted too (their
        callbacks may still come, the provider retrying)."""
        self.key_of = key_of
        for row in self.run.store.jobs.in_state(st.AMBIGUOUS):
            self.keys[key_of(row.id)] = row.seq

    def turned_ambiguous(self, row: st.JobRow) -> None:
        """A submit of this run left its job ambiguous: wait for its callback."""
        if self.key_of is None:
            return
        self.keys[self.key_of(row.id)] = row.seq
        if self.run.config.no_wait or self.run.stops.all.is_set():
            return  # a cron run does not wait; the next run can still adopt it
        self.wakes[row.seq] = asyncio.Event()
        self.spawn(row, self._watch(row))

    def offer(self, key: str, task_id: str) -> bool:
        """A callback at an ambiguous job's own URL named `task_id` (unknown to this state
        file). True when taken as news for that job (it will be confirmed)."""
        seq = self.keys.get(key)
        if seq is None or not task_id:
            return False
        if seq in self.offers:
            return True  # a duplicate of the news being confirmed
        self.offers[seq] = task_id
        wake = self.wakes.get(seq)
        if wake is not None:
            wake.set()
            return True
        row = self.run.store.jobs.by_seq(seq)
        if row is None or row.state != st.AMBIGUOUS:
            self.offers.pop(seq, None)
            return False
        self.spawn(row, self._adopt(row))
        return True

    async def _watch(self, row: st.JobRow) -> None:
        """Until the task would have ended and its callback come (at the latest generation
        time and the grace), or a callback shows the task."""
        run = self.run
        wait = callback_first_delay(run.earliest_end(row), run.config.callback_grace_s)
        wake = self.wakes[row.seq]
        try:
            await run.sleep(wait, until=wake)
        finally:
            self.wakes.pop(row.seq, None)
        if row.seq in self.offers:
            await self._adopt(row)
        elif not run.stops.all.is_set():
            note = (
                f"its submit's answer was lost and no callback came for it within {wait:.0f} s "
                "(its generation time and the grace): probably not created. It stays "
                "ambiguous: `batchgen retry STATE --ambiguous` submits it again (paid again "
                "if a task was made after all)"
            )
            run.store.moves.annotate(row.seq, st.AMBIGUOUS, note)

    async def _adopt(self, row: st.JobRow) -> None:
        """Confirm the offered task with a status request; then it is the job's task."""
        run = self.run
        task_id = self.offers.get(row.seq)
        if task_id is None:
            return
        status = await self._confirm(task_id, row)
        if status is None:
            self.offers.pop(row.seq, None)  # not shown to exist: a later callback may try again
            return
        note = f"its submit's answer was lost; its callback showed task {shown(task_id)}"
        try:
            adopted = run.store.moves.adopt_task(row.seq, task_id, note)
        except IllegalTransition as exc:
            run.bug(row, exc)
            return
        if not adopted:
            return  # another job holds the id, or the user retried the job meanwhile
        self.keys = {k: s for k, s in self.keys.items() if s != row.seq}
        self.offers.pop(row.seq, None)
        self.adopted += 1
        run.admission.cap.adopt(task_id=task_id, model=row.model)  # the account DB counts it too
        if run.pool is not None:
            run.pool.adopted(row.seq, task_id, row.model)  # its account's until it ends
        run.callbacks.news.seen.add(task_id)
        if status.terminal:
            run.callbacks.news.delivered[task_id] = status
        log.info("%s: no longer ambiguous, its callback showed task %s", row.id, shown(task_id))
        adopted_row = run.store.jobs.get(row.id) or row
        first = 0.0 if status.terminal else run.config.callback_poll_every_s
        await self.tracker.track(adopted_row, first, task_id=task_id, recovered=True)

    async def _confirm(self, task_id: str, row: st.JobRow) -> TaskStatus | None:
        """The task's status in the API's own words, or None: not found, or unreadable after a
        few tries (the offer is dropped; the job stays ambiguous)."""
        run = self.run
        # The key of the account whose submit turned ambiguous (several accounts).
        client = self.client if run.pool is None else run.pool.client_for(row.seq, None)
        for attempt in range(CONFIRM_TRIES):
            try:
                status = await client.status(task_id, model=row.model)
            except Exception as exc:
                verdict = self.tracker.judge(exc, getattr(client, "account_name", None))
                if verdict is None:
                    return None  # the account stopped
                if verdict.act is Act.NOT_FOUND:
                    return None  # the API's own word: no such task (a forgery, or gone)
                delay = policy_retry_delay(
                    attempt, run.config.backoff, run.rng, verdict.retry_after
                )
                if not await run.sleep(delay):
                    return None
                continue
            run.stats.polls += 1
            return status
        return None
