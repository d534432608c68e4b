"""The engine's request-rate limit: one limiter shared by every API call (the in-flight cap is
batchgen/engine/inflight.py).

It takes its time from a `Clock`, so tests move a `FakeClock` instead of sleeping (the way
aiolimiter reads time only from `loop.time()`). Limits are exact: the rate limiter keeps the
grant times of the last `limit` grants and promises at most `limit` grants in ANY window of
`period` seconds, not just on average.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import re
from collections import deque
from collections.abc import Iterable

from batchgen.clock import Clock, LoopClock

POLL = 0
"""Priority of a status poll: a due poll goes before a submit (it frees in-flight capacity)."""
SUBMIT = 1
"""Priority of a submit (and the default)."""


_Waiter = tuple[int, int, "asyncio.Future[float]"]


class SlidingWindowLimiter:
    """At most `limit` grants in any window of `period` seconds.

    Measured on the client's grant times, with `margin` extra seconds added to the window so
    network jitter can't push N+1 requests into one server window. Waiters are served by
    priority, lower number first (POLL=0, SUBMIT=1), FIFO within a priority.

    How: a deque of the last `limit` grant times; a grant is allowed when fewer than `limit`
    are stored or the oldest is at least `period + margin` old. Waiters sit in one heap keyed
    (priority, seq); a single timer task sleeps on the clock until the next slot frees (or a
    pause ends) and then grants to exactly the waiters at the head of the heap. Nothing polls.
    """

    def __init__(
        self,
        limit: int,
        period: float,
        *,
        clock: Clock | None = None,
        margin: float = 0.0,
        keep_log: bool = False,
    ) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        if not (math.isfinite(period) and period > 0):
            raise ValueError(f"period must be a positive number of seconds, got {period!r}")
        if not (math.isfinite(margin) and margin >= 0):
            raise ValueError(f"margin must be >= 0 seconds, got {margin!r}")
        self.limit = limit
        self.period = float(period)
        self.margin = float(margin)
        self._window = self.period + self.margin
        self._clock: Clock = clock if clock is not None else LoopClock()
        self._grants: deque[float] = deque()
        self._heap: list[_Waiter] = []
        self._waiting = 0  # live waiters; the heap may also hold cancelled ones
        self._seq = itertools.count()
        self._paused_until = -math.inf
        self._timer: asyncio.Task[None] | None = None
        self._timer_at = math.inf
        self.granted = 0
        """Total grants ever made (retracted ones not counted)."""
        self.grant_log: list[float] | None = [] if keep_log else None
        """Every grant time, when built with keep_log=True (tests, benchmarks)."""

    @property
    def clock(self) -> Clock:
        return self._clock

    async def acquire(self, priority: int = SUBMIT) -> float:
        """Wait for a grant; returns its clock time (for `restamp`). Cancellation-safe: a
        cancelled waiter never keeps a grant (one made in the instant before the cancel is
        taken back) and never blocks others."""
        now = self._clock.now()
        if self._waiting == 0 and self._ready_at(now) <= now:
            self._grant(now)
            return now
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (priority, next(self._seq), fut))
        self._waiting += 1
        self._pump()
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.cancelled():  # still queued: it leaves the heap lazily
                self._waiting -= 1
                self._compact()
            else:  # granted, then cancelled before it could run: give the slot back
                self._retract(fut.result())
            self._pump()
            raise

    def restamp(self, granted_at: float) -> bool:
        """The request granted at `granted_at` leaves only now (its intent was committed and
        fsynced between the grant and the send): count it at its departure instead. Otherwise a
        burst of grants whose sends are spread out by such work could put N+1 requests into one
        window at the server. A request never counts at two times.

        False when the grant has already aged out of the window: a later grant may have reused
        its slot, so the caller must not send on it and asks for a fresh grant instead."""
        now = self._clock.now()
        if now <= granted_at:
            return True
        grants = self._grants
        for i in range(len(grants) - 1, -1, -1):  # it is recent: search from the right
            if grants[i] == granted_at:
                del grants[i]
                break
        else:
            return False  # expired before the send: its slot may be someone else's now
        grants.append(now)  # `now` is the latest time of all: the deque stays sorted
        if self.grant_log is not None:
            log = self.grant_log
            for i in range(len(log) - 1, -1, -1):
                if log[i] == granted_at:
                    log[i] = now
                    break
        self._pump()  # moving a stamp later never frees a slot, but keeps the timer honest
        return True

    def pause_until(self, t: float) -> None:
        """No grants before clock time `t`, for everyone (a 429 with Retry-After). Pauses only
        ever extend: an earlier `t` than the current pause is ignored."""
        if t > self._paused_until:
            self._paused_until = t
            # The timer may now fire too early; it re-checks and sleeps again, so nothing to do.

    def pause_for(self, seconds: float) -> None:
        """Pause everyone for `seconds` from now (a 429 without Retry-After: the policy picks
        the delay, see `policy.rate_limit_pause`)."""
        self.pause_until(self._clock.now() + max(0.0, seconds))

    penalize = pause_for

    @property
    def paused_until(self) -> float | None:
        """The end of the current pause, or None when not paused."""
        return self._paused_until if self._paused_until > self._clock.now() else None

    @property
    def in_window(self) -> int:
        """Grants in the current window (the last `period + margin` seconds)."""
        self._expire(self._clock.now())
        return len(self._grants)

    @property
    def waiters(self) -> int:
        return self._waiting

    def next_grant_at(self) -> float:
        """The earliest clock time at which a new grant could be made (ignoring waiters)."""
        return self._ready_at(self._clock.now())

    def __repr__(self) -> str:
        paused = self.paused_until
        return (
            f"<SlidingWindowLimiter limit={self.limit} period={self.period:g}s "
            f"margin={self.margin:g}s in_window={self.in_window} waiters={self._waiting} "
            f"paused_until={'-' if paused is None else f'{paused:.3f}'}>"
        )

    # -- bookkeeping (no awaits below this line except in the timer task) --

    def _expire(self, now: float) -> None:
        grants = self._grants
        while grants and grants[0] + self._window <= now:
            grants.popleft()

    def _ready_at(self, now: float) -> float:
        self._expire(now)
        slot = self._grants[0] + self._window if len(self._grants) >= self.limit else now
        return max(slot, self._paused_until, now)

    def _grant(self, now: float) -> None:
        self._grants.append(now)  # _ready_at expired the old one, so len stays <= limit
        self.granted += 1
        if self.grant_log is not None:
            self.grant_log.append(now)

    def _retract(self, t: float) -> None:
        if t in self._grants:  # else it has already left the window
            self._grants.remove(t)
        self.granted -= 1
        if self.grant_log is not None:
            for i in range(len(self.grant_log) - 1, -1, -1):
                if self.grant_log[i] == t:
                    del self.grant_log[i]
                    break

    def _compact(self) -> None:
        """Drop cancelled waiters when they dominate the heap (keeps memory bounded)."""
        if len(self._heap) > 64 and len(self._heap) > 2 * self._waiting:
            self._heap = [w for w in self._heap if not w[2].done()]
            heapq.heapify(self._heap)

    def _pump(self) -> None:
        """Grant to the head of the heap while a slot is free now; then arm the timer for the
        moment the next slot frees, or disarm it when nobody waits."""
        heap = self._heap
        now = self._clock.now()
        while heap:
            fut = heap[0][2]
            if fut.done():
                heapq.heappop(heap)
                continue
            at = self._ready_at(now)
            if at > now:
                self._arm(at)
                return
            heapq.heappop(heap)
            self._waiting -= 1
            self._grant(now)
            fut.set_result(now)
        self._disarm()

    def _arm(self, at: float) -> None:
        if self._timer is not None and self._timer_at <= at:
            return  # wakes at or before `at`; it re-checks then
        self._disarm()
        self._timer_at = at
        self._timer = asyncio.get_running_loop().create_task(self._wake_at(at))

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = math.inf

    async def _wake_at(self, at: float) -> None:
        await self._clock.sleep(at - self._clock.now())
        self._timer = None
        self._timer_at = math.inf
        self._pump()


def max_in_any_window(times: Iterable[float], period: float) -> int:
    """The largest number of `times` inside any half-open window [s, s + period). The check
    tests and benchmarks use to verify a limiter's promise independently of its bookkeeping."""
    ts = sorted(times)
    best = 0
    j = 0
    for i, start in enumerate(ts):
        if j < i:
            j = i
        while j < len(ts) and ts[j] < start + period:
            j += 1
        best = max(best, j - i)
    return best


