"""One job's submit: the intent before the POST, the submit gate, 429 waits and the in-flight
cap, and what each answer means (batchgen/core/verdicts.py). One `Submitter` per run, on the
run's context; a job whose task was made goes on to the `Tracker`."""

from __future__ import annotations

import asyncio
import logging

from batchgen import store as st
from batchgen.adapters.client import ApiClient
from batchgen.core import verdicts
from batchgen.core.policy import (
    backoff_delay,
)
from batchgen.core.policy import retry_delay as policy_retry_delay
from batchgen.core.taskids import shown
from batchgen.core.verdicts import Act
from batchgen.engine.chooser import Lease
from batchgen.engine.context import RunContext
from batchgen.engine.gated import GatedSubmits
from batchgen.engine.stops import StopReason
from batchgen.engine.track import Tracker
from batchgen.errors import (
    AccountError,
    ApiError,
    IllegalTransition,
    RateLimited,
    UntrackableTaskId,
)
from batchgen.inputs.prepare import InputRejected, PrepareInputs

log = logging.getLogger("batchgen.engine")


class Submitter:
    """The submit half of a job's lifecycle, through `client`; `inputs` checks and uploads
    a job's images first; `tracker` takes each task that was made."""

    def __init__(
        self,
        run: RunContext,
        client: ApiClient,
        tracker: Tracker,
        inputs: PrepareInputs | None = None,
    ) -> None:
        self.run = run
        self.client = client
        self.tracker = tracker
        self.inputs = inputs  # images checked, local files presigned (batchgen.inputs)
        self.gated = GatedSubmits(run, client)  # the submit gate (gated.py)
        self.no_slot: set[int] = set()  # jobs waiting for a slot after a concurrency 429
        self._learned_logged: int | None = None
        self._left_logged: set[int] = set()  # jobs the cap left, said once per run

    def __repr__(self) -> str:
        return f"<Submitter gate={self.gated.gate!r} waiting_for_slot={len(self.no_slot)}>"

    # -- one job: submit, then track ----------------------------------------------------------

    async def lifecycle(self, row: st.JobRow) -> None:
        """Submit one job, then track its task to the end (a slot is already taken)."""
        run = self.run
        # The first submit of a price class goes alone, to learn its price
        # (batchgen/money/pricing.py).
        waits = run.admission.money.turn_would_wait(row)
        if waits:  # no slot is held while waiting for the turn: the learner may need it
            run.admission.cap.unreserve()
        async with run.admission.money.turn(row) as ticket:
            if waits and not await run.admission.take_slot(front=True):
                return  # stopped while waiting: no slot held, the job still pending
            try:
                task_id = await self.submit(row)
            except IllegalTransition:
                self._give_back_slot(row)
                raise
            if task_id is not None:
                await run.admission.money.after(ticket, row.seq)
        if task_id is None:
            self._give_back_slot(row)
            return
        delay = run.first_poll_delay(row)
        if run.config.no_wait:
            return  # tracked by the next cron run
        await self.tracker.track(row, delay, task_id=task_id, submitted_at=run.wall())

    def _give_back_slot(self, row: st.JobRow) -> None:
        """The submit made no task: its reserved slot goes back (a job refused by a 429 and
        stopped while waiting for a new slot holds none)."""
        if row.seq in self.no_slot:
            self.no_slot.discard(row.seq)
        else:
            self.run.admission.cap.unreserve()

    async def submit(self, row: st.JobRow) -> str | None:
        """POST with retries for answers that prove no task was created. None: no task now."""
        run = self.run
        body = self._prepare_body(row)
        if self.inputs is not None:
            try:
                body = await self.inputs(row.id, body)
            except InputRejected as exc:  # nothing sent: the image would fail the task
                run.fail(row, exc.code, exc.message)
                return None
        intent = False  # True once the intent is on disk and the bytes may leave
        lease: Lease | None = None  # this attempt's account (several accounts: --accounts)

        async def record_intent() -> bool:
            nonlocal intent
            if run.stops.submits.is_set() or not await self._reserve(row, lease):
                return False
            try:
                await run.store.synced()  # survives a power cut before anything is sent
            except BaseException:
                self._not_submitted(row)  # nothing left: plainly pending again
                raise
            intent = True
            return True

        attempt = refusals = 0
        while attempt < run.config.max_submit_tries:
            if run.stops.submits.is_set():
                return None
            intent = False
            if run.pool is not None:
                lease = await run.pool.take(run.stops.submits, run.clock, not run.config.no_wait)
                if lease is None:
                    return None
            try:
                task_id = await self.gated.submit(
                    body, record_intent, row.model, lease.client if lease else None
                )
            except asyncio.CancelledError:
                self._lease_back(lease)
                if intent:
                    run.admission.money.sent(row.seq)
                    self._ambiguous(row, "the run was stopped while its submit was on the wire")
                raise
            except Exception as exc:
                self._lease_back(lease)
                verdict = verdicts.on_submit(exc)
                if verdict is None:
                    raise
                act = verdict.act
                if act is Act.SKIPPED:
                    return self._skipped(lease)
                if act is Act.AMBIGUOUS:
                    return self._ambiguous(row, verdict.note)
                if act is Act.ORPHANED:
                    assert isinstance(exc, UntrackableTaskId)
                    return self._orphaned(row, exc)
                if act is Act.FAIL:
                    run.admission.money.release(row.seq)  # refused: no task was made
                    run.fail(row, verdict.code or "FAILED", verdict.note)
                    return None
                self._not_submitted(row)  # the answer proves that no task was made
                if act is Act.STOP_ACCOUNT:
                    assert isinstance(exc, ApiError)
                    stop = exc if isinstance(exc, AccountError) else AccountError(exc.status, "")
                    stop.message = verdict.note
                    run.account_stop(stop, lease.name if lease else None)
                    return self._skipped(lease)
                if act is Act.WAIT:
                    # A 429 is not a failed try of this job: it waits for capacity, however
                    # long (--max-runtime bounds a run).
                    assert isinstance(exc, RateLimited)
                    run.stats.rate_limited += 1
                    refusals += 1
                    if lease is not None:  # that account's window or cap: maybe another's
                        if not await self._pooled_429(lease, exc, refusals):
                            return None
                        continue
                    if not await self._wait_after_429(row, exc, refusals):
                        return None
                    continue
                delay = backoff_delay(attempt, run.config.backoff, run.rng)  # Act.RETRY
            else:
                # No await between the answer and this commit: nothing can interrupt it.
                if not run.store.moves.mark_in_flight(row.seq, task_id):
                    run.admission.money.sent(row.seq)
                    self._lease_back(lease)
                    return self._duplicate_task(row, task_id)
                run.admission.money.created(row.seq)
                run.admission.cap.created(task_id, row.model)
                if lease is not None and run.pool is not None:
                    run.pool.created(lease, task_id, row.model)
                run.stats.submitted += 1
                await run.store.synced()
                return task_id
            if not await run.sleep(delay):
                return None
            attempt += 1
        run.messages.append(f"{row.id}: not submitted after {run.config.max_submit_tries} tries")
        return None

    def _prepare_body(self, row: st.JobRow) -> dict:  # type: ignore[type-arg]
        """With a callback receiver, ask the provider to call it at a per-job URL under the
        receiver's secret base; a manifest that names its own callback_url keeps it (the
        user's server gets those callbacks, we poll slowly)."""
        body = row.body_dict()
        callback_url = self.run.callbacks.url
        if callback_url and body.get("request_type", "async") == "async":
            key_of = self.run.callbacks.key_of
            body["request_type"] = "callback"
            body["callback_url"] = (
                f"{callback_url.rstrip('/')}/{key_of(row.id) if key_of else row.id}"
            )
        return body

    async def _wait_after_429(self, row: st.JobRow, exc: RateLimited, refusals: int) -> bool:
        """Wait until this job may submit again; False: stop (no task, job still pending).

        A 429 that names the concurrency cap (or names no limit while tasks of ours exist:
        ApiClient reads that as the cap too) lowers the in-flight target to the tasks that
        exist and puts the job at the head of the queue for the next free slot: it goes when
        a task ends. Otherwise it is the request rate: the client's limiter is paused for
        everyone (ApiClient), and the job backs off on its own too, so jobs refused together
        do not all come back at the same instant."""
        run = self.run
        if exc.limit != "concurrency":
            delay = policy_retry_delay(refusals - 1, run.config.backoff, run.rng, exc.retry_after)
            return await run.sleep(delay)
        self._saturated(exc)
        if run.config.no_wait:
            return False  # no task ends in a cron run: the next run submits it
        run.admission.cap.unreserve()
        self.no_slot.add(row.seq)
        if run.admission.cap.tasks and run.admission.cap.in_flight <= run.stuck:
            self._cap_held_by_stuck()
            return False
        delay = exc.retry_after or 0.0
        if not run.admission.cap.tasks:  # no task of ours to wait for: someone else holds the cap
            delay = max(delay, backoff_delay(refusals - 1, run.config.backoff, run.rng))
        if delay and not await run.sleep(delay):
            return False
        if not await run.admission.take_slot(front=True):
            return False
        self.no_slot.discard(row.seq)
        return True

    def _cap_held_by_stuck(self) -> None:
        """A concurrency 429 while every slot of ours is held by a task not polled again in
        this run (stuck, or its status unreadable): none of them will free a slot that this
        run sees, so waiting for one would last for ever. Submits stop (exit 75); the next
        run polls those tasks again and submits when they end."""
        run = self.run
        if run.stops.submits.is_set():
            return
        note = (
            f"the API's concurrency cap is full and all {run.admission.cap.tasks} task(s) of ours "
            "holding it are no longer polled in this run: no new submits; the next run "
            "polls them again"
        )
        run.messages.append(note)
        log.warning("%s", note)
        run.stops.stop_submitting(StopReason.STUCK, note)

    def _saturated(self, exc: RateLimited) -> None:
        """Lower the in-flight target to the tasks that exist; say so when the cap learned
        from the server changes."""
        run = self.run
        run.admission.cap.saturated(run.clock.now())
        learned = run.admission.cap.target.learned
        if learned is None or learned == self._learned_logged:
            return
        first = self._learned_logged is None
        self._learned_logged = learned
        log.log(
            logging.WARNING if first else logging.INFO,
            "the API refused a submit with %d of our tasks in flight (%s): holding at most "
            "%d in flight, probing upward slowly (--max-in-flight %d)",
            run.admission.cap.tasks,
            exc.message,
            run.admission.cap.limit,
            run.config.max_in_flight,
        )

    def _lease_back(self, lease: Lease | None) -> None:
        """The attempt made no task (or its fate is unknown): its account's slot frees."""
        if lease is not None and self.run.pool is not None:
            self.run.pool.give_back(lease)

    def _skipped(self, lease: Lease | None) -> None:
        """Nothing was sent, or only this account stopped: the job stays pending, and with
        several accounts a new pass of the submitter offers it to another."""
        if lease is not None and not self.run.stops.submits.is_set():
            self.run.resubmits.set()

    async def _pooled_429(self, lease: Lease, exc: RateLimited, refusals: int) -> bool:
        """A 429 of one account of several: a concurrency 429 fills that account's cap (the
        pool then prefers another); either way this job waits its backoff, then takes an
        account again. False: stop."""
        run = self.run
        if exc.limit == "concurrency" and run.pool is not None:
            run.pool.saturated(lease, run.clock.now())
        delay = policy_retry_delay(refusals - 1, run.config.backoff, run.rng, exc.retry_after)
        return await run.sleep(delay)

    async def _reserve(self, row: st.JobRow, lease: Lease | None = None) -> bool:
        """The intent and its price's reservation under the cap (batchgen/money/spending.py),
        and under its account's own cap (several accounts)."""
        run = self.run
        if lease is None:
            ok = await run.admission.money.reserve(row)
        else:
            ok = await run.admission.money.reserve(row, lease.name, lease.fits)
            if ok is False and run.admission.money.over_account:
                run.account_over_budget(
                    lease.name, f"account {lease.name}: its max_spend is reached"
                )
                return False
        if ok is False:
            self.over_cap(row)
        return bool(ok)

    def over_cap(self, row: st.JobRow) -> None:
        """A job whose price does not fit under the cap stays pending, with a note, and the
        jobs after it that fit still go. Only a halt (the estimate exceeds the balance, no
        --yes) stops all submits; tracking and downloads go on either way."""
        run = self.run
        if run.admission.money.halted:
            note = run.admission.money.stop_message or ""
            if run.stops.stop_submitting(StopReason.BUDGET, note):
                log.warning("%s", note)
                run.store.ledger.note_pending(note)
            return
        note = run.admission.money.spending.left_note(row.seq)
        if note is None or row.seq in self._left_logged:
            return
        self._left_logged.add(row.seq)
        log.info("%s left pending: %s; the jobs after it that fit go on", row.id, note)

    def _not_submitted(self, row: st.JobRow) -> None:
        """The POST surely made no task: plainly pending again, its reservation released."""
        run = self.run
        run.admission.money.release(row.seq)
        run.store.moves.mark_not_submitted(row.seq)

    def _ambiguous(self, row: st.JobRow, note: str) -> None:
        run = self.run
        run.admission.money.sent(row.seq)  # may have made a task: its price stays counted
        run.store.moves.mark_ambiguous(row.seq, note)
        run.stats.ambiguous += 1
        log.warning("%s is ambiguous: %s", row.id, note)
        if run.callbacks.on_ambiguous is not None:
            run.callbacks.on_ambiguous(row)  # callback mode: its callback may still show the task
        return None

    def _duplicate_task(self, row: st.JobRow, task_id: str) -> None:
        """The API answered this submit with a task id another job already holds: that task's
        result belongs to the other job. Whether a task was made for this body is unknown."""
        run = self.run
        owner = run.store.moves.task_owner(task_id, besides=row.seq)
        if owner is None:  # not a duplicate: the job left `submitting` meanwhile (cannot happen)
            log.error("%s: task id %s not recorded", row.id, shown(task_id))
            return None
        note = (
            f"the API answered its submit with task id {shown(task_id)}, which job "
            f"{owner} already holds: a task for this body may or may not exist; the other "
            "job's result is never taken as this one's"
        )
        run.messages.append(f"{row.id}: {note}")
        return self._ambiguous(row, note)

    def _orphaned(self, row: st.JobRow, exc: UntrackableTaskId) -> None:
        """A task was created (an answer came) under an id batchgen cannot send back."""
        run = self.run
        note = (
            f'the API created a task and answered with task id "{exc.kept}" (escaped), which '
            f"cannot be sent back ({exc.reason}): the task exists and is probably billed, but "
            "batchgen cannot poll or download it; `batchgen retry STATE --orphaned` submits "
            "the job again and pays again"
        )
        run.admission.money.sent(row.seq)
        run.store.moves.mark_orphaned(row.seq, note)
        run.stats.orphaned += 1
        run.messages.append(f'{row.id}: orphaned, task id "{exc.shown}": {exc.reason}')
        log.warning("%s is orphaned: %s", row.id, note)
        return None
