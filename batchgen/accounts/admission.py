"""Admission decisions, pure: given what the account database holds (request times in the
window, slots taken, the shared news) and the time, may this request or submit go now?

No I/O and no clock reads: every database implementation (SQLite, PostgreSQL) reads its rows
and its time, and asks here, so the rules are one and are unit-tested on plain numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

LEARNED_FORGET_WINDOWS = 10
"""A cap learned from a concurrency 429 binds every run of the account for this many rate
windows, then the runs probe the ceiling again (the other client that held slots may be gone)."""


@dataclass(frozen=True)
class Limits:
    """What one run was told the account allows: requests per window, tasks in flight."""

    rate_limit: int
    window_s: float
    max_in_flight: int


@dataclass(frozen=True)
class News:
    """What one run saw that every run of the account must obey."""

    paused_until: float = 0.0
    pause_why: str | None = None
    stopped_at: float | None = None
    stopped_why: str | None = None
    learned_cap: int | None = None
    learned_at: float | None = None


def request_wait(now: float, recent: Sequence[float], limits: Limits, news: News) -> float:
    """Seconds until a request may go: 0.0 now. `recent` are the account's request times (any
    order); at most `rate_limit` of them may lie in any window of `window_s`."""
    inside = sorted(t for t in recent if t > now - limits.window_s)
    frees = inside[len(inside) - limits.rate_limit] if len(inside) >= limits.rate_limit else None
    return request_wait_counted(now, len(inside), frees, limits, news)


def request_wait_counted(
    now: float, count: int, frees: float | None, limits: Limits, news: News
) -> float:
    """The same from what a database counts: `count` requests in the window, and `frees`, the
    time of the one whose expiry makes room (the (count - limit + 1)-th oldest), if full."""
    wait = max(0.0, news.paused_until - now)
    if count >= limits.rate_limit and frees is not None:
        wait = max(wait, frees + limits.window_s - now)
    return wait


def slot_cap(now: float, limits: Limits, news: News) -> int:
    """The in-flight slots the account allows now: the run's ceiling, or a lower cap one of
    its runs learned from a 429 recently."""
    cap = limits.max_in_flight
    learned, at = news.learned_cap, news.learned_at
    if (
        learned is not None
        and at is not None
        and now - at < LEARNED_FORGET_WINDOWS * limits.window_s
    ):
        cap = min(cap, max(1, news.learned_cap))
    return cap


def slot_free(now: float, taken: int, limits: Limits, news: News) -> bool:
    """A submit may take an in-flight slot: the account's tasks and reservations leave room."""
    return taken < slot_cap(now, limits, news)


def stopped_for(run_started: float, news: News) -> str | None:
    """The account-level stop (revoked key, no credit) that applies to a run: news posted
    while it lived. A run started after the news tries for itself (funds may be back)."""
    if news.stopped_at is not None and news.stopped_at >= run_started:
        return news.stopped_why or "account stopped by another run"
    return None


def run_dead(
    *,
    now: float,
    heartbeat: float,
    ended: float | None,
    stale_s: float,
    lock_held: bool | None,
) -> bool:
    """A run is dead when it ended, when its state-file lock is free (known on its own
    machine), or when its heartbeat is older than `stale_s` (another machine)."""
    if ended is not None:
        return True
    if lock_held is not None:
        return not lock_held
    return now - heartbeat > stale_s


def reservation_lapsed(now: float, reserved_at: float, owner_dead: bool, hold_s: float) -> bool:
    """A reservation (a submit whose answer was not recorded) of a dead run: its task may
    exist, unknown by id, so it stays counted for `hold_s` (a task's longest life), then
    frees."""
    return owner_dead and now - reserved_at > hold_s