_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d*)?|\.\d+)?\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_rate(text: str) -> tuple[int, float]:
    """Parse "N/period" into (N, seconds): "10000/60s", "100/1.5s", "10000/1m", "5/500ms",
    "10/s", "600/min". A bare number after the slash is seconds. Raises ValueError on junk."""
    m = _RATE.match(text) if isinstance(text, str) else None
    hint = 'expected "N/PERIOD" such as "10000/60s", "10000/1m" or "5/500ms"'
    if m is None:
        raise ValueError(f"invalid rate {text!r}: {hint}")
    count, amount, unit = m.group(1), m.group(2), m.group(3).lower()
    if unit.endswith("s") and unit[:-1] in _UNITS and unit not in _UNITS:
        unit = unit[:-1]  # plurals: "2mins", "1 hours", "30 seconds"
    if unit and unit not in _UNITS:
        raise ValueError(f"invalid rate {text!r}: unknown unit {unit!r} (use ms, s, m or h)")
    if amount is None and not unit:
        raise ValueError(f"invalid rate {text!r}: {hint}")
    limit = int(count)
    seconds = float(amount if amount is not None else 1) * _UNITS[unit or "s"]
    if limit < 1:
        raise ValueError(f"invalid rate {text!r}: the count must be at least 1")
    if seconds <= 0:
        raise ValueError(f"invalid rate {text!r}: the period must be longer than zero")
    return limit, seconds
