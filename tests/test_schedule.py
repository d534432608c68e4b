"""core/schedule.py as tables: every pure timing rule of tracking, with exact figures for the
documented schedule (first poll at 60 s, then every 5 s, ±20 % jitter; callback grace 60 s,
fallback polls every 30 s, guard window 0.5 s)."""

from __future__ import annotations

import random

import pytest

from batchgen.core.schedule import (
    PollSchedule,
    callback_first_delay,
    claim_follow_ups,
    claim_guard,
    confirm_delay,
    earliest_end,
    on_grid,
    pace,
)

SCHED = PollSchedule()  # 60 s, 5 s, jitter 0.2


@pytest.mark.parametrize(
    ("duration", "factor", "earliest"),
    [(5, None, 60.0), (10, None, 90.0), (5, 2.0, 120.0), (10, 0.5, 30.0)],
)
def test_the_earliest_end_follows_the_model_and_the_poll_schedule(
    duration: int, factor: float | None, earliest: float
) -> None:
    assert earliest_end(duration, SCHED, factor) == earliest


@pytest.mark.parametrize(
    ("callback", "recovered", "seen", "low", "high"),
    [
        (False, False, False, 4.0, 6.0),  # polling: every 5 s ± 20 %
        (True, False, False, 24.0, 36.0),  # callback mode: the slow fallback, 30 s ± 20 %
        (True, True, False, 4.0, 6.0),  # after a restart: normal pace until its callback
        (True, True, True, 24.0, 36.0),  # ... which came: the slow fallback again
    ],
)
def test_the_pace_between_polls(
    callback: bool, recovered: bool, seen: bool, low: float, high: float
) -> None:
    rng = random.Random(5)
    waits = [
        pace(SCHED, rng, callback=callback, recovered=recovered, seen=seen, callback_every_s=30)
        for _ in range(200)
    ]
    assert low <= min(waits) and max(waits) <= high


def test_the_first_fallback_poll_comes_after_the_latest_finish_and_the_grace() -> None:
    assert callback_first_delay(60.0, 60.0) == 150.0


@pytest.mark.parametrize(
    ("when", "grid", "snapped"),
    [(12.01, 0.5, 12.5), (12.5, 0.5, 12.5), (0.0, 0.5, 0.0), (3.3, 0.0, 3.3)],
)
def test_wake_ups_end_on_the_grid_never_early(when: float, grid: float, snapped: float) -> None:
    assert on_grid(when, grid) == pytest.approx(snapped)
    assert on_grid(when, grid) >= when


@pytest.mark.parametrize(
    ("now", "last", "guard", "wait"),
    [(10.0, None, 0.5, 0.0), (10.0, 9.0, 0.5, 0.0), (10.0, 9.8, 0.5, 0.3), (10.0, 9.8, 0.0, 0.0)],
)
def test_news_is_confirmed_when_the_guard_window_ends(
    now: float, last: float | None, guard: float, wait: float
) -> None:
    assert confirm_delay(now, last, guard) == pytest.approx(wait)


@pytest.mark.parametrize(
    ("plausible", "guard", "follow_ups"),
    [(True, 0.5, [0.5, 1.0, 2.0]), (False, 0.5, []), (True, 0.0, [])],
)
def test_a_refuted_claim_earns_follow_ups_only_when_plausible(
    plausible: bool, guard: float, follow_ups: list[float]
) -> None:
    assert claim_follow_ups(plausible, guard) == follow_ups


@pytest.mark.parametrize(
    ("refuted", "guard"), [(0, 0.5), (1, 1.0), (2, 2.0), (5, 16.0), (6, 30.0), (60, 30.0)]
)
def test_the_guard_doubles_with_each_refuted_claim_up_to_the_fallback_pace(
    refuted: int, guard: float
) -> None:
    assert claim_guard(0.5, refuted, 30.0) == guard
