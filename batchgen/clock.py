"""Where a run reads time and waits: the real loop clock, or a `FakeClock` that tests move.

Everything in the engine and the limiter that waits (poll timers, backoff, 429 pauses, the
drain deadline) asks its `Clock`, never `asyncio.sleep` or `loop.time()` directly, so unit
tests run a task's whole life (an hour of polls, a result's lifetime) in milliseconds, with
exact times. Monotonic seconds; the state file's wall-clock times are a separate seam.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any, Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic seconds, a sleep, and a timer: what waiting needs."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> Timer: ...


class LoopClock:
    """The real clock: the running loop's `time()`, `asyncio.sleep` and `loop.call_at`."""

    def now(self) -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:  # no loop yet: the default loop clock is time.monotonic
            return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> Timer:
        return asyncio.get_running_loop().call_at(when, callback, *args)

    def __repr__(self) -> str:
        return "LoopClock()"


LOOP_CLOCK = LoopClock()


class _FakeTimer:
    __slots__ = ("args", "callback", "cancelled")

    def __init__(self, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
        self.callback, self.args, self.cancelled = callback, args, False

    def cancel(self) -> None:
        self.cancelled = True


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class FakeClock:
    """A clock for tests that only moves when told to, so timing tests are exact and instant.

    `sleep()` and `call_at()` wait in one heap; `advance(dt)` moves time and runs every timer
    whose deadline has passed. Woken tasks run when the test next yields to the loop:
    `await clock.settle()`, or use `await clock.run_until(t)` / `run_for(dt)`, which step from
    deadline to deadline so each sleeper wakes at exactly its own time.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._timers: list[tuple[float, int, _FakeTimer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        timer = self.call_at(self._now + seconds, _wake, fut)
        try:
            await fut
        finally:
            timer.cancel()  # a cancelled sleeper leaves nothing due

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> _FakeTimer:
        timer = _FakeTimer(callback, args)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    def advance(self, dt: float) -> None:
        """Move time forward by `dt` (>= 0) and run the timers that are due."""
        if dt < 0:
            raise ValueError(f"time only moves forward (advance({dt}))")
        self._now += dt
        self._run_due()

    def next_deadline(self) -> float | None:
        """The earliest deadline of a live timer, or None."""
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    @property
    def sleepers(self) -> int:
        return sum(1 for _, _, timer in self._timers if not timer.cancelled)

    @staticmethod
    async def settle(rounds: int = 50) -> None:
        """Let ready tasks run (a bounded number of loop iterations; time does not move)."""
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def run_until(self, t: float) -> None:
        """Advance to time `t` deadline by deadline, letting tasks run after each wake-up."""
        while True:
            await self.settle()
            nxt = self.next_deadline()
            if nxt is None or nxt > t:
                break
            self._now = max(self._now, nxt)
            self._run_due()
        self._now = max(self._now, t)
        await self.settle()

    async def run_for(self, dt: float) -> None:
        await self.run_until(self._now + dt)

    def _run_due(self) -> None:
        while self._timers and self._timers[0][0] <= self._now:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.cancelled = True  # ran: no longer live
                timer.callback(*timer.args)

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now:.6f}, sleepers={self.sleepers})"
