"""The spend cap against the simulator's own books, across SIGKILLs and restarts.

`batchgen resume --max-spend CAP` is killed at seeded random moments with 25 submits allowed
in flight and faults that lose submit answers (so some jobs end ambiguous, their price
counted). The simulator charges every task it creates at its own prices, which differ from
batchgen's table (so the cap must hold on learned prices). Then: what the simulator charged
never exceeds the cap; a cron-style rerun at the cap spends nothing and exits 5; raising the
cap finishes the batch. Prints spend at the cap / cap for the README.
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest

from batchgen import store as st
from batchgen.money.prices import MICROS, PriceBook
from batchgen.simulator import Simulator
from tests.enginekit import KEY, SCALE, mixed_jobs, prepare_state, state_rows
from tests.opskit import resume_argv
from tests.test_crash import _run_once

SIM_PRICES = "standard-image-to-video:5=0.30,pro-image-to-video:10=1.10,master-text-to-video:5=0.80"
FAULTS = {"p_reset_after_create": 0.02, "p_502_after_create": 0.02, "p_5xx": 0.02, "p_429": 0.01}
CAP_USD = 30


async def _to_the_end(argv: list[str]) -> tuple[int, str]:
    """Run until the exit is not 75 (work left by a run cut short): (exit, stderr)."""
    env = {**os.environ, "APIXO_API_KEY": KEY}
    for _ in range(6):
        proc = await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        _, err = await asyncio.wait_for(proc.communicate(), timeout=120)
        assert b"Traceback" not in err, err.decode()
        if proc.returncode != 75:
            return proc.returncode, err.decode()
    raise AssertionError("still work left after 6 runs")


@pytest.mark.timeout(300)
async def test_the_cap_holds_across_sigkills_then_cron_spends_nothing_then_raising_finishes(
    tmp_path: Path, capsys
) -> None:
    rng = random.Random(20261203)
    jobs = mixed_jobs(120, violations=(7,), tag="cap")
    state = prepare_state(tmp_path, jobs)
    async with Simulator(
        api_keys=frozenset({KEY}), time_scale=SCALE, seed=5, prices=SIM_PRICES, **FAULTS
    ) as sim:
        argv = resume_argv(state, sim.base_url, "--quiet", in_flight=25)
        capped = [*argv, "--max-spend", str(CAP_USD)]
        landed = 0
        for _ in range(30):
            # Killed after its n-th request, not after a time: the kill lands whatever the
            # machine's load (timed kills landed 4 of 8 on a busy two-core machine).
            code = await _run_once(capped, None, sim=sim, after_requests=rng.randint(2, 12))
            landed += code is None
            assert float(sim.billing.charged) <= CAP_USD  # at every moment, not only at the end
            if code == 5 and landed >= 8:
                break
        assert landed >= 8
        code, err = await _to_the_end(capped)
        assert code == 5, err
        assert "spend cap reached" in err and "--max-spend" in err
        charged = sim.billing.charged
        assert float(charged) <= CAP_USD
        rows = state_rows(state)
        store = st.Store(state, readonly=True)
        try:
            notes = [n for (n,) in store.db.execute("SELECT note FROM jobs WHERE state='pending'")]
        finally:
            store.close()
        assert notes and all("spend cap" in (n or "") for n in notes)
        assert not [r for r in rows if r["state"] in (st.SUBMITTING, st.IN_FLIGHT)]
        assert {r["id"] for r in rows if r["state"] == st.FAILED} <= {"job-0007"}

        # Prices learned equal the simulator's, for every class it charged.
        store = st.Store(state, readonly=True)
        try:
            learned = store.ledger.learned_prices()
            spent = store.ledger.spent()
        finally:
            store.close()
        for key, micros in learned.items():
            _, mode, duration = key.split("/")
            want = sim.billing.prices[("kling-2-1", mode, int(duration.rstrip("s")))]
            assert micros == int(want * MICROS), key
        differ = sum(PriceBook().table(k) != v for k, v in learned.items())
        assert differ >= 1  # the cap held on learned prices, not only on the table's
        assert spent <= CAP_USD * MICROS
        assert int(charged * MICROS) <= spent  # ambiguous reservations may not have been paid

        # A cron-style rerun at the cap spends nothing and says so again.
        code, err = await _to_the_end([*capped, "--no-wait"])
        assert code == 5 and sim.billing.charged == charged

        # Raising the cap finishes the batch.
        code, err = await _to_the_end([*argv, "--max-spend", "1000"])
        assert code in (0, 1), err
        rows = state_rows(state)
        assert not [r for r in rows if r["state"] in (st.PENDING, st.IN_FLIGHT, st.SUBMITTING)]
        total_at_cap = float(charged)
    with capsys.disabled():
        print(
            f"\nspend cap: {landed} kills; the simulator charged ${total_at_cap:.2f} at a cap "
            f"of ${CAP_USD} (spend at the cap / cap = {total_at_cap / CAP_USD:.3f}); "
            f"{len(learned)} prices learned, {differ} of them unlike the table"
        )
