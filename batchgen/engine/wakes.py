"""What a task's tracker sleeps on, and when news from a callback is confirmed.

A callback is news about one task: its end, a `processing` notice, a duplicate, a retry, or a
forgery by someone holding the URL. News is never dropped. It wakes the task's tracker, which
confirms it with one status request; the guard only spaces those requests out: at most one per
task per guard window, and news that comes within the window is confirmed when it ends, all of
it with one request (the latest news is what that request reads). The timing rules themselves
are core/schedule.py's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from batchgen.adapters.answers import TaskStatus
from batchgen.clock import Clock
from batchgen.core.schedule import on_grid
from batchgen.store.rows import JobRow


class Wakeup:
    """What a tracker sleeps on: a timer, or `set()` by a callback or a stop, whichever comes
    first. A `set()` while the tracker is busy is kept for its next sleep; `clear()` forgets it
    once a status request that will see the news is about to leave."""

    __slots__ = ("_clock", "_future", "_pending")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
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
        """Sleep `seconds`, rounded up to the next multiple of `grid` on the run's clock.
        True when `set()` ended the sleep (news, or a stop), False when the time ran out."""
        if self._pending:
            self._pending = False
            return True
        future = self._future = asyncio.get_running_loop().create_future()
        when = on_grid(self._clock.now() + max(0.0, seconds), grid)
        timer = self._clock.call_at(when, _resolve, future)
        try:
            await future
        finally:
            timer.cancel()
            self._future = None
        return future.result()


def _resolve(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)


@dataclass
class TaskNews:
    """What callbacks said, by task id, kept until that task's tracker takes it: news may come
    before its tracker is ready (between a submit's answer and the first sleep, or for a
    recovered task not yet picked up)."""

    wakes: dict[str, Wakeup] = field(default_factory=dict)  # a task's tracker sleeps on it
    delivered: dict[str, TaskStatus] = field(default_factory=dict)  # trusted ends, not polled
    seen: set[str] = field(default_factory=set)  # tasks whose callback reached this run
    # Claims of the end not yet confirmed: the wall time of the latest, by task. A claim the
    # status refutes earns a few follow-up looks if it was plausible (core/policy.py), never
    # the normal pace until the end.
    claimed_end: dict[str, float] = field(default_factory=dict)
    refuted: dict[str, int] = field(default_factory=dict)  # claims the status refuted, by task

    def forget(self, task_id: str) -> None:
        """The task's tracker is gone: what is kept for it goes too (`seen` stays)."""
        self.wakes.pop(task_id, None)
        self.delivered.pop(task_id, None)
        self.claimed_end.pop(task_id, None)
        self.refuted.pop(task_id, None)


@dataclass
class CallbackLink:
    """Callback mode, as the parts see it (`run.callbacks`): the news callbacks bring, and
    where submits ask the provider to post (known once the receiver listens,
    Engine.receive_callbacks_at); polls are a fallback."""

    news: TaskNews = field(default_factory=TaskNews)
    url: str | None = None  # the receiver's secret base
    # The per-job last segment of that URL: a key only this state file can compute, so a
    # callback there shows the task that job's submit made (engine/adopt.py).
    key_of: Callable[[str], str] | None = None
    on_ambiguous: Callable[[JobRow], None] | None = None  # engine/adopt.py
