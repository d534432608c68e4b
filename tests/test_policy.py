"""Table tests for the pure policy: backoff, Retry-After, poll schedule, status classification."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from batchgen.core.policy import (
    MAX_RETRY_AFTER,
    Backoff,
    Outcome,
    backoff_delay,
    classify_status,
    parse_retry_after,
    rate_limit_pause,
    retry_delay,
)
from batchgen.core.schedule import PollSchedule, first_poll_delay, next_poll_delay

# -- backoff ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(0, 1.0), (1, 2.0), (2, 4.0), (5, 32.0), (6, 60.0), (7, 60.0), (100, 60.0), (10**6, 60.0)],
)
def test_backoff_ceiling_is_capped_exponential(attempt: int, ceiling: float) -> None:
    class Top(random.Random):  # uniform(a, b) -> b: reveals the ceiling
        def uniform(self, a: float, b: float) -> float:
            return b

    assert backoff_delay(attempt, Backoff(base=1.0, cap=60.0), Top()) == ceiling


@given(
    attempt=st.integers(min_value=0, max_value=2000),
    base=st.floats(min_value=0.01, max_value=10),
    extra=st.floats(min_value=0, max_value=1000),
    seed=st.integers(),
)
@example(attempt=1023, base=2.0, extra=0.0, seed=0)  # 2 * 2**1023 overflowed math.ldexp
def test_backoff_is_within_zero_and_ceiling(
    attempt: int, base: float, extra: float, seed: int
) -> None:
    policy = Backoff(base=base, cap=base + extra)
    delay = backoff_delay(attempt, policy, random.Random(seed))
    assert 0.0 <= delay <= min(policy.cap, base * 2.0 ** min(attempt, 60))


def test_backoff_is_full_jitter_not_a_narrow_band() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(4, Backoff(base=1.0, cap=60.0), rng) for _ in range(5000)]
    assert min(delays) < 0.5  # reaches down to ~0 ...
    assert max(delays) > 15.5  # ... and up to the ceiling of 16
    assert statistics.mean(delays) == pytest.approx(8.0, rel=0.05)


def test_backoff_is_deterministic_for_a_seed() -> None:
    a = [backoff_delay(i, Backoff(), random.Random(42)) for i in range(10)]
    b = [backoff_delay(i, Backoff(), random.Random(42)) for i in range(10)]
    assert a == b


def test_backoff_rejects_negative_attempt_and_bad_policies() -> None:
    with pytest.raises(ValueError):
        backoff_delay(-1, Backoff(), random.Random(0))
    for kwargs in ({"base": 0}, {"base": 2.0, "cap": 1.0}):
        with pytest.raises(ValueError):
            Backoff(**kwargs)  # type: ignore[arg-type]


# -- Retry-After --------------------------------------------------------------------------

NOW = datetime(2026, 1, 9, 12, 0, 0, tzinfo=UTC).timestamp()


def http_date(offset: float) -> str:
    return format_datetime(datetime.fromtimestamp(NOW + offset, tz=UTC), usegmt=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("  7 ", 7.0),
        ("+3", 3.0),
        (".5", 0.5),
        ("-5", 0.0),
        ("999999", MAX_RETRY_AFTER),
        (http_date(30), 30.0),
        (http_date(-30), 0.0),
        (http_date(10 * 86400), MAX_RETRY_AFTER),
        ("Fri, 09 Jan 2026 12:00:45 GMT", 45.0),
        ("Fri, 09 Jan 2026 12:00:45 -0000", 45.0),
        ("Fri, 09 Jan 2026 13:00:20 +0100", 20.0),
        (None, None),
        ("", None),
        ("   ", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("1e3", None),
        ("12 seconds", None),
        ("Fri, 99 Foo 2026 12:00:45 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    got = parse_retry_after(value, NOW)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


@given(st.text(max_size=40))
def test_parse_retry_after_never_raises(value: str) -> None:
    got = parse_retry_after(value, NOW)
    assert got is None or 0.0 <= got <= MAX_RETRY_AFTER


def test_retry_delay_honours_retry_after_as_a_floor() -> None:
    policy = Backoff(base=1.0, cap=60.0)
    for attempt in range(10):
        rng = random.Random(attempt)
        assert retry_delay(attempt, policy, rng, 5.0) >= 5.0
    # without Retry-After it is exactly the backoff for the same random draw
    assert retry_delay(3, policy, random.Random(1), None) == backoff_delay(
        3, policy, random.Random(1)
    )
    # when the backoff draws higher than the floor, the backoff wins
    assert retry_delay(10, policy, random.Random(1), 0.0) == backoff_delay(
        10, policy, random.Random(1)
    )
    assert retry_delay(0, policy, random.Random(1), 10**9) == MAX_RETRY_AFTER
    assert 0.0 <= retry_delay(0, policy, random.Random(1), -3.0) <= 1.0


@pytest.mark.parametrize(
    ("n", "retry_after", "expected"),
    [(1, None, 1.0), (2, None, 2.0), (3, None, 4.0), (10, None, 60.0), (0, None, 1.0),
     (1, 12.5, 12.5), (5, 0.0, 0.0), (1, 10**7, MAX_RETRY_AFTER), (1, -1.0, 0.0)],
)  # fmt: skip
def test_rate_limit_pause(n: int, retry_after: float | None, expected: float) -> None:
    assert rate_limit_pause(n, Backoff(base=1.0, cap=60.0), retry_after) == expected


# -- polling ------------------------------------------------------------------------------


@pytest.mark.parametrize(("duration", "low"), [(5, 60.0), (10, 90.0)])
def test_first_poll_delay_bounds(duration: int, low: float) -> None:
    sched = PollSchedule(poll_after=60.0, jitter=0.2, long_video_factor=1.5)
    rng = random.Random(3)
    delays = [first_poll_delay(duration, sched, rng) for _ in range(2000)]
    assert min(delays) >= low  # never before the earliest possible finish
    assert max(delays) <= low * 1.2
    assert max(delays) - min(delays) > low * 0.15  # spread over the jitter band


def test_first_poll_delay_without_jitter_is_exact() -> None:
    sched = PollSchedule(poll_after=60.0, jitter=0.0)
    assert first_poll_delay(5, sched, random.Random(0)) == 60.0
    assert first_poll_delay(10, sched, random.Random(0)) == 90.0
    assert first_poll_delay(10, PollSchedule(poll_after=40, jitter=0, long_video_factor=2),
                            random.Random(0)) == 80.0  # fmt: skip


def test_next_poll_delay_is_jittered_around_poll_every() -> None:
    sched = PollSchedule(poll_every=5.0, jitter=0.2)
    rng = random.Random(11)
    delays = [next_poll_delay(sched, rng) for _ in range(5000)]
    assert 4.0 <= min(delays) < 4.1
    assert 5.9 < max(delays) <= 6.0
    assert statistics.mean(delays) == pytest.approx(5.0, rel=0.02)
    assert next_poll_delay(PollSchedule(poll_every=5.0, jitter=0.0), rng) == 5.0


def test_tasks_submitted_together_do_not_poll_in_lockstep() -> None:
    sched = PollSchedule()
    rng = random.Random(5)
    firsts = [first_poll_delay(5, sched, rng) for _ in range(100)]

    def busiest_second(times: list[float]) -> int:
        ts = sorted(times)
        return max(sum(1 for u in ts if t <= u < t + 1.0) for t in ts)

    # 100 tasks submitted at once: spread over 12 s, about 8 a second, not 100 at 60.0 s
    assert statistics.pstdev(firsts) > 3.0
    assert busiest_second(firsts) <= 20
    # after a few polls the schedules keep drifting apart instead of re-aligning
    later = [t + sum(next_poll_delay(sched, rng) for _ in range(5)) for t in firsts]
    assert statistics.pstdev(later) > 3.0
    assert busiest_second(later) <= 20


@pytest.mark.parametrize(
    "kwargs",
    [{"poll_after": -1}, {"poll_every": 0}, {"jitter": 1.0}, {"jitter": -0.1},
     {"long_video_factor": 0.5}, {"poll_every": float("nan")}],
)  # fmt: skip
def test_poll_schedule_validates(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PollSchedule(**kwargs)


# -- classify_status ----------------------------------------------------------------------

CLASSIFY = [
    # http, body code, message, outcome
    (200, 200, "success", Outcome.OK),
    (200, None, "", Outcome.OK),
    (201, None, "", Outcome.OK),
    (200, 201, "created", Outcome.OK),
    # errors as HTTP statuses
    (400, None, "prompt is required", Outcome.JOB_FAILED),
    (400, 400, "invalid duration", Outcome.JOB_FAILED),
    (400, None, "Insufficient credits", Outcome.ACCOUNT),
    (400, 400, "insufficient CREDITS", Outcome.ACCOUNT),
    (400, None, "Your balance is insufficient", Outcome.ACCOUNT),
    (400, None, "Quota exceeded for this account", Outcome.ACCOUNT),
    (400, None, "Not enough credit", Outcome.ACCOUNT),
    (400, None, "credits exhausted, please top up", Outcome.ACCOUNT),
    (400, None, "Insufficient funds", Outcome.ACCOUNT),
    (400, None, "prompt 'a gymnast on a balance beam' is invalid", Outcome.JOB_FAILED),
    (401, None, "invalid API key", Outcome.ACCOUNT),
    (402, None, "Payment Required", Outcome.ACCOUNT),
    (403, None, "forbidden", Outcome.ACCOUNT),
    (404, None, "task not found", Outcome.NOT_FOUND),
    (410, None, "gone", Outcome.NOT_FOUND),
    (408, None, "request timeout", Outcome.RETRY),
    (409, None, "conflict", Outcome.JOB_FAILED),
    (413, None, "payload too large", Outcome.JOB_FAILED),
    (422, None, "unprocessable", Outcome.JOB_FAILED),
    (429, None, "rate limit exceeded", Outcome.RATE_LIMITED),
    (500, None, "internal error", Outcome.RETRY),
    (502, None, "", Outcome.RETRY),
    (503, 503, "unavailable", Outcome.RETRY),
    (504, None, "", Outcome.RETRY),
    # errors as HTTP 200 with a body code: the body code wins
    (200, 400, "invalid prompt", Outcome.JOB_FAILED),
    (200, 400, "Insufficient credits", Outcome.ACCOUNT),
    (200, 401, "unauthorized", Outcome.ACCOUNT),
    (200, 404, "no such task", Outcome.NOT_FOUND),
    (200, 429, "too many requests", Outcome.RATE_LIMITED),
    (200, 500, "server error", Outcome.RETRY),
    (200, 502, "bad gateway", Outcome.RETRY),
    (200, 408, "timeout", Outcome.RETRY),
    # mixed: 429 and 5xx anywhere win; otherwise an error HTTP status decides
    (400, 429, "slow down", Outcome.RATE_LIMITED),
    (503, 200, "", Outcome.RETRY),
    (400, 500, "", Outcome.RETRY),
    (500, 400, "Insufficient credits", Outcome.RETRY),
    (404, 200, "", Outcome.NOT_FOUND),
    (401, 400, "", Outcome.ACCOUNT),
    # odd codes fail the one job instead of looping
    (302, None, "found", Outcome.JOB_FAILED),
    (200, 1001, "unknown error", Outcome.JOB_FAILED),
    (200, 0, "", Outcome.OK),  # 0 is "success" in many APIs of this shape
]


@pytest.mark.parametrize(("http", "body", "message", "expected"), CLASSIFY)
def test_classify_status(http: int, body: int | None, message: str, expected: Outcome) -> None:
    assert classify_status(http, body, message) is expected
