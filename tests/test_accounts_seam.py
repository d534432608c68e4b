"""The seam between a run and its account: the shared limiter and cap (accounts/shared.py)
on one SQLite account database, on a fake clock, with the database's calls made inline (issue
29). Two "runs" here are two limiters or caps on one database."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from batchgen.accounts.admission import Limits
from batchgen.accounts.asyncdb import AsyncAccountDb
from batchgen.accounts.db import RunInfo
from batchgen.accounts.identity import account_of
from batchgen.accounts.shared import SharedCap, SharedLimiter
from batchgen.accounts.sqlite import SqliteAccountDb
from batchgen.clock import FakeClock
from tests.conftest import eventually

LIMITS = Limits(rate_limit=3, window_s=10.0, max_in_flight=2)


class Inline(AsyncAccountDb):
    """The database's calls made at once, on the caller's thread: no real time passes."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.calls += 1
        try:
            fut.set_result(getattr(self.db, fn.__name__)(self.info, *args))
        except Exception as exc:
            fut.set_exception(exc)
        return fut


def runs(tmp: Path, clock: FakeClock, n: int = 2) -> tuple[SqliteAccountDb, list[Inline]]:
    db = SqliteAccountDb(tmp / "a.db", now=lambda: 1000.0 + clock.now(), host="here")
    acct = account_of("http://127.0.0.1:9/api/v1", "k")
    out = []
    for i in range(n):
        info = RunInfo(f"r{i}", acct.key, acct.label, os.getpid(), "here", str(tmp / f"s{i}"),
                       LIMITS)  # fmt: skip
        db.register(info)
        out.append(Inline(db, info))
    return db, out


async def test_two_limiters_share_one_window(tmp_path: Path) -> None:
    clock = FakeClock()
    _, (a, b) = runs(tmp_path, clock)
    la = SharedLimiter(3, 10.0, account=a, clock=clock)
    lb = SharedLimiter(3, 10.0, account=b, clock=clock)
    for _ in range(3):
        await la.acquire()
    waiting = asyncio.ensure_future(lb.acquire())
    await clock.settle()
    assert (
        not waiting.done() and lb.account_waits == 1
    )  # its own window is empty: the account's is full
    await clock.run_for(9.9)
    assert not waiting.done()
    await clock.run_for(0.2)
    assert waiting.done()


async def test_a_pause_one_run_sees_pauses_the_other(tmp_path: Path) -> None:
    clock = FakeClock()
    _, (a, b) = runs(tmp_path, clock)
    la = SharedLimiter(3, 10.0, account=a, clock=clock)
    lb = SharedLimiter(3, 10.0, account=b, clock=clock)
    la.pause_for(5.0)  # a 429 with Retry-After: 5 s
    waiting = asyncio.ensure_future(lb.acquire())
    await clock.run_for(4.9)
    assert not waiting.done()
    await clock.run_for(0.2)
    assert waiting.done()


async def test_two_caps_share_the_accounts_slots_until_tasks_end(tmp_path: Path) -> None:
    clock = FakeClock()
    db, (a, b) = runs(tmp_path, clock)
    ca = SharedCap(2, account=a, recheck_s=0.001)
    cb = SharedCap(2, account=b, recheck_s=0.001)
    await ca.acquire()
    await ca.acquire()
    ca.created("t1", "kling-2-1")
    ca.created("t2", "kling-2-1")
    waiting = asyncio.ensure_future(cb.acquire())
    await eventually(lambda: cb.account_waits >= 3)  # asked, refused, asked again
    assert not waiting.done()
    ca.release("t1")  # a task ended: its slot is the account's again
    await asyncio.wait_for(waiting, 5)
    cb.unreserve()  # its submit made no task
    assert [t["task_id"] for t in db.listing()[0]["tasks"]] == ["t2"]
    assert db.listing()[0]["reserved"] == 0


async def test_a_stop_posted_by_one_run_stops_the_other(tmp_path: Path) -> None:
    clock = FakeClock()
    _, (a, b) = runs(tmp_path, clock)
    heard: list[str] = []
    ca = SharedCap(2, account=a)
    cb = SharedCap(2, account=b, on_stop=heard.append)
    ca.account_stopped(402, "insufficient credits")
    await cb.acquire()
    assert heard == ["insufficient credits"]
    cb.unreserve()  # the run gives back the local slot it will not use
    assert cb.in_flight == 0


async def test_an_unreachable_database_fails_closed(tmp_path: Path) -> None:
    clock = FakeClock()
    db, (a, _) = runs(tmp_path, clock)
    down: list[str] = []
    cap = SharedCap(2, account=a, on_unreachable=down.append)
    limiter = SharedLimiter(3, 10.0, account=a, clock=clock, on_unreachable=down.append)
    db.close()
    await cap.acquire()
    assert down and "account database" in down[0]
    cap.unreserve()
    await limiter.acquire()  # a poll still goes: only submits stop
    assert len(down) == 2


@pytest.mark.parametrize("status, shared", [(402, True), (401, True), (500, False)])
async def test_which_account_errors_are_news(tmp_path: Path, status: int, shared: bool) -> None:
    clock = FakeClock()
    db, (a, b) = runs(tmp_path, clock)
    SharedCap(2, account=a).account_stopped(status, "x")
    assert (db.reserve_slot(b.info).stopped is not None) is shared
