"""Group fsync: one flush serves every waiter whose write came before it started."""

from __future__ import annotations

import asyncio
import threading

import pytest

from batchgen.adapters.durability import GroupSync


class Flusher:
    """A fake fsync that blocks in its worker thread until the test lets it go."""

    def __init__(self) -> None:
        self.started = threading.Semaphore(0)
        self.release = threading.Semaphore(0)
        self.calls = 0
        self.fail: Exception | None = None

    def __call__(self) -> None:
        self.calls += 1
        self.started.release()
        self.release.acquire()
        if self.fail is not None:
            raise self.fail


async def started(f: Flusher) -> None:
    assert await asyncio.to_thread(f.started.acquire, True, 5)


async def test_waiters_during_a_flush_share_the_next_one() -> None:
    f = Flusher()
    g = GroupSync(f)
    first = asyncio.create_task(g.sync())
    await started(f)
    # These arrive while flush 1 runs: their writes may be after its fsync began, so flush 1
    # must not answer them; all three share flush 2.
    later = [asyncio.create_task(g.sync()) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert not first.done() and not any(t.done() for t in later)
    f.release.release()
    await first
    await started(f)  # flush 2 begins as soon as flush 1 ends
    assert not any(t.done() for t in later)
    f.release.release()
    await asyncio.gather(*later)
    assert f.calls == 2 == g.flushes


async def test_an_idle_group_flushes_at_once_for_a_lone_caller() -> None:
    f = Flusher()
    g = GroupSync(f)
    for _ in range(3):
        f.release.release()
        await g.sync()
    assert f.calls == 3


async def test_a_failed_flush_fails_every_waiter_and_the_next_flush_runs() -> None:
    f = Flusher()
    g = GroupSync(f)
    f.fail = OSError(5, "Input/output error")
    waiters = [asyncio.create_task(g.sync())]
    await started(f)
    waiters.append(asyncio.create_task(g.sync()))
    await asyncio.sleep(0)
    f.release.release()
    with pytest.raises(OSError, match="Input/output"):
        await waiters[0]
    await started(f)
    f.release.release()
    with pytest.raises(OSError, match="Input/output"):
        await waiters[1]
    f.fail = None
    f.release.release()
    await g.sync()  # recovered: a later caller gets a fresh, successful flush


async def test_a_cancelled_waiter_does_not_cancel_the_flush_of_the_others() -> None:
    f = Flusher()
    g = GroupSync(f)
    a = asyncio.create_task(g.sync())
    await started(f)
    b = asyncio.create_task(g.sync())
    c = asyncio.create_task(g.sync())
    await asyncio.sleep(0)
    b.cancel()
    f.release.release()
    await a
    await started(f)
    f.release.release()
    await c
    assert b.cancelled() and f.calls == 2
