"""A status endpoint that cannot be read: what the trackers do, and what the run says.

A task with an id is paid for. An answer we cannot read (a 5xx, a proxy's HTML page, a reset,
a timeout, a body that is not the API's JSON) says nothing about the task, so it never fails
it: only the provider's own word (success, failed, not found) or the end of the result's
lifetime does. The tracker backs off (up to `RunOptions.poll_backoff_cap_s`) and keeps asking.

So that a long outage cannot hold a run open for ever, a task whose status stayed unreadable
for `RunOptions.status_outage_s` is not polled again in this run (it keeps its slot, like a
stuck task), and once no status answer at all was readable for that long, the run stops
submitting: it then ends with exit 75 and the next run polls those tasks again.

Pure bookkeeping on an injected clock: the engine passes `now`, and does the I/O and logging.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field


class PollVerdict(enum.Enum):
    """What a tracker does after an unreadable status answer."""

    WAIT = "wait"  # back off and ask again
    PARK = "park"  # not polled again in this run; stays in flight, keeps its slot
    EXPIRE = "expire"  # its result's lifetime has passed: whatever it made is gone


def after_unreadable(
    *,
    now: float,
    task_since: float,
    submitted_at: float,
    window_s: float | None,
    result_lifetime_s: float,
    no_wait: bool,
) -> PollVerdict:
    """The decision table for one unreadable answer about one task.

    - Past the result's lifetime (counted from the submit, the earliest it can start): EXPIRE.
    - A cron run (--no-wait) does not wait out an outage: PARK (the next run asks again).
    - The task's own status unreadable for the whole window: PARK.
    - Otherwise WAIT. `window_s` None: wait for as long as it takes."""
    if now - submitted_at >= result_lifetime_s:
        return PollVerdict.EXPIRE
    if no_wait:
        return PollVerdict.PARK
    if window_s is not None and now - task_since >= window_s:
        return PollVerdict.PARK
    return PollVerdict.WAIT


@dataclass
class OutageWatch:
    """Which tasks' status is unreadable right now, and since when nothing at all was readable.
    Times are wall-clock seconds (the engine's `time.time()`, as the state file's).

    `since` is the time of the first unreadable answer after the last readable one (from any
    task); `tasks` maps each task whose last answer was unreadable to the start of its own
    streak."""

    window_s: float | None
    since: float | None = None
    last_error: str = ""
    tasks: dict[str, float] = field(default_factory=dict)
    parked: set[str] = field(default_factory=set)
    worst: int = 0  # most tasks unreadable at once

    def readable(self, task_id: str | None, now: float) -> float | None:
        """A readable answer about `task_id` (None: a probe of the submit gate, which may ask
        about a task long done). Returns how long the outage lasted if this ends one (for
        the log), else None."""
        if task_id is not None:
            self.tasks.pop(task_id, None)
        if self.since is None:
            return None
        lasted = now - self.since
        self.since = None
        return lasted

    def unreadable(self, task_id: str | None, now: float, error: str) -> bool:
        """An unreadable answer about `task_id` (None: a probe, counted toward the outage but
        under no task). True if it starts an outage (for the log)."""
        if task_id is not None:
            self.tasks.setdefault(task_id, now)
            self.worst = max(self.worst, len(self.tasks))
        self.last_error = error
        if self.since is not None:
            return False
        self.since = now
        return True

    def task_since(self, task_id: str, now: float) -> float:
        return self.tasks.get(task_id, now)

    def park(self, task_id: str) -> None:
        self.parked.add(task_id)

    def over(self, now: float) -> bool:
        """True once no status answer at all was readable for the whole window."""
        return (
            self.window_s is not None
            and self.since is not None
            and now - self.since >= (self.window_s)
        )

    def summary(self, now: float | None = None) -> str | None:
        """The end-of-run line: how many tasks are left unread, since when, and why. With no
        task left unread, a line only when nothing at all was readable for the whole window
        at `now` (the submit gate's probes stopped the submits)."""
        if not self.tasks:
            if now is None or not self.over(now):
                return None
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
            return (
                f"the API's answers have been unreadable since {when} ({self.last_error}); "
                "jobs left pending are submitted by the next run"
            )
        n = len(self.tasks)
        if self.since is not None:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
            ongoing = f"the status endpoint has been unreadable since {when}"
        else:
            ongoing = "the status of some tasks stayed unreadable"

        return (
            f"{ongoing} ({self.last_error}): {n} task(s) left in flight, not failed "
            f"({len(self.parked)} no longer polled in this run); the next run polls them again"
        )
