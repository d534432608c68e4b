"""The in-flight cap: how many tasks may exist at the provider at once, learned from its 429s.

The user's `--max-in-flight` is a ceiling, not a promise the server keeps: an account may be
capped lower (50 tasks where the reference says 1,000), or share its cap with other clients.
Sending submits the server must refuse costs a request each and, worse, used to cost the job
one of its tries. So the cap keeps a *target* below the ceiling, the way TCP keeps a congestion
window (RFC 5681): it starts small and grows by one for each accepted submit (slow start); the
first 429 that says the concurrency cap is full sets it to the number of tasks that exist at
that moment, and from then on it grows by one slot per `target` tasks that end with no 429 in
between (additive increase), and drops back to the tasks that exist at each such 429. A full
round of accepted submits without a 429 starts slow start again, so a cap learned while other
clients held most of the account grows back quickly once they let go; each probe that finds the
same cap again doubles the rounds before the next (up to 16), so a real cap costs little.

`CapTarget` is that decision, pure (the time is passed in). `InFlightCap` is the asyncio gate
around it: slots for submits still waiting for their answer (reserved) and for tasks that
exist, FIFO waiters, cancellation-safe.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass

INITIAL_TARGET = 32
"""Submits sent before any has been answered: small enough that a server capped far below the
client refuses few of them, large enough that the ceiling (1,000) is reached after five rounds
of answers, well under a second."""


@dataclass
class CapTarget:
    """How many tasks to keep at the provider. Pure: no I/O, no clock reads."""

    ceiling: int
    value: float
    slow_start: bool = True
    learned: int | None = None
    """The cap the server last showed with a 429: the tasks that existed then."""
    learned_at: float | None = None
    lowered: int = 0
    """How many 429s lowered (or set) the target."""
    quiet: int = 0
    """Submits accepted since the last 429 that set the target."""
    rounds: int = 1
    """Quiet rounds before slow start again: doubled each time a probe finds the same cap
    (the account's real one: probing it costs a refused submit), back to 1 when it finds
    more room."""

    @classmethod
    def start(cls, ceiling: int, existing: int = 0, *, slow_start: bool = True) -> CapTarget:
        """Tasks that already exist (found in the state file) were accepted by the server,
        so the first window opens above them."""
        if not slow_start:
            return cls(ceiling, float(ceiling), slow_start=False)
        return cls(ceiling, float(min(ceiling, existing + INITIAL_TARGET)))

    @property
    def slots(self) -> int:
        return max(1, min(self.ceiling, math.floor(self.value)))

    def accepted(self) -> None:
        """A submit created a task: in slow start, open one more slot (doubles per round).
        After a 429 set the target, a full round of accepted submits (as many as the target)
        with no 429 starts slow start again: the cap was learned while others held part of
        the account (a colleague's script, a second run), and once they let go it grows back
        in a few rounds instead of one slot per round (issue 33). At the real cap each probe
        costs one refused submit, and the rounds between probes double (`rounds`)."""
        if self.slow_start:
            self.value = min(float(self.ceiling), self.value + 1.0)
            return
        self.quiet += 1
        if self.quiet >= self.rounds * self.slots and self.value < self.ceiling:
            self.slow_start = True

    def ended(self) -> None:
        """A task ended with no 429 since the last change: probe upward, one slot per
        `slots` tasks ended."""
        if not self.slow_start and self.value < self.ceiling:
            self.value = min(float(self.ceiling), self.value + 1.0 / self.slots)

    def saturated(self, tasks: int, now: float) -> bool:
        """A 429 said the server's concurrency cap is full while `tasks` of ours existed.
        Our count is never below the server's (we learn of an end only when we poll), so
        `tasks` is an upper bound of the server's cap as far as we can tell. True when the
        number of slots changed. With no task of ours, someone else holds the server's cap:
        that says nothing about how many of ours it takes, so the target stays (the engine
        backs off instead); learning 0 would leave a window of one task for the whole run."""
        if tasks <= 0:
            return False
        before = self.slots
        self.slow_start = False
        self.quiet = 0
        if self.learned is not None:
            self.rounds = 1 if tasks > self.learned else min(16, self.rounds * 2)
        self.learned = tasks
        self.learned_at = now
        self.lowered += 1
        self.value = float(min(self.ceiling, self.learned))
        return self.slots != before


class InFlightCap:
    """Counts tasks at the provider, from the submit until a terminal state is seen.

    `acquire()` reserves a slot before a submit; `created()` turns the reservation into a
    task, `unreserve()` gives it back when the submit made no task; `release()` frees a task's
    slot once it is terminal. `recovered` pre-counts tasks found in the state file, which may
    exceed the cap (if the cap was lowered): then no submit happens until enough finish.
    Waiters are served FIFO (`front=True` puts a job refused by a 429 back at the head);
    a cancelled waiter never keeps a slot.
    """

    def __init__(self, cap: int, *, recovered: int = 0, slow_start: bool = True) -> None:
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise ValueError(f"cap must be a positive integer, got {cap!r}")
        if recovered < 0:
            raise ValueError(f"recovered must be >= 0, got {recovered!r}")
        self.cap = cap
        self.target = CapTarget.start(cap, recovered, slow_start=slow_start)
        self._tasks = recovered
        self._reserved = 0
        self._max_seen = recovered
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._waiting = 0

    @property
    def in_flight(self) -> int:
        """Slots taken: tasks that exist plus submits waiting for their answer."""
        return self._tasks + self._reserved

    @property
    def tasks(self) -> int:
        """Tasks that exist at the provider (what a display calls "in flight")."""
        return self._tasks

    @property
    def reserved(self) -> int:
        return self._reserved

    @property
    def limit(self) -> int:
        """The slots open now: the learned target, never above `cap`."""
        return self.target.slots

    @property
    def available(self) -> int:
        return max(0, self.limit - self.in_flight)

    @property
    def max_seen(self) -> int:
        """The highest number of slots ever taken (recovered tasks included)."""
        return self._max_seen

    @property
    def waiters(self) -> int:
        return self._waiting

    def try_acquire(self) -> bool:
        """Reserve a slot if one is free and nobody is queued ahead; never waits."""
        if self._waiting == 0 and self.in_flight < self.limit:
            self._take()
            return True
        return False

    async def acquire(self, *, front: bool = False) -> None:
        if self.try_acquire():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if front:
            self._waiters.appendleft(fut)
        else:
            self._waiters.append(fut)
        self._waiting += 1
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.cancelled():
                self._waiting -= 1
            else:  # handed a slot in the instant before the cancel: pass it on
                self._give_back()
            raise

    def created(self, task_id: str | None = None, model: str | None = None) -> None:
        """The reserved submit created a task (named for an account database's cap)."""
        if self._reserved <= 0:
            raise RuntimeError("InFlightCap.created() without a reserved slot")
        self._reserved -= 1
        self._tasks += 1
        self.target.accepted()
        self._wake()

    def unreserve(self) -> None:
        """The reserved submit made no task (refused, failed, skipped)."""
        self._give_back()

    def _give_back(self) -> None:
        """This run's reservation, and nothing more: a subclass that keeps more per submit (an
        account's slot) gives that back in `unreserve`, never for a slot a waiter never used."""
        if self._reserved <= 0:
            raise RuntimeError("InFlightCap.unreserve() called more often than acquire()")
        self._reserved -= 1
        self._wake()

    def release(self, task_id: str | None = None) -> None:
        """One task is terminal. Wakes the next waiter, if any."""
        if self._tasks <= 0:
            raise RuntimeError("InFlightCap.release() called more often than created()")
        self._tasks -= 1
        self.target.ended()
        self._wake()

    def saturated(self, now: float) -> bool:
        """A 429 says the server's concurrency cap is full: hold the tasks that exist now.
        True when the target changed."""
        return self.target.saturated(self._tasks, now)

    def account_stopped(self, status: int, message: str) -> None:
        """An account-level error stopped this run's submits: a cap shared with other runs
        tells them (accounts/shared.py); a run's own cap has no one to tell."""

    def adopt(self, n: int = 1, *, task_id: str | None = None, model: str | None = None) -> None:
        """Count `n` tasks that exist whatever the cap says (recovered after start-up; an
        ambiguous job's task its callback showed, named for an account database's cap)."""
        if n < 0:
            raise ValueError(f"adopt() needs n >= 0, got {n}")
        self._tasks += n
        self._max_seen = max(self._max_seen, self.in_flight)

    def _take(self) -> None:
        self._reserved += 1
        self._max_seen = max(self._max_seen, self.in_flight)

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            fut = self._waiters.popleft()
            if fut.done():
                continue  # cancelled while queued
            self._waiting -= 1
            self._take()
            fut.set_result(None)

    def __repr__(self) -> str:
        return (
            f"<InFlightCap cap={self.cap} target={self.limit} tasks={self._tasks} "
            f"reserved={self._reserved} waiters={self._waiting} max_seen={self._max_seen}>"
        )
