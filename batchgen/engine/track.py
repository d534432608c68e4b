"""One task's tracking: polls on the schedule, callback news, an unreadable status (outage rules),
a stuck task, and the provider's final word. One `Tracker` per run, on the run's context."""

from __future__ import annotations

import logging
from typing import Protocol

from batchgen import models
from batchgen import store as st
from batchgen.adapters.answers import TaskStatus
from batchgen.core import verdicts
from batchgen.core.policy import retry_delay as policy_retry_delay
from batchgen.core.schedule import (
    callback_first_delay,
    claim_follow_ups,
    claim_guard,
    confirm_delay,
    next_poll_delay,
    pace,
)
from batchgen.core.taskids import shown
from batchgen.core.verdicts import Act
from batchgen.engine.context import RunContext
from batchgen.engine.outage import PollVerdict, after_unreadable
from batchgen.engine.stops import StopReason
from batchgen.engine.wakes import Wakeup
from batchgen.errors import (
    AccountError,
    IllegalTransition,
)
from batchgen.settings import POLL_GRID


class StatusClient(Protocol):
    """What tracking needs of the API client (batchgen/adapters/client.py)."""

    async def status(self, task_id: str, *, model: str | None = None) -> TaskStatus: ...


log = logging.getLogger("batchgen.engine")


