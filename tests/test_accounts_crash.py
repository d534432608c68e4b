"""A SIGKILLed run's tasks stay the account's until they end; another run polls them (never
resubmits them), and the dead run's own resume collects them. An account database that
cannot be reached stops submits, never polls or downloads (issue 29)."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import pytest

from batchgen.simulator import Simulator
from tests.accountkit import state_for
from tests.enginekit import KEY, SCALE
from tests.opskit import counts, finish, resume_argv, run_cli, spawn

CAP = 10


def argv(state: Path, sim: Simulator, db: Path | str, *extra: str) -> list[str]:
    return [
        *resume_argv(state, sim.base_url, in_flight=CAP),
        "--account-db", str(db), "--no-preflight", *extra,
    ]  # fmt: skip


def account_tasks(db: Path) -> set[str]:
    con = sqlite3.connect(db)
    try:
        return {r[0] for r in con.execute("SELECT task_id FROM slots WHERE task_id IS NOT NULL")}
    finally:
        con.close()


@pytest.mark.timeout(300)
async def test_a_killed_runs_tasks_stay_counted_are_polled_and_not_paid_again(
    tmp_path: Path,
) -> None:
    db = tmp_path / "accounts.db"
    kw = dict(api_keys=frozenset({KEY}), time_scale=SCALE, max_in_flight=CAP, seed=7)
    async with Simulator(**kw) as sim:  # type: ignore[arg-type]
        dead = state_for(tmp_path, "dead", 8)
        proc = await spawn(argv(dead, sim, db))
        for _ in range(3000):  # count events, not seconds: six tasks made
            if len(sim.store) >= 6 or proc.returncode is not None:
                break
            await asyncio.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        made = set(sim.task_ids())
        assert len(made) >= 6
        # The tasks that exist are still the account's: their slots stay taken.
        left = made & account_tasks(db)
        assert len(left) >= 5  # (one may have been answered as the kill landed)

        other = state_for(tmp_path, "other", 12)
        code, _, err = await run_cli(argv(other, sim, db), within=120)
        assert code == 0, err
        assert "which is no longer running" in err  # it polled the dead run's tasks
        assert account_tasks(db) & made == set()  # ... until they ended: slots free
        stats = sim.stats()
        assert stats["max_in_flight"] <= CAP and stats["rate_limited"] == 0
        assert stats["submits_per_body"]["duplicate_bodies"] == 0  # nothing paid again

        code, _, err = await run_cli(argv(dead, sim, db), within=120)
        assert code in (0, 1), err  # 1: a submit cut by the kill is ambiguous, never resent
        after = counts(dead)
        assert after["done"] >= len(made) - after["ambiguous"]
        assert sim.stats()["submits_per_body"]["duplicate_bodies"] == 0


@pytest.mark.timeout(120)
async def test_an_unreachable_account_db_stops_submits_and_ends_75(tmp_path: Path) -> None:
    broken = tmp_path / "not-a-db"
    broken.mkdir()  # a folder: SQLite cannot open it
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=3) as sim:
        state = state_for(tmp_path, "run", 4)
        code, _, err = await run_cli(argv(state, sim, broken), within=60)
        assert code == 75, err
        assert "account database cannot be reached" in err
        assert "Traceback" not in err
        assert sim.stats()["requests"].get("submit") is None  # fail closed: nothing sent
        assert counts(state)["pending"] == 4
        # Opted out, the same run goes on alone.
        code, _, err = await run_cli(argv(state, sim, "none"), within=60)
        assert code == 0, err


@pytest.mark.timeout(60)
async def test_account_options_are_checked(tmp_path: Path) -> None:
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=3) as sim:
        state = state_for(tmp_path, "run", 1)
        code, _, err = await run_cli(argv(state, sim, "none", "--account", "a b"), within=60)
        assert code == 2 and "invalid --account" in err and "Traceback" not in err
        proc = await spawn(argv(state, sim, tmp_path / "a.db", "--account", "team"))
        code, _, err = await finish(proc)
        assert code == 0, err
