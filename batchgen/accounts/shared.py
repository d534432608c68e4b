"""The run's rate limiter and in-flight cap, asking the account database as well: the seam
through which several runs share one account. With the database off the runner builds the
plain `SlidingWindowLimiter` and `InFlightCap`, and nothing changes.

Order: the run's own gate first (priorities, FIFO, its slow start), then the account's; a
request or slot the account refuses is waited for and asked again. A database that cannot be
reached fails closed: `on_unreachable` stops the run's submits (polls and downloads go on)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from batchgen.accounts.asyncdb import AsyncAccountDb
from batchgen.accounts.db import AccountDb, AccountDbError, Granted
from batchgen.adapters.limits import SUBMIT, SlidingWindowLimiter
from batchgen.clock import Clock
from batchgen.engine.inflight import InFlightCap

log = logging.getLogger("batchgen.accounts")

Say = Callable[[str], None]


def _ignore(_: str) -> None:
    return None


class SharedLimiter(SlidingWindowLimiter):
    """A request slot in this run's window, then in the account's."""

    def __init__(
        self,
        limit: int,
        period: float,
        *,
        account: AsyncAccountDb,
        clock: Clock | None = None,
        margin: float = 0.0,
        on_unreachable: Say = _ignore,
    ) -> None:
        super().__init__(limit, period, clock=clock, margin=margin)
        self.account = account
        self.on_unreachable = on_unreachable
        self.account_waits = 0

    async def acquire(self, priority: int = SUBMIT) -> float:
        granted = await super().acquire(priority)
        while True:
            try:
                answer: Granted = await self.account.call(AccountDb.take_request)
            except AccountDbError as exc:
                self.on_unreachable(str(exc))  # submits stop; this request may be a poll
                return granted
            except BaseException:
                self._retract(granted)
                raise
            if answer.slot is not None:
                return granted
            self.account_waits += 1
            try:
                await self.clock.sleep(answer.wait)
            except BaseException:
                self._retract(granted)
                raise

    def pause_until(self, t: float) -> None:
        """A pause (a 429) is news for every run of the account."""
        if t > self._paused_until and t > self.clock.now():
            self.account.fire(AccountDb.post_pause, t - self.clock.now(), "429")
        super().pause_until(t)

    penalize = SlidingWindowLimiter.pause_for


class SharedCap(InFlightCap):
    """An in-flight slot of this run, then of the account: a reservation row that becomes the
    task's row when the submit creates one, and goes when that task ends."""

    def __init__(
        self,
        cap: int,
        *,
        account: AsyncAccountDb,
        recovered: int = 0,
        slow_start: bool = True,
        recheck_s: float = 0.05,
        on_unreachable: Say = _ignore,
        on_stop: Say = _ignore,
    ) -> None:
        super().__init__(cap, recovered=recovered, slow_start=slow_start)
        self.account = account
        self.recheck_s = recheck_s
        self.on_unreachable = on_unreachable
        self.on_stop = on_stop
        self._slots: list[int] = []  # the account's reservations this run holds
        self._unbacked = 0  # local reservations the account refused (submits stopped)
        self._acquiring = False
        self.account_waits = 0
        self.key_errors_shared = True
        """A 401/403 stops every run of the account: true when the account is one key (not
        an `--account` group of several)."""

    def try_acquire(self) -> bool:
        """A cron run's slot: the run's and the account's, now or not at all."""
        if not super().try_acquire():
            return False
        if self._acquiring:  # InFlightCap.acquire's own fast path: acquire asks the account
            return True
        try:
            answer = self.account.call_now(AccountDb.reserve_slot)
        except AccountDbError as exc:
            self.on_unreachable(str(exc))
            answer = Granted()
        if answer.stopped is not None:
            self.on_stop(answer.stopped)
        if answer.slot is None:
            InFlightCap.unreserve(self)
            return False
        self._slots.append(answer.slot)
        return True

    async def acquire(self, *, front: bool = False) -> None:
        self._acquiring = True
        try:
            await super().acquire(front=front)
        finally:
            self._acquiring = False
        try:
            if not await self._account_slot():
                self._unbacked += 1
        except BaseException:
            InFlightCap.unreserve(self)
            raise

    async def _account_slot(self) -> bool:
        """Wait for a slot of the account. False only when the run's submits stop for it
        (the caller then gives its local slot back)."""
        while True:
            fut = self.account.submit(AccountDb.reserve_slot)
            try:
                answer: Granted = await asyncio.shield(asyncio.wrap_future(fut))
            except AccountDbError as exc:
                self.on_unreachable(str(exc))
                return False
            except asyncio.CancelledError:
                fut.add_done_callback(self._give_back_late)
                raise
            if answer.stopped is not None:
                self.on_stop(answer.stopped)
                return False
            if answer.slot is not None:
                self._slots.append(answer.slot)
                return True
            self.account_waits += 1
            await asyncio.sleep(self.recheck_s)

    def _give_back_late(self, fut: object) -> None:
        """A reservation granted after its waiter was cancelled is given back."""
        with contextlib.suppress(Exception):
            answer = fut.result()  # type: ignore[attr-defined]
            if answer.slot is not None:
                self.account.fire(AccountDb.unreserve, answer.slot)

    def unreserve(self) -> None:
        super().unreserve()
        if self._unbacked:
            self._unbacked -= 1
        elif self._slots:
            self.account.fire(AccountDb.unreserve, self._slots.pop())

    def created(self, task_id: str | None = None, model: str | None = None) -> None:
        super().created(task_id, model)
        if not self._slots:
            self._unbacked = max(0, self._unbacked - 1)
        else:
            slot = self._slots.pop()
            if task_id is not None:
                self.account.fire(AccountDb.created, slot, task_id, model or "")
            else:  # unnamed (callers that predate accounts): the slot frees with the run
                self.account.fire(AccountDb.unreserve, slot)

    def release(self, task_id: str | None = None) -> None:
        super().release(task_id)
        if task_id is not None:
            self.account.fire(AccountDb.ended, task_id)

    def saturated(self, now: float) -> bool:
        """A concurrency 429: the account's tasks now are its cap, for every run."""
        self.account.fire(AccountDb.post_learned)
        return super().saturated(now)

    def account_stopped(self, status: int, message: str) -> None:
        """No credit (402) is the account's; a refused key (401/403) is too when the account
        is that one key."""
        if status == 402 or (status in (401, 403) and self.key_errors_shared):
            self.account.fire(AccountDb.post_stop, message)
