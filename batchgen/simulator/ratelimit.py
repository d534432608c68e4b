"""Exact sliding windows, pure: the caller passes `now` (monotonic seconds).

`SlidingWindow` is the server's promise: at most `limit` accepted requests in any half-open
interval `(t - period, t]`. `WindowMax` measures the most events seen in any such interval.
Both keep a deque of timestamps, so each event costs O(1) amortized.
"""

from __future__ import annotations

from collections import deque


class SlidingWindow:
    __slots__ = ("_times", "limit", "period")

    def __init__(self, limit: int, period: float) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("limit must be >= 1 and period > 0")
        self.limit = limit
        self.period = period
        self._times: deque[float] = deque()

    def _expire(self, now: float) -> None:
        times, edge = self._times, now - self.period
        while times and times[0] <= edge:
            times.popleft()

    def try_acquire(self, now: float) -> bool:
        """Record a request at `now` and return True, or return False if the window is full."""
        self._expire(now)
        if len(self._times) >= self.limit:
            return False
        self._times.append(now)
        return True

    def retry_after(self, now: float) -> float:
        """Seconds until one more request would be accepted (0.0 if it would be now)."""
        self._expire(now)
        if len(self._times) < self.limit:
            return 0.0
        return max(0.0, self._times[len(self._times) - self.limit] + self.period - now)

    def count(self, now: float) -> int:
        self._expire(now)
        return len(self._times)

    def __repr__(self) -> str:
        return f"<SlidingWindow {len(self._times)}/{self.limit} per {self.period:g}s>"


class WindowMax:
    """The largest number of events that fell into any window of length `period`."""

    __slots__ = ("_times", "max", "period")

    def __init__(self, period: float) -> None:
        self.period = period
        self._times: deque[float] = deque()
        self.max = 0

    def add(self, now: float) -> None:
        times, edge = self._times, now - self.period
        while times and times[0] <= edge:
            times.popleft()
        times.append(now)
        if len(times) > self.max:
            self.max = len(times)

    def __repr__(self) -> str:
        return f"<WindowMax max={self.max} per {self.period:g}s>"
