"""One run over several accounts (--accounts FILE), against the simulator serving two keys
with separate limits (simulator/keys.py): jobs spread over both, each task polled with its own
key, a key revoked mid-run stops only its account, the state file records who made what."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from batchgen import store as st
from batchgen.accounts.pool import AccountPool
from batchgen.engine import Engine
from batchgen.hooks import RunHooks
from batchgen.runner import execute
from batchgen.simulator import Simulator
from tests.enginekit import KEY, SCALE, body, options, prepare_state, state_rows

KEY_A = "sk-acct-alpha-0123456789"
KEY_B = "sk-acct-beta-9876543210"


def jobs(n: int) -> list[tuple[str, str, dict]]:
    return [
        (f"job-{i:03d}", "kling-2-1", body(i, "master-text-to-video", prompt=f"p {i}"))
        for i in range(1, n + 1)
    ]


def accounts_file(tmp: Path, monkeypatch: pytest.MonkeyPatch, **extra: str) -> Path:
    """alpha's key from a variable, beta's from a key file; `extra` adds lines per account."""
    monkeypatch.setenv("TEST_ALPHA_KEY", KEY_A)
    (tmp / "beta.key").write_text(KEY_B + "\n")
    path = tmp / "accounts.yaml"
    path.write_text(
        "accounts:\n"
        "  - name: alpha\n    key_env: TEST_ALPHA_KEY\n    max_in_flight: 3\n"
        + extra.get("alpha", "")
        + "  - name: beta\n    key_file: beta.key\n    max_in_flight: 3\n"
        + extra.get("beta", "")
    )
    return path


def two_keys(sim: Simulator, cap: int = 3) -> None:
    sim.keys.add(KEY_A, label="alpha", max_in_flight=cap)
    sim.keys.add(KEY_B, label="beta", max_in_flight=cap)


def recorded_accounts(state: Path) -> dict[str, str | None]:
    db = sqlite3.connect(state)
    try:
        return dict(db.execute("SELECT task_id, account FROM jobs WHERE task_id IS NOT NULL"))
    finally:
        db.close()


def polled_only_by_their_maker(sim: Simulator) -> None:
    owner = {t: sim.keys.accounts[k].label for t, k in sim.keys.owner.items()}
    for label, endpoint, task_id in sim.keys.log:
        if endpoint == "status" and task_id:
            assert owner.get(task_id) == label, (label, task_id)


async def test_two_accounts_share_the_jobs_and_each_task_is_polled_with_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = prepare_state(tmp_path, jobs(16))
    path = accounts_file(tmp_path, monkeypatch)
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=3) as sim:
        two_keys(sim)
        outcome = await execute(
            options(tmp_path, sim.base_url, api_key="", accounts_file=str(path))
        )
        polled_only_by_their_maker(sim)
        alpha, beta = sim.keys.accounts[KEY_A], sim.keys.accounts[KEY_B]
        made = {"alpha": set(sim.keys.made_by("alpha")), "beta": set(sim.keys.made_by("beta"))}
    assert outcome.exit_code == 0, outcome
    assert {r["state"] for r in state_rows(state)} == {st.DONE}
    assert made["alpha"] and made["beta"]  # spread over both
    assert alpha.max_in_flight_seen <= 3 and beta.max_in_flight_seen <= 3  # no account over
    recorded = recorded_accounts(state)
    assert {t for t, a in recorded.items() if a == "alpha"} == made["alpha"]
    assert {t for t, a in recorded.items() if a == "beta"} == made["beta"]
    assert any("account alpha" in m for m in outcome.messages)


@pytest.mark.parametrize("status", [401, 403])
async def test_a_key_revoked_mid_run_stops_only_its_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    state = prepare_state(tmp_path, jobs(16))
    path = accounts_file(tmp_path, monkeypatch)
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=4) as sim:
        two_keys(sim)
        sim.keys.revoke(KEY_A, status, after_submits=2)  # its second task's answer is its last
        outcome = await execute(
            options(tmp_path, sim.base_url, api_key="", accounts_file=str(path))
        )
        polled_only_by_their_maker(sim)
        assert sim.keys.accounts[KEY_A].submits == 2  # none after the revocation
        beta_made = set(sim.keys.made_by("beta"))
    rows = {r["task_id"]: r["state"] for r in state_rows(state) if r["task_id"]}
    recorded = recorded_accounts(state)
    # beta took every job alpha could not: all done but alpha's tasks, which only its key
    # may poll (they stay in flight for a run with a working key).
    assert {rows[t] for t in beta_made} == {st.DONE}
    left = {t for t, s in rows.items() if s != st.DONE}
    assert left and all(recorded[t] == "alpha" for t in left)
    assert {r["state"] for r in state_rows(state)} <= {st.DONE, st.IN_FLIGHT}
    assert outcome.exit_code == 3, outcome  # an account stopped: said, by name
    assert "account alpha" in outcome.how and KEY_A not in outcome.how
    assert KEY_A not in " ".join(outcome.messages)


async def test_each_account_keeps_its_max_spend_and_the_run_its_total(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """alpha may spend $2, the run $6 (a master 5 s clip is $1 in the table): alpha makes two
    tasks, beta the rest up to the total, and the run ends at the spend cap (exit 5)."""
    state = prepare_state(tmp_path, jobs(10))
    path = accounts_file(tmp_path, monkeypatch, alpha="    max_spend: 2\n")
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=6) as sim:
        two_keys(sim)
        opts = options(
            tmp_path, sim.base_url, api_key="", accounts_file=str(path), max_spend_micros=6_000_000
        )
        outcome = await execute(opts)
        made = {n: len(sim.keys.made_by(n)) for n in ("alpha", "beta")}
    store = st.Store(state, readonly=True)
    try:
        assert store.accounts.spent_by("alpha") <= 2_000_000
        assert store.ledger.spent() <= 6_000_000
    finally:
        store.close()
    assert made == {"alpha": 2, "beta": 4}, made
    assert outcome.exit_code == 5, outcome  # the spend cap
    assert any(
        m.startswith("account alpha:") and "its max_spend is reached" in m for m in outcome.messages
    )


async def test_an_empty_balance_stops_only_its_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """beta's balance is empty (402 on its first submit): alpha takes every job, and the run
    says beta stopped, by name (exit 3)."""
    state = prepare_state(tmp_path, jobs(8))
    path = accounts_file(tmp_path, monkeypatch)
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=8) as sim:
        sim.keys.add(KEY_A, label="alpha", max_in_flight=3)
        sim.keys.add(KEY_B, label="beta", max_in_flight=3, balance=0.0)
        outcome = await execute(
            options(tmp_path, sim.base_url, api_key="", accounts_file=str(path))
        )
        made = {n: len(sim.keys.made_by(n)) for n in ("alpha", "beta")}
    assert made == {"alpha": 8, "beta": 0}
    assert {r["state"] for r in state_rows(state)} == {st.DONE}
    assert outcome.exit_code == 3 and "account beta" in outcome.how, outcome


async def test_a_cron_run_takes_what_the_live_accounts_have_free_and_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--no-wait with beta stopped (402) and alpha's cap full: the run does not wait for a
    slot no task of it will free; it ends, the rest pending for the next run."""
    state = prepare_state(tmp_path, jobs(8))
    path = accounts_file(tmp_path, monkeypatch)
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=9) as sim:
        sim.keys.add(KEY_A, label="alpha", max_in_flight=3)
        sim.keys.add(KEY_B, label="beta", max_in_flight=3, balance=0.0)
        opts = options(
            tmp_path, sim.base_url, api_key="", accounts_file=str(path), no_wait=True,
            max_runtime_s=60,
        )  # fmt: skip
        outcome = await execute(opts)
    counts = {r["state"] for r in state_rows(state)}
    assert counts == {st.IN_FLIGHT, st.PENDING}, counts
    assert outcome.exit_code == 3 and "max-runtime" not in outcome.how, outcome


async def test_each_account_paces_with_its_own_rate_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file's rate_limit is each account's own window (N per --rate-limit's period when a
    bare number): alpha's client counts 5, beta's 50, and the run finishes with both."""
    state = prepare_state(tmp_path, jobs(8))
    path = accounts_file(
        tmp_path, monkeypatch, alpha="    rate_limit: 5\n", beta="    rate_limit: 50/1s\n"
    )
    seen: dict[str, tuple[int, float]] = {}

    def look(engine: Engine) -> None:
        pool = engine.context.pool
        assert isinstance(pool, AccountPool)
        for name, account in pool.accounts.items():
            limiter = account.client._limiter
            seen[name] = (limiter.limit, limiter.period)

    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=10) as sim:
        two_keys(sim)
        opts = options(tmp_path, sim.base_url, api_key="", accounts_file=str(path))
        outcome = await execute(opts, RunHooks(on_engine=look))
    assert seen == {"alpha": (5, opts.limits.rate_period_s), "beta": (50, 1.0)}
    assert outcome.exit_code == 0, outcome
    assert {r["state"] for r in state_rows(state)} == {st.DONE}
