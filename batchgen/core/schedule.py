"""When a task is looked at: every pure timing rule of tracking, in one place, tested as
tables (tests/test_schedule.py, tests/test_policy.py).

- the first poll, at the model's earliest documented finish, and the polls after it;
- in callback mode, the first fallback poll (the latest finish and the grace) and the slow
  fallback pace; after a restart, the normal pace until the task's own callback arrives;
- when callback news is confirmed (the guard window), and what a claim of the end the status
  refuted earns (follow-up looks, a longer guard);
- the grid that poll wake-ups end on.

Nothing here reads a clock or does I/O: times and randomness are passed in. How long to back
off after an error is core/policy.py's (one backoff); what an unreadable status means for a
task over time is engine/outage.py's `after_unreadable`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from batchgen.settings import POLL_AFTER_S, POLL_EVERY_S


@dataclass(frozen=True)
class PollSchedule:
    """When to poll a task. `jitter` is a fraction: 0.2 spreads delays over +-20%."""

    poll_after: float = POLL_AFTER_S
    poll_every: float = POLL_EVERY_S
    jitter: float = 0.2
    long_video_factor: float = 1.5

    def __post_init__(self) -> None:
        if not (math.isfinite(self.poll_after) and self.poll_after >= 0):
            raise ValueError(f"poll_after must be >= 0, got {self.poll_after!r}")
        if not (math.isfinite(self.poll_every) and self.poll_every > 0):
            raise ValueError(f"poll_every must be > 0, got {self.poll_every!r}")
        if not (0 <= self.jitter < 1):
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter!r}")
        if not (math.isfinite(self.long_video_factor) and self.long_video_factor >= 1):
            raise ValueError(f"long_video_factor must be >= 1, got {self.long_video_factor!r}")


LONG_VIDEO_SECONDS = 10
"""Videos this long or longer take ~1.5x as long to generate (90-120 s against 60-90 s)."""


def first_poll_delay(
    duration_s: int, sched: PollSchedule, rng: random.Random, factor: float | None = None
) -> float:
    """Seconds from the submit to the first poll: poll_after times `factor` (the model's
    earliest finish for this duration against Kling 2.1's 60 s, `ModelSpec.poll_factor`; by
    default long_video_factor for 10 s videos), plus up to `jitter` of it. The jitter only
    adds: polling before the earliest possible finish is a wasted request, and tasks
    submitted together still spread out."""
    return earliest_end(duration_s, sched, factor) * (1.0 + rng.uniform(0.0, sched.jitter))


def earliest_end(duration_s: int, sched: PollSchedule, factor: float | None = None) -> float:
    """Seconds from the submit to the earliest finish the model's documented times allow, at
    the run's pace (poll_after is that finish for Kling 2.1's 5 s videos). No jitter."""
    base = sched.poll_after
    if factor is not None:
        return base * factor
    if duration_s >= LONG_VIDEO_SECONDS:
        return base * sched.long_video_factor
    return base


CLAIM_FOLLOW_UPS = (1.0, 2.0, 4.0)
"""After a status refutes a plausible callback's claim of the end (a provider whose status
lags its webhooks), the task is looked at again after these many guard windows, one after
the other; then the slow callback pace resumes."""


def claim_follow_ups(plausible: bool, guard_s: float) -> list[float]:
    """Waits before the next status requests once a claim of the end was refuted. A claim made
    before the task could have ended (the model's earliest documented finish) is implausible:
    an early notice or a forgery, worth the one confirmation it had, not more. Whoever knows
    the callback URL must not be able to make a task poll at the normal pace."""
    return [k * guard_s for k in CLAIM_FOLLOW_UPS] if plausible and guard_s > 0 else []


def claim_guard(guard_s: float, refuted: int, ceiling: float) -> float:
    """The guard window for confirming a task's news after `refuted` of its claims of the end
    were refuted: doubled each time, never past `ceiling` (the slow callback pace), so a flood
    of forged claims costs fewer requests the longer it lasts."""
    return min(max(ceiling, guard_s), guard_s * 2.0 ** max(0, refuted))


def next_poll_delay(sched: PollSchedule, rng: random.Random) -> float:
    """Seconds between later polls: poll_every +- jitter, so the mean rate stays as configured
    while tasks that polled together drift apart."""
    return sched.poll_every * (1.0 + rng.uniform(-sched.jitter, sched.jitter))


def confirm_delay(now: float, last_request_at: float | None, guard_s: float) -> float:
    """Seconds to wait before confirming news that has just come (`now`): none, unless this
    task's last status request went out less than `guard_s` ago; then until that window ends.
    A request that left before the news cannot have seen it, so the news is never dropped,
    only delayed; everything that comes meanwhile joins the same confirmation."""
    if last_request_at is None or guard_s <= 0:
        return 0.0
    return max(0.0, last_request_at + guard_s - now)


def callback_first_delay(first_delay: float, grace_s: float) -> float:
    """In callback mode, the first fallback poll: after the latest documented finish (1.5 x
    the earliest, which `first_delay` is) and the grace, when the callback should have come."""
    return first_delay * 1.5 + grace_s


def pace(
    sched: PollSchedule,
    rng: random.Random,
    *,
    callback: bool,
    recovered: bool,
    seen: bool,
    callback_every_s: float,
) -> float:
    """The wait before a task's next regular poll. Callback tasks are polled slowly, as a
    fallback for lost callbacks; after a restart a callback task is polled at the normal pace
    until its own callback reaches this run (the provider may still be calling an address an
    earlier run listened on)."""
    if callback and (not recovered or seen):
        return callback_every_s * (1 + sched.jitter * (2 * rng.random() - 1))
    return next_poll_delay(sched, rng)


def on_grid(when: float, grid: float) -> float:
    """A wake-up time rounded up to the grid (POLL_GRID of the poll interval): trackers due in
    the same slot wake in one loop pass, never earlier than asked."""
    return math.ceil(when / grid) * grid if grid > 0 else when
