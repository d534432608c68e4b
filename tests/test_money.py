"""Money against the simulator: learned prices, transient resubmits, a content violation sent
once, 402 halfway, the balance before the run, and what balance reads cost per job."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import pytest

from batchgen import money
from batchgen import store as st
from batchgen.engine import EXIT_ACCOUNT, EXIT_BUDGET
from batchgen.money.prices import MICROS, PriceBook
from batchgen.runner import execute
from batchgen.simulator import Simulator
from batchgen.store import ledger
from batchgen.ui import report
from batchgen.ui.gallery import render_gallery
from tests.enginekit import KEY, SCALE, body, mixed_jobs, options, prepare_state, state_rows


def sim_config(**kw):
    return {"api_keys": frozenset({KEY}), "time_scale": SCALE, "seed": 3, **kw}


def attempts_of(state: Path) -> dict[str, list[ledger.Attempt]]:
    store = st.Store(state, readonly=True)
    try:
        ids = dict(store.db.execute("SELECT seq, id FROM jobs"))
        return {ids[seq]: rows for seq, rows in store.ledger.all_attempts().items()}
    finally:
        store.close()


async def test_learned_prices_equal_the_simulators_and_win_over_the_table(
    tmp_path: Path, caplog
) -> None:
    state = prepare_state(tmp_path, mixed_jobs(16))
    prices = "standard-image-to-video:5=0.31,pro-image-to-video:10=0.95"
    caplog.set_level(logging.INFO, logger="batchgen")
    async with Simulator(**sim_config(prices=prices)) as sim:
        outcome = await execute(options(tmp_path, sim.base_url))
        balance_reads = sum(sim.stats()["requests"]["balance"].values())
        charged = sim.billing.charged
    assert outcome.exit_code == 0
    store = st.Store(state, readonly=True)
    try:
        learned = store.ledger.learned_prices()
        spent = store.ledger.spent()
        shown = money.status_info(store)  # what `batchgen status` shows
    finally:
        store.close()
    # status --json: money as numbers of USD (issue 26 friction 8)
    assert shown["spent_usd"] == spent / MICROS and shown["estimate_left_usd"] == 0
    assert shown["learned_prices_usd"]["kling-2-1/standard-image-to-video/5s"] == 0.31
    assert shown["balance_usd"] == pytest.approx(float(1_000_000 - charged), abs=1e-6)
    classes = {f"kling-2-1/{m}/{d}s" for m in {b["input"]["mode"] for _, _, b in mixed_jobs(16)}
               for d in (5, 10)}  # fmt: skip
    assert set(learned) == classes
    for key, micros in learned.items():
        _, mode, duration = key.split("/")
        assert micros == int(sim.billing.prices[("kling-2-1", mode, int(duration[:-1]))] * MICROS)
    assert learned["kling-2-1/standard-image-to-video/5s"] == 310_000
    assert PriceBook().table("kling-2-1/standard-image-to-video/5s") == 250_000
    assert "learned from the balance: $0.31, not $0.25 as listed" in caplog.text
    assert spent == int(charged * MICROS)  # the ledger is the provider's bill, to the cent
    assert balance_reads == 2 * len(classes) + 2  # around each learning submit, start, end


async def test_transient_failures_are_resubmitted_up_to_the_limit(tmp_path: Path) -> None:
    jobs = [
        ("once", "kling-2-1", body(1, prompt="a [sim:transient:1]")),
        ("twice", "kling-2-1", body(2, prompt="b [sim:transient:2]")),
        ("always", "kling-2-1", body(3, prompt="c [sim:transient]")),
        ("content", "kling-2-1", body(4, prompt="d [sim:content_violation]")),
        ("plain", "kling-2-1", body(5, prompt="e")),
    ]
    state = prepare_state(tmp_path, jobs)
    async with Simulator(**sim_config()) as sim:
        outcome = await execute(options(tmp_path, sim.base_url))
        per_body = sim.stats()["submits_per_body"]
    assert outcome.exit_code == 1
    rows = {r["id"]: r for r in state_rows(state)}
    assert {k: r["state"] for k, r in rows.items()} == {
        "once": st.DONE,
        "twice": st.DONE,
        "always": st.FAILED,
        "content": st.FAILED,
        "plain": st.DONE,
    }
    history = attempts_of(state)
    transient = {"PROCESSING_TIMEOUT", "MODEL_UNAVAILABLE", "GENERATION_FAILED"}
    assert [a.outcome for a in history["once"]] == ["resubmitted", "succeeded"]
    assert [a.outcome for a in history["twice"]] == ["resubmitted", "resubmitted", "succeeded"]
    assert [a.outcome for a in history["always"]] == ["resubmitted", "resubmitted", "failed"]
    assert all(a.fail_code in transient for a in history["always"])
    assert rows["always"]["fail_code"] in transient
    assert len({a.task_id for a in history["twice"]}) == 3  # three tasks, each paid
    # A content violation is submitted once and never again on its own.
    assert [(a.outcome, a.fail_code) for a in history["content"]] == [
        ("failed", "CONTENT_VIOLATION")
    ]
    assert rows["content"]["attempts"] == 1
    assert per_body["max_submits_of_one_body"] == 3
    # The report and the gallery show each job's attempts with their fail codes.
    store = st.Store(state, readonly=True)
    try:
        recs = {r["id"]: r for r in report.records(store)}
    finally:
        store.close()
    codes = [a["fail_code"] for a in recs["twice"]["attempts"]]
    assert codes[:2] == [a.fail_code for a in history["twice"][:2]] and codes[2] is None
    page = render_gallery(recs.values(), title="t", output_dir=tmp_path / "out")
    assert f"3: {codes[0]}, {codes[1]}, succeeded" in page
    assert len(recs["plain"]["attempts"]) == 1


async def test_resubmits_can_be_turned_off(tmp_path: Path) -> None:
    state = prepare_state(tmp_path, [("once", "kling-2-1", body(1, prompt="a [sim:transient:1]"))])
    async with Simulator(**sim_config()) as sim:
        outcome = await execute(options(tmp_path, sim.base_url, max_resubmits=0))
    assert outcome.exit_code == 1
    assert [a.outcome for a in attempts_of(state)["once"]] == ["failed"]


async def test_402_halfway_stops_submits_and_collects_the_rest(tmp_path: Path) -> None:
    state = prepare_state(tmp_path, mixed_jobs(12))
    async with Simulator(**sim_config()) as sim:
        create = sim.create_task

        def spender(body_, now, *more):  # another user of the key empties it after 5 tasks
            task = create(body_, now, *more)
            if len(sim.task_ids()) == 5:
                sim.billing.balance = Decimal("0.10")
            return task

        sim.create_task = spender  # type: ignore[method-assign]
        outcome = await execute(options(tmp_path, sim.base_url))
        refused = sim.billing.payment_refused
    assert outcome.exit_code == EXIT_ACCOUNT
    assert "balance $0.10" in outcome.how
    assert refused >= 1
    rows = state_rows(state)
    assert sum(r["state"] == st.DONE for r in rows) == 5  # every task created was collected
    assert sum(r["state"] == st.PENDING for r in rows) == 7  # and nothing else failed
    assert sum(len(a) for a in attempts_of(state).values()) == 5  # a 402 costs nothing


async def test_an_estimate_above_the_balance_submits_nothing_without_yes(tmp_path: Path) -> None:
    state = prepare_state(tmp_path, mixed_jobs(8))
    async with Simulator(**sim_config(balance=2.0)) as sim:
        outcome = await execute(options(tmp_path, sim.base_url))
        assert sim.billing.charged == 0
        assert outcome.exit_code == EXIT_BUDGET
        assert "exceeds the balance ($2.00): nothing submitted" in outcome.how
        assert "--yes" in outcome.how
        outcome = await execute(options(tmp_path, sim.base_url, spend_past_balance=True))
        charged, refused = sim.billing.charged, sim.billing.payment_refused
    assert outcome.exit_code == EXIT_BUDGET  # up to what the balance allows, never into 402
    assert 0 < charged <= 2 and refused == 0
    rows = state_rows(state)
    assert sum(r["state"] == st.DONE for r in rows) >= 2
    assert not [r for r in rows if r["state"] == st.FAILED]


async def test_balance_reads_per_job_at_1000_jobs(tmp_path: Path, capsys) -> None:
    """The figure for the README: extra API requests per job that balance reads cost."""
    jobs = mixed_jobs(1000)  # all eight price classes
    prepare_state(tmp_path, jobs)
    async with Simulator(**sim_config(time_scale=0.002)) as sim:
        opts = options(tmp_path, sim.base_url, max_spend_micros=10_000 * MICROS)
        outcome = await execute(opts)
        requests = sim.stats()["requests"]
    assert outcome.exit_code == 0
    reads = sum(requests["balance"].values())
    per_job = reads / 1000
    assert per_job < 0.05
    with capsys.disabled():
        print(f"\nbalance reads: {reads} for 1,000 jobs = {per_job:.4f} extra requests per job")


async def test_refunds_seen_in_the_balance_free_room_under_the_cap(tmp_path: Path) -> None:
    """The simulator refunds failed tasks: the run credits what the balance shows (and only
    that), so the spend counted equals what the account really paid, and a rerun under the
    same cap submits what the refunds made room for."""
    jobs = [
        (f"j{i}", "kling-2-1", body(i, prompt=f"p{i}" + (" [sim:content_violation]" * (i < 4))))
        for i in range(10)
    ]  # 10 x $0.25 at the simulator's price: $2.50; four of them fail and are refunded
    state = prepare_state(tmp_path, jobs)
    cap = 2 * MICROS
    async with Simulator(**sim_config(refund_failed=True)) as sim:
        first = await execute(options(tmp_path, sim.base_url, max_spend_micros=cap))
        assert first.exit_code == EXIT_BUDGET  # 8 fit under $2.00 at first
        store = st.Store(state, readonly=True)
        try:
            spent = store.ledger.spent()
        finally:
            store.close()
        assert spent == int((sim.billing.charged - sim.billing.refunded) * MICROS) == MICROS
        again = await execute(options(tmp_path, sim.base_url, max_spend_micros=cap))
        paid = sim.billing.charged - sim.billing.refunded
    assert again.exit_code == 1  # the four content violations; nothing left pending
    rows = state_rows(state)
    assert sum(r["state"] == st.DONE for r in rows) == 6
    assert not [r for r in rows if r["state"] == st.PENDING]
    assert paid == Decimal("1.50") and float(sim.billing.charged) <= 2.5