class Tracker:
    """Polling a task until it ends, through `client` (status requests)."""

    def __init__(self, run: RunContext, client: StatusClient) -> None:
        self.run = run
        self.client = client

    async def track(
        self,
        row: st.JobRow,
        first_delay: float,
        *,
        task_id: str | None = None,
        recovered: bool = False,
        submitted_at: float | None = None,
    ) -> None:
        """Poll one task until it ends; release its in-flight slot exactly once."""
        run = self.run
        task_id = task_id or row.task_id
        assert task_id is not None
        submitted_at = submitted_at or row.submitted_at or run.wall()
        callback = self._is_callback(row)
        if callback and not recovered:
            first_delay = callback_first_delay(first_delay, run.config.callback_grace_s)
        if run.config.no_wait and recovered and first_delay > 0:
            return  # not due yet: a later cron run will look
        released = False
        # Polled with the key of the account that made it (several accounts: --accounts).
        client = self.client if run.pool is None else run.pool.client_for(row.seq, task_id)
        account = None if run.pool is None else getattr(client, "account_name", None)
        wake = run.callbacks.news.wakes.setdefault(
            task_id, Wakeup(run.clock)
        )  # news may have come before us
        last_request: float | None = None  # loop time of this task's last status request
        try:
            # When the poll planned now is due: news that wakes the tracker earlier and turns
            # out false does not move it closer (a forged claim costs its confirmation only).
            due = run.clock.now() + first_delay
            if not await self._sleep_or_wake(wake, first_delay, task_id, last_request):
                return
            not_found = attempt = 0
            follow: list[float] = []  # follow-up looks after a refuted claim of the end
            while True:
                delay: float
                claim: float | None = None  # the claim of the end this request confirms
                try:
                    delivered = run.callbacks.news.delivered.pop(task_id, None)
                    if delivered is not None:
                        status = delivered
                    else:
                        wake.clear()  # news so far is confirmed by this request
                        claim = run.callbacks.news.claimed_end.pop(task_id, None)
                        last_request = run.clock.now()
                        status = await client.status(task_id, model=row.model)
                        run.stats.polls += 1
                except Exception as exc:
                    if claim is not None:  # not confirmed either way: the next request does
                        run.callbacks.news.claimed_end.setdefault(task_id, claim)
                    verdict = self.judge(exc, account)
                    if verdict is None:
                        return  # the task stays in_flight; a run with a working key goes on
                    if verdict.act is Act.WAIT:
                        run.stats.rate_limited += 1
                        delay = policy_retry_delay(
                            attempt, run.config.backoff, run.rng, verdict.retry_after
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
                            attempt, run.config.poll_backoff, run.rng, verdict.retry_after
                        )
                        attempt += 1
                    else:  # Act.NOT_FOUND: the API's own word
                        run.readable(task_id)
                        not_found += 1
                        if not_found >= run.config.max_not_found:
                            run.fail(
                                row,
                                "TASK_NOT_FOUND",
                                f"the provider does not know task {shown(task_id)}: {verdict.note}",
                            )
                            released = True
                            return
                        delay = next_poll_delay(run.config.poll, run.rng)
                else:
                    run.readable(task_id)
                    attempt = not_found = 0
                    if status.terminal:
                        try:
                            self._finish(row, status)
                        except IllegalTransition:
                            run.give_up_for_run()  # its slot stays taken, as for a stuck task
                            raise
                        released = True
                        return
                    if run.config.no_wait:
                        return
                    if self._stuck_now(row, task_id, status.raw_state, submitted_at):
                        return
                    if claim is not None:
                        follow = self._refuted(row, task_id, claim, submitted_at)
                    if follow:
                        delay = follow.pop(0)
                    else:
                        delay = max(
                            self._next_delay(callback, recovered, task_id),
                            due - run.clock.now(),
                        )
                due = run.clock.now() + delay
                if not await self._sleep_or_wake(wake, delay, task_id, last_request):
                    return
        finally:
            run.callbacks.news.forget(task_id)
            if released:
                run.admission.cap.release(task_id)
                if run.pool is not None:
                    run.pool.ended(task_id)

    def judge(self, exc: Exception, account: str | None = None) -> verdicts.Verdict | None:
        """The verdict on a status request's error (verdicts.on_status, pure), with its one
        side effect applied here for every caller: an account-level error stops the run's
        submits (of `account` only, in a run over several), and None tells the caller to stop
        asking. What is not an answer (a bug) is raised again."""
        verdict = verdicts.on_status(exc)
        if verdict is None:
            raise exc
        if verdict.act is Act.STOP_ACCOUNT:
            assert isinstance(exc, AccountError)
            self.run.account_stop(exc, account)
            return None
        return verdict

    def _unreadable(
        self, row: st.JobRow, task_id: str, submitted_at: float, exc: Exception
    ) -> PollVerdict:
        """Note an unreadable status answer and decide (outage.after_unreadable) whether the
        tracker waits, stops polling for this run, or the task's result lifetime is over."""
        run = self.run
        now = run.wall()
        error = str(exc) or type(exc).__name__
        if run.outage.unreadable(task_id, now, error):
            log.warning(
                "status answers unreadable (%s): tasks stay in flight and are polled with "
                "backoff, never failed for it",
                error,
            )
        verdict = after_unreadable(
            now=now,
            task_since=run.outage.task_since(task_id, now),
            submitted_at=submitted_at,
            window_s=run.config.status_outage_s,
            result_lifetime_s=run.config.result_lifetime_s,
            no_wait=run.config.no_wait,
        )
        if verdict is PollVerdict.EXPIRE:
            run.outage.tasks.pop(task_id, None)
            run.store.moves.mark_expired(
                row.seq,
                f"task {task_id}: status unreadable ({error}) and its result lifetime is over",
            )
            run.stats.expired += 1
            log.warning("%s: task %s expired while its status was unreadable", row.id, task_id)
        elif verdict is PollVerdict.PARK:
            run.outage.park(task_id)
            run.give_up_for_run()
        if run.outage.over(now) and not run.stops.submits.is_set():
            note = f"no status answer readable for {now - (run.outage.since or now):.0f} s"
            log.warning("%s: no new submits in this run", note)
            run.stops.stop_submitting(StopReason.OUTAGE, note)
        return verdict

    def _stuck_now(self, row: st.JobRow, task_id: str, state: str, submitted_at: float) -> bool:
        """Give a task up for this run once it has run far past any documented time (see
        _give_up_for_run)."""
        run = self.run
        limit = run.config.stuck_after_s
        spec = models.find(row.model)
        if limit is not None and spec is not None:
            limit *= spec.stuck_factor(row.duration)  # a model slower than Kling 2.1 waits longer
        age = run.wall() - submitted_at
        if limit is None or age < limit:
            return False
        run.give_up_for_run()
        run.messages.append(
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
        run = self.run
        if run.callbacks.url:
            return True
        return '"request_type":"callback"' in row.body.replace(" ", "")

    def _refuted(
        self, row: st.JobRow, task_id: str, claim: float, submitted_at: float
    ) -> list[float]:
        """A callback claimed the end and the status says the task still runs: an early post,
        a status that lags, or a forgery. A claim made after the task could have ended earns
        a few follow-up looks that back off (core/policy.claim_follow_ups); one made before
        earns none. Either way the task goes back to its own pace after: a forger cannot put
        it on the normal pace until its end."""
        run = self.run
        run.callbacks.news.refuted[task_id] = run.callbacks.news.refuted.get(task_id, 0) + 1
        plausible = claim >= submitted_at + run.earliest_end(row)
        return claim_follow_ups(plausible, run.config.callback_guard_s)

    def _next_delay(self, callback: bool, recovered: bool, task_id: str) -> float:
        """The task's own pace (core/schedule.pace)."""
        run = self.run
        return pace(
            run.config.poll,
            run.rng,
            callback=callback,
            recovered=recovered,
            seen=task_id in run.callbacks.news.seen,
            callback_every_s=run.config.callback_poll_every_s,
        )

    async def _sleep_or_wake(
        self, wake: Wakeup, seconds: float, task_id: str, last_request: float | None
    ) -> bool:
        """Like _sleep, but news from a callback ends the wait early. The news is confirmed at
        once, or when the guard window after this task's last status request ends (news that
        comes meanwhile joins that one confirmation; a trusted end needs none). False means
        stop. One future and one timer per sleep: a thousand trackers sleep at little cost."""
        run = self.run
        if run.stops.all.is_set():
            return False
        news = await wake.sleep(seconds, grid=run.config.poll.poll_every * POLL_GRID)
        guard = claim_guard(
            run.config.callback_guard_s,
            run.callbacks.news.refuted.get(task_id, 0),
            run.config.callback_poll_every_s,
        )
        while news and not run.stops.all.is_set() and task_id not in run.callbacks.news.delivered:
            wait = confirm_delay(run.clock.now(), last_request, guard)
            if wait <= 0:
                break
            await wake.sleep(wait)
        return not run.stops.all.is_set()

    def _finish(self, row: st.JobRow, status: TaskStatus) -> None:
        run = self.run
        times = {
            "create_time_ms": status.create_time_ms,
            "complete_time_ms": status.complete_time_ms,
            "cost_time_ms": status.cost_time_ms,
        }
        if status.state == "failed":
            code = status.fail_code or "FAILED"
            if run.admission.money.finished(row, status.task_id, code, status.fail_msg or ""):
                run.resubmits.set()  # a transient failure: the job is pending again
                return
            run.fail(row, code, status.fail_msg or "", **times)
            return
        completed = (status.complete_time_ms / 1000.0) if status.complete_time_ms else run.wall()
        completed = min(completed, run.wall())  # a server clock in the future buys no time
        run.admission.money.finished(row, status.task_id, None, "")
        run.store.moves.mark_succeeded(
            row.seq,
            status.result_urls,
            expires_at=completed + run.config.result_lifetime_s,
            **times,
        )
        run.downloads.put_nowait(row.seq)
