"""The confirmation guard (batchgen.engine.wakes) on a fake clock: news is delayed, never lost."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from batchgen.clock import LOOP_CLOCK
from batchgen.core.schedule import confirm_delay
from batchgen.engine.wakes import Wakeup


@pytest.mark.parametrize(
    ("now", "last", "guard", "wait"),
    [
        (10.0, None, 0.5, 0.0),  # no request yet: confirm at once
        (10.0, 9.0, 0.5, 0.0),  # the window is over
        (10.0, 9.5, 0.5, 0.0),  # exactly at its end
        (10.0, 9.8, 0.5, 0.3),  # within it: wait for its end, not for a later poll
        (10.0, 10.0, 0.5, 0.5),
        (10.0, 9.8, 0.0, 0.0),  # no guard
    ],
)
def test_confirm_delay(now: float, last: float | None, guard: float, wait: float) -> None:
    assert confirm_delay(now, last, guard) == pytest.approx(wait)


def test_a_stream_of_news_costs_one_request_per_window_and_the_last_is_confirmed() -> None:
    """Drive the decision the tracker makes with a fake clock: 100 posts over 2 s for one
    task, a request whenever the guard lets one go, every request covering all news so far."""
    guard = 0.5
    news = [i * 0.02 for i in range(100)]  # 0 .. 1.98 s
    requests: list[float] = []
    pending = False
    due: float | None = None
    t = 0.0
    for at in [*news, 10.0]:
        # requests that fall due before this post
        while pending and due is not None and due <= at:
            requests.append(due)
            pending, due = False, None
        if at == 10.0:
            break
        t = at
        pending = True
        last = requests[-1] if requests else None
        due = t + confirm_delay(t, last, guard)
    assert requests[0] == 0.0
    assert all(b - a >= guard - 1e-9 for a, b in itertools.pairwise(requests))
    assert len(requests) <= 2.0 / guard + 1
    assert requests[-1] >= news[-1]  # the last news was confirmed, not dropped


async def test_wakeup_says_why_it_woke() -> None:
    wake = Wakeup(LOOP_CLOCK)
    assert await wake.sleep(0.0) is False  # the time ran out
    wake.set()  # news while the tracker is busy is kept for its next sleep ...
    assert wake.is_set() and await wake.sleep(60.0) is True
    wake.set()
    wake.clear()  # ... unless a request that sees it is about to leave
    assert await wake.sleep(0.0) is False
    sleeper = asyncio.ensure_future(wake.sleep(60.0))
    await asyncio.sleep(0)
    wake.set()
    assert await sleeper is True
