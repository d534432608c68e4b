"""The adaptive in-flight cap (issue 20 item 9): the target is a pure decision, driven here
step by step on a FakeClock; the asyncio gate around it is checked for who waits and who goes."""

from __future__ import annotations

import asyncio

import pytest

from batchgen.clock import FakeClock
from batchgen.core.policy import Backoff, Limit, rate_limit_kind, rate_limit_pause
from batchgen.engine.inflight import INITIAL_TARGET, CapTarget, InFlightCap


def test_slow_start_opens_one_slot_per_accepted_submit_up_to_the_ceiling() -> None:
    t = CapTarget.start(1000)
    assert t.slots == INITIAL_TARGET and t.slow_start
    for _ in range(INITIAL_TARGET):
        t.accepted()
    assert t.slots == 2 * INITIAL_TARGET  # doubles per round of answers
    for _ in range(5000):
        t.accepted()
    assert t.slots == 1000  # never above --max-in-flight
    assert CapTarget.start(10).slots == 10
    assert CapTarget.start(1000, existing=500).slots == 500 + INITIAL_TARGET
    assert CapTarget.start(1000, slow_start=False).slots == 1000


def test_a_concurrency_429_sets_the_target_to_the_tasks_that_exist_then_probes_slowly() -> None:
    clock = FakeClock(start=10.0)
    t = CapTarget.start(1000)
    for _ in range(70):
        t.accepted()
    clock.advance(2.5)
    assert t.saturated(50, clock.now())  # 50 tasks existed when the server said "full"
    assert (t.slots, t.learned, t.learned_at, t.slow_start) == (50, 50, 12.5, False)
    t.accepted()
    assert t.slots == 50  # no more slow start
    for _ in range(49):
        t.ended()
    assert t.slots == 50
    t.ended()  # 50 tasks ended with no 429 in between: one slot more
    assert t.slots == 51
    for _ in range(51):
        t.ended()
    assert t.slots == 52
    clock.advance(1.0)
    assert t.saturated(50, clock.now())  # the probe was refused: back to what exists
    assert (t.slots, t.learned_at, t.lowered) == (50, 13.5, 2)
    assert not t.saturated(50, clock.now())  # the same answer again changes nothing
    # none of ours exist: someone else holds the server's cap, which says nothing of ours
    assert not t.saturated(0, clock.now()) and (t.slots, t.lowered) == (50, 3)


async def test_the_gate_holds_submits_to_the_learned_target_and_requeues_at_the_front() -> None:
    clock = FakeClock()
    cap = InFlightCap(1000)
    for _ in range(3):
        assert cap.try_acquire()
        cap.created()
    assert (cap.tasks, cap.reserved) == (3, 0)
    assert cap.try_acquire()  # a submit on the wire ...
    assert cap.saturated(clock.now())  # ... refused: the cap is the 3 tasks that exist
    assert cap.limit == 3
    cap.unreserve()
    assert cap.tasks == 3 and cap.in_flight == 3
    order: list[str] = []

    async def job(name: str, front: bool = False) -> None:
        await cap.acquire(front=front)
        order.append(name)

    later = asyncio.create_task(job("next job"))
    await clock.settle()
    refused = asyncio.create_task(job("refused job", front=True))
    await clock.settle()
    assert order == [] and cap.waiters == 2
    cap.release()  # a task ended: its slot goes to the job the 429 sent back
    await clock.settle()
    assert order == ["refused job"]
    cap.created()
    cap.release()
    await clock.settle()
    assert order == ["refused job", "next job"]
    await asyncio.gather(later, refused)


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("Too many concurrent tasks (limit 50)", Limit.CONCURRENCY),
        ("You have too many running tasks", Limit.CONCURRENCY),
        ("Too many requests: concurrent task limit 50", Limit.CONCURRENCY),
        ("task limit reached, 50 in flight", Limit.CONCURRENCY),
        ("Rate limit exceeded, please wait and retry", Limit.RATE),
        ("10000 requests per minute exceeded", Limit.RATE),
        ("Too Many Requests", Limit.UNKNOWN),  # HTTP's reason phrase names no limit
        ("HTTP 429", Limit.UNKNOWN),
        ("", Limit.UNKNOWN),
        ("rate limit: too many concurrent tasks", Limit.UNKNOWN),  # names both
    ],
)
def test_a_429_message_is_read_for_the_limit_it_names(message: str, kind: Limit) -> None:
    assert rate_limit_kind(message) is kind


def test_the_rate_pause_starts_at_its_base_and_doubles_to_its_cap() -> None:
    pause = Backoff(base=1.0, cap=60.0)
    assert [rate_limit_pause(n, pause, None) for n in range(1, 9)] == [
        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0
    ]  # fmt: skip
    assert rate_limit_pause(5, pause, 3.5) == 3.5  # the server's Retry-After wins


@pytest.mark.parametrize(
    ("words", "submit", "tasks", "used", "polls_refused", "kind"),
    [
        # APIXO's wording for both limits, on a submit while our tasks hold slots and our own
        # requests are far under our budget: the cap on tasks (issue 25 item 3).
        (Limit.RATE, True, 50, 120, False, Limit.CONCURRENCY),
        (Limit.UNKNOWN, True, 50, 9_000, False, Limit.CONCURRENCY),
        # Our own budget nearly spent: the words are believed.
        (Limit.RATE, True, 50, 9_000, False, Limit.RATE),
        # A poll refused in the window: the account's rate is spent (maybe by others).
        (Limit.RATE, True, 50, 120, True, Limit.RATE),
        (Limit.UNKNOWN, True, 50, 120, True, Limit.UNKNOWN),
        # No task of ours: the words decide.
        (Limit.RATE, True, 0, 0, False, Limit.RATE),
        (Limit.UNKNOWN, True, 0, 0, False, Limit.UNKNOWN),
        (Limit.CONCURRENCY, True, 0, 0, False, Limit.CONCURRENCY),
        # A poll takes no slot: its 429 is the rate, whatever it says.
        (Limit.CONCURRENCY, False, 50, 10, False, Limit.RATE),
        (Limit.UNKNOWN, False, 50, 10, False, Limit.RATE),
    ],
)
def test_a_429_is_judged_from_what_the_client_counted(
    words: Limit, submit: bool, tasks: int, used: int, polls_refused: bool, kind: Limit
) -> None:
    from batchgen.core.policy import judge_429

    got = judge_429(
        words,
        submit=submit,
        tasks_held=tasks,
        own_in_window=used,
        own_limit=10_000,
        polls_refused_lately=polls_refused,
    )
    assert got is kind
