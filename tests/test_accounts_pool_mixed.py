"""Seeded runs over two accounts mixing a revoked key, 429 bursts, 5xx answers, lost answers
and transient task failures; whatever the mix, the invariants hold (issue 29):

- no task the state file does not know of: for each job, the simulator made at most as many
  tasks as the job's ledger counts submits that may have made one (nothing submitted twice);
- each task polled only with the key of the account that made it, and recorded under it;
- no account over its in-flight cap at the provider; a revoked key makes no task after."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

import pytest

from batchgen import store as st
from batchgen.runner import execute
from batchgen.simulator import Simulator
from batchgen.simulator.stats import canonical
from tests.enginekit import KEY, SCALE, options, prepare_state
from tests.test_accounts_pool import (
    KEY_A,
    KEY_B,
    accounts_file,
    jobs,
    polled_only_by_their_maker,
    recorded_accounts,
)


def ledger_of(state: Path) -> dict[str, tuple[str, int, str]]:
    """job body (canonical) -> (job id, submits that may have made a task, state)."""
    db = sqlite3.connect(state)
    try:
        rows = db.execute(
            "SELECT j.id, j.body, j.state, (SELECT COUNT(*) FROM attempts a WHERE a.job_seq=j.seq)"
            " FROM jobs j"
        ).fetchall()
    finally:
        db.close()
    return {canonical(json.loads(body)): (job_id, n, state) for job_id, body, state, n in rows}


@pytest.mark.parametrize("seed", [21, 22, 23, 29, 37])
async def test_mixed_faults_over_two_accounts_keep_the_invariants(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    rng = random.Random(seed)
    caps = {KEY_A: rng.randint(2, 4), KEY_B: rng.randint(2, 4)}
    revoked = rng.choice([KEY_A, KEY_B, None])
    faults = {
        "p_5xx": rng.choice([0.0, 0.05, 0.1]),
        "p_429": rng.choice([0.0, 0.03]),
        "p_transient": rng.choice([0.0, 0.15]),
        "p_502_after_create": rng.choice([0.0, 0.05]),
    }
    state = prepare_state(tmp_path, jobs(14))
    path = accounts_file(tmp_path, monkeypatch)
    sim_kw = {"api_keys": frozenset({KEY}), "time_scale": SCALE, "seed": seed}
    async with Simulator(**sim_kw, **faults) as sim:
        sim.keys.add(KEY_A, label="alpha", max_in_flight=caps[KEY_A])
        sim.keys.add(KEY_B, label="beta", max_in_flight=caps[KEY_B])
        after = rng.randint(1, 3)
        if revoked is not None:
            sim.keys.revoke(revoked, rng.choice([401, 403]), after_submits=after)
        outcome = await execute(
            options(tmp_path, sim.base_url, api_key="", accounts_file=str(path), max_runtime_s=60)
        )
        polled_only_by_their_maker(sim)
        per_body = dict(sim.observer.bodies)
        owner = {t: sim.keys.accounts[k].label for t, k in sim.keys.owner.items()}
        accounts = dict(sim.keys.accounts)
    ledger = ledger_of(state)
    for body, made in per_body.items():
        job_id, attempts, _ = ledger[body]
        assert made <= attempts, (job_id, made, attempts)  # never a task it does not know of
    for task_id, account in recorded_accounts(state).items():
        assert owner[task_id] == account, task_id
    for key, account in accounts.items():
        assert account.max_in_flight_seen <= caps[key], account.label
        if key == revoked and account.revoked is not None:
            assert account.submits == after  # no task after the revocation
    states = {s for _, _, s in ledger.values()}
    assert states <= {st.DONE, st.FAILED, st.IN_FLIGHT, st.AMBIGUOUS, st.PENDING}, states
    if revoked is not None and accounts[revoked].revoked is not None:
        label = accounts[revoked].label
        assert outcome.exit_code == 3 and f"account {label}" in outcome.how, outcome
    for secret in (KEY_A, KEY_B):
        assert secret not in outcome.how + " ".join(outcome.messages)
