"""The run's clock seam (batchgen/clock.py): timers on a FakeClock fire at their deadlines, in
order, never when cancelled; the real clock's timers are the loop's."""

from __future__ import annotations

import asyncio

from batchgen.clock import LOOP_CLOCK, FakeClock
from batchgen.engine.wakes import Wakeup


async def test_fake_timers_fire_in_deadline_order_and_cancelled_ones_never() -> None:
    clock = FakeClock(start=50.0)
    fired: list[tuple[str, float]] = []
    clock.call_at(53.0, lambda: fired.append(("c", clock.now())))
    clock.call_at(51.0, lambda name: fired.append((name, clock.now())), "a")
    gone = clock.call_at(52.0, lambda: fired.append(("cancelled", clock.now())))
    gone.cancel()
    assert clock.sleepers == 2 and clock.next_deadline() == 51.0
    await clock.run_until(60.0)
    assert fired == [("a", 51.0), ("c", 53.0)]
    assert clock.sleepers == 0 and clock.next_deadline() is None


async def test_a_wakeup_sleeps_on_the_clock_it_is_given() -> None:
    """A tracker's sleep ends at its (grid-rounded) deadline on a FakeClock, in no real time,
    or at once when news comes."""
    clock = FakeClock(start=100.2)
    wake = Wakeup(clock)
    sleeping = asyncio.ensure_future(wake.sleep(5.0, grid=0.5))
    await clock.settle()
    assert clock.next_deadline() == 105.5  # 105.2 rounded up to the grid
    await clock.run_until(105.4)
    assert not sleeping.done()
    await clock.run_until(105.5)
    assert sleeping.done() and sleeping.result() is False  # the time ran out
    woken = asyncio.ensure_future(wake.sleep(60.0))
    await clock.settle()
    wake.set()
    await clock.settle()
    assert woken.result() is True and clock.now() == 105.5


async def test_the_loop_clock_timer_is_the_loops() -> None:
    loop = asyncio.get_running_loop()
    fired = asyncio.Event()
    handle = LOOP_CLOCK.call_at(LOOP_CLOCK.now() + 0.01, fired.set)
    assert isinstance(handle, asyncio.TimerHandle)
    async with asyncio.timeout(5):
        await fired.wait()
    assert abs(LOOP_CLOCK.now() - loop.time()) < 1.0
