"""Another client on the same account (issue 33): a colleague's script, the provider's web
playground, a second cron job. With no coordination between them, a run never freezes after
429s it did not cause, and never learns a price from someone else's spending."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from batchgen import store as st
from batchgen.hooks import RunHooks
from batchgen.money.prices import MICROS, PriceBook
from batchgen.runner import execute
from batchgen.simulator import Simulator
from tests.enginekit import KEY, SCALE, body, mixed_jobs, options, prepare_state, state_rows

pytestmark = pytest.mark.timeout(120)


class OtherClient:
    """Someone else on the account: keeps the account's task cap nearly full with tasks of its
    own until `release()`, answering nothing to batchgen. Counts its own submits."""

    def __init__(self, sim: Simulator, leave_free: int) -> None:
        self.sim = sim
        self.leave_free = leave_free
        self.submits = 0
        self.holding = True
        self._task: asyncio.Task[None] | None = None

    async def _hold(self) -> None:
        url = self.sim.base_url + "/generateTask/kling-2-1"
        cap = self.sim.config.max_in_flight
        headers = {"Authorization": f"Bearer {KEY}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            for i in range(100_000):  # bounded; released long before
                if not self.holding:
                    return
                if self.sim.store.in_flight(self.sim.now()) >= cap - self.leave_free:
                    await asyncio.sleep(0.005)
                    continue
                job = body(50_000 + i, "master-text-to-video", prompt=f"someone else {i}")
                async with http.post(url, json=job) as r:
                    await r.read()
                self.submits += 1

    def start(self) -> None:
        self._task = asyncio.create_task(self._hold())

    async def release(self) -> None:
        self.holding = False
        if self._task is not None:
            await self._task


@pytest.mark.parametrize("words", ["Rate limit exceeded", "Too many concurrent tasks"])
async def test_a_run_never_freezes_behind_another_clients_tasks(tmp_path: Path, words: str) -> None:
    """Another client holds 38 of the account's 40 task slots while the run starts, then lets
    go. Before: the price-learning submit, refused by the 429, waited for a slot that the 31
    jobs waiting for its turn held: in flight 0/40 and no request sent, for ever. Now the run
    finishes, near one submit per job, its cap grown back."""
    n = 80
    state = prepare_state(tmp_path, mixed_jobs(n))
    got: dict[str, Any] = {}
    sim_kw = {"api_keys": frozenset({KEY}), "time_scale": SCALE, "seed": 1}
    async with Simulator(**sim_kw, max_in_flight=40, concurrency_message=words) as sim:
        other = OtherClient(sim, leave_free=2)
        other.start()
        while sim.store.in_flight(sim.now()) < 38:  # noqa: ASYNC110 (a count, no event)
            await asyncio.sleep(0.005)
        run = asyncio.create_task(
            execute(
                options(tmp_path, sim.base_url, max_in_flight=40),
                RunHooks(on_engine=lambda e: got.__setitem__("engine", e)),
            )
        )
        for _ in range(20_000):  # until the run holds tasks of its own, and a 429 came
            engine = got.get("engine")
            if engine is not None and engine.stats.submitted and engine.stats.rate_limited:
                break
            await asyncio.sleep(0.005)
        await other.release()
        outcome = await asyncio.wait_for(run, 90)
        submits = sum(sim.stats()["requests"]["submit"].values()) - other.submits
    assert outcome.exit_code == 0, outcome
    assert [r["state"] for r in state_rows(state)] == [st.DONE] * n
    assert submits <= 1.5 * n, submits
    cap = got["engine"].cap
    assert cap.max_seen > 20, cap  # it grew back once the other client let go


async def test_another_clients_spending_is_not_learned_as_a_price(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another client's $20 charges land between the balance reads around every learning
    submit. Before: the run learned $21 for a $1 class and rested its cap and estimate on it.
    Now each such drop is refused (a warning, then tried again on the class's next submit, up
    to three times), no learned price is outside the listed price's bounds, and the spend cap
    holds on the run's own charges."""
    caplog.set_level(logging.INFO, logger="batchgen")
    jobs = [
        (f"job-{i:02d}", "kling-2-1", body(i, "master-text-to-video", prompt=f"shared {i}"))
        for i in range(12)
    ]
    state = prepare_state(tmp_path, jobs)
    cap_usd = 8
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=2) as sim:
        billing = sim.billing
        shown = billing.current
        reads = {"n": 0, "stranger": Decimal(0)}

        def read_with_a_stranger(now: float) -> float:
            """Before every read but the run's first, someone else's $20 task was charged."""
            reads["n"] += 1
            if reads["n"] > 1:
                billing.balance -= Decimal(20)
                reads["stranger"] += Decimal(20)
            return shown(now)

        billing.current = read_with_a_stranger  # type: ignore[method-assign]
        outcome = await execute(options(tmp_path, sim.base_url, max_spend_micros=cap_usd * MICROS))
        ours = billing.charged  # the stranger's charges were taken from the balance only
    assert reads["stranger"] >= 20
    store = st.Store(state, readonly=True)
    try:
        learned = store.ledger.learned_prices()
        spent = store.ledger.spent()
    finally:
        store.close()
    listed = PriceBook().table("kling-2-1/master-text-to-video/5s")
    assert listed is not None
    for key, micros in learned.items():
        assert listed / 3 <= micros <= listed * 3, (key, micros)
    assert "someone else on the account probably spent" in caplog.text
    assert float(ours) <= cap_usd and spent <= cap_usd * MICROS
    assert outcome.exit_code == 5  # 12 jobs at $1 against a cap of $8
    done = sum(r["state"] == st.DONE for r in state_rows(state))
    assert done == 8  # the cap counted the run's own charges, not the stranger's
