"""What a task's tracker sleeps on, and when news from a callback is confirmed.

A callback is news about one task: its end, a `processing` notice, a duplicate, a retry, or a
forgery by someone holding the URL. News is never dropped. It wakes the task's tracker, which
confirms it with one status request; the guard only spaces those requests out: at most one per
task per guard window, and news that comes within the window is confirmed when it ends, all of
it with one request (the latest news is what that request reads).
"""

from __future__ import annotations

import asyncio
import math

POLL_GRID = 0.1
"""Poll wake-ups end on a grid of 10% of the poll interval (500 ms at the default 5 s, which
the ±20% jitter already spreads over 2 s). Trackers due in the same slot wake in one loop pass,
so their requests and answers share event-loop turns and system calls: about 10% less CPU per
job (bench: scenarios overhead), for polls at most one slot late."""


def confirm_delay(now: float, last_request_at: float | None, guard_s: float) -> float:
    """Seconds to wait before confirming news that has just come (`now`): none, unless this
    task's last status request went out less than `guard_s` ago; then until that window ends.
    A request that left before the news cannot have seen it, so the news is never dropped,
    only delayed; everything that comes meanwhile joins the same confirmation."""
    if last_request_at is None or guard_s <= 0:
        return 0.0
    return max(0.0, last_request_at + guard_s - now)


class Wakeup:
    """What a tracker sleeps on: a timer, or `set()` by a callback or a stop, whichever comes
    first. A `set()` while the tracker is busy is kept for its next sleep; `clear()` forgets it
    once a status request that will see the news is about to leave."""

    __slots__ = ("_future", "_pending")

    def __init__(self) -> None:
        self._future: asyncio.Future[bool] | None = None
        self._pending = False

    def set(self) -> None:
        if self._future is not None and not self._future.done():
            self._future.set_result(True)
        else:
            self._pending = True

    def clear(self) -> None:
        self._pending = False

    def is_set(self) -> bool:
        return self._pending

    async def sleep(self, seconds: float, *, grid: float = 0.0) -> bool:
        """Sleep `seconds`, rounded up to the next multiple of `grid` on the loop clock.
        True when `set()` ended the sleep (news, or a stop), False when the time ran out."""
        if self._pending:
            self._pending = False
            return True
        loop = asyncio.get_running_loop()
        future = self._future = loop.create_future()
        when = loop.time() + max(0.0, seconds)
        if grid > 0:
            when = math.ceil(when / grid) * grid
        timer = loop.call_at(when, _resolve, future)
        try:
            await future
        finally:
            timer.cancel()
            self._future = None
        return future.result()


def _resolve(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)
