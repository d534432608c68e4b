"""Money's pure parts and the ledger: cap arithmetic, prices, the submit gate, the resubmit
policy, and the state file's migration to the ledger."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from batchgen import store as st
from batchgen.money import ResubmitPolicy, budget, recorded_settings, should_resubmit
from batchgen.money.prices import MICROS, PriceBook, parse_key, price_key, to_micros, usd
from batchgen.money.pricing import SubmitGate
from batchgen.money.spending import OVER_CAP, Spending

DATA = Path(__file__).parent / "data"


def test_money_is_exact_micro_dollars() -> None:
    assert to_micros("74.8700") == 74_870_000
    assert to_micros(0.1) + to_micros(0.2) == to_micros("0.3")  # no float drift
    assert sum([to_micros("0.01")] * 100_000) == 1_000 * MICROS
    for bad in ("-1", "NaN", "inf", "lots", True):
        with pytest.raises(ValueError):
            to_micros(bad)
    assert usd(1_250_000) == "$1.25" and usd(37_500) == "$0.0375" and usd(0) == "$0.00"


def test_the_cap_admits_exactly_what_fits() -> None:
    cap = 10 * MICROS
    assert budget.fits(9 * MICROS, MICROS, cap)  # lands exactly on the cap
    assert not budget.fits(9 * MICROS + 1, MICROS, cap)
    assert budget.fits(10**12, MICROS, None)
    assert budget.affordable([3, 3, 3, 1], 7) == 2  # in order: the 4th does not jump the queue


def test_refunds_are_credited_only_when_refunds_alone_explain_the_balance() -> None:
    # charged 3.00 since the last read, the balance dropped 2.00: a 1.00 refund explains it
    assert budget.refunds_seen(3_000_000, 2_000_000, [1_000_000, 500_000]) == [0]
    # a surplus larger than every refundable price together is a top-up: nothing credited
    assert budget.refunds_seen(3_000_000, -100_000_000, [1_000_000]) == []
    assert budget.refunds_seen(3_000_000, 3_000_000, [1_000_000]) == []


def test_prices_come_from_the_model_spec_then_overrides_then_learning() -> None:
    key = price_key("kling-2-1", "pro-image-to-video", 10)
    assert key == "kling-2-1/pro-image-to-video/10s" == parse_key("pro-image-to-video:10")
    book = PriceBook()
    assert book.price(key) == 900_000 and book.source(key) == "table"
    assert book.price(price_key("kling-2-5-turbo-pro", "text-to-video", 5)) == 350_000
    book.overrides[key] = 800_000
    assert book.price(key) == 800_000 and book.source(key) == "manifest"
    book.learned[key] = 950_000
    assert book.price(key) == 950_000 and book.source(key) == "learned"
    # an unknown class is priced at the dearest known, never at nothing
    assert book.price(price_key("kling-2-1", "future-mode", 5)) >= 2 * MICROS
    with pytest.raises(ValueError):
        parse_key("pro-image-to-video")


def test_resubmit_policy_never_touches_content_prompt_or_image_codes() -> None:
    policy = ResubmitPolicy()
    for code in ("PROCESSING_TIMEOUT", "MODEL_UNAVAILABLE", "GENERATION_FAILED"):
        assert should_resubmit(code, 0, policy) and should_resubmit(code, 1, policy)
        assert not should_resubmit(code, 2, policy)
    for code in ("CONTENT_VIOLATION", "NSFW_DETECTED", "PROMPT_TOO_LONG", "INVALID_IMAGE_URL",
                 "INSUFFICIENT_CREDITS", "SensitiveContent", None):  # fmt: skip
        assert not should_resubmit(code, 0, policy)
    assert not should_resubmit("PROCESSING_TIMEOUT", 0, ResubmitPolicy(limit=0))


async def test_an_exclusive_turn_waits_for_shared_ones_and_holds_back_new_ones() -> None:
    gate = SubmitGate()
    log: list[str] = []
    first = asyncio.Event()

    async def shared(name: str, hold: asyncio.Event | None = None) -> None:
        async with gate.shared():
            log.append(f"{name}+")
            if hold is not None:
                await hold.wait()
            log.append(f"{name}-")

    async def alone() -> None:
        async with gate.exclusive():
            log.append("X+")
            assert gate.shared_now == 0
            await asyncio.sleep(0)
            log.append("X-")

    a = asyncio.create_task(shared("a", first))
    await asyncio.sleep(0)
    x = asyncio.create_task(alone())
    await asyncio.sleep(0)
    b = asyncio.create_task(shared("b"))  # comes after the exclusive turn asked
    await asyncio.sleep(0)
    first.set()
    await asyncio.gather(a, x, b)
    assert log == ["a+", "a-", "X+", "X-", "b+", "b-"]


def _store(tmp_path: Path, n: int = 3) -> st.Store:
    store = st.Store(tmp_path / "b.db")
    body = {"input": {"mode": "pro-image-to-video", "prompt": "p", "duration": 10}}
    store.jobs.sync([(f"j{i}", "kling-2-1", body) for i in range(n)])
    return store


def test_a_reservation_is_written_with_the_intent_and_counts_until_released(tmp_path) -> None:
    store = _store(tmp_path)
    spending = Spending(store, cap=2 * 900_000)
    rows = list(store.jobs.in_state(st.PENDING))
    assert spending.reserve(rows[0]) == 1 and spending.reserve(rows[1]) == 1
    assert spending.reserve(rows[2]) == OVER_CAP and "spend cap reached" in spending.stop_message
    assert store.jobs.get("j2").state == st.PENDING  # nothing recorded for it
    # A restart (SIGKILL now) sees both reservations: nothing more fits.
    again = Spending(st.Store(tmp_path / "b.db"), cap=2 * 900_000)
    assert again.total == 1_800_000 and again.reserve(rows[2]) == OVER_CAP
    spending.release(rows[0].seq)  # the answer proved no task was made
    assert store.ledger.spent() == 900_000
    assert Spending(store, cap=2 * 900_000).total == 900_000


def test_the_cap_and_prices_are_recorded_for_later_runs(tmp_path) -> None:
    store = _store(tmp_path)
    assert recorded_settings(store, 5 * MICROS, {"k/m/5s": 1}) == (5 * MICROS, {"k/m/5s": 1})
    assert recorded_settings(store, None, {}) == (5 * MICROS, {"k/m/5s": 1})  # cron rerun
    assert recorded_settings(store, 9 * MICROS, {})[0] == 9 * MICROS  # raised
    assert recorded_settings(store, -1, {})[0] is None  # --max-spend none
    assert recorded_settings(store, None, {})[0] is None


def test_an_older_state_file_gets_the_ledger_with_what_it_already_spent(tmp_path) -> None:
    path = tmp_path / "batchgen.db"
    db = sqlite3.connect(path)
    db.executescript((DATA / "state-v1.sql").read_text(encoding="utf-8"))
    db.close()
    reader = st.Store(path, readonly=True)  # status and report read it as it is
    assert reader.ledger.spent() == 0 and reader.ledger.all_attempts() == {}
    reader.close()
    store = st.Store(path)
    assert store.get_meta("schema_version") == str(st.SCHEMA_VERSION)
    with_task = [r for s in st.STATES for r in store.jobs.in_state(s) if r.task_id is not None]
    history = store.ledger.all_attempts()
    assert with_task and {r.seq for r in with_task} <= set(history)
    flying = store.jobs.get("job-2")
    assert flying is not None
    [attempt] = history[flying.seq]
    assert (attempt.n, attempt.outcome, attempt.task_id) == (1, "sent", "task_v1_0003")
    assert attempt.price_micros == 250_000  # standard 5 s, from the table
    assert store.ledger.spent() == sum(a.price_micros for rows in history.values() for a in rows)
    store.close()
    again = st.Store(path)  # idempotent
    assert again.ledger.all_attempts() == history


BUDGET_MANIFEST = """\
version: 1
name: b
budget: {max_spend: "1.5", prices: {"pro-image-to-video:5": 0.5}, yes: true}
jobs:
  - {id: a, mode: master-text-to-video, prompt: x, duration: 5, aspect_ratio: "16:9"}
  - {id: b, mode: pro-image-to-video, prompt: y, duration: 5, image_url: "https://e.com/a.jpg"}
  - {id: c, mode: pro-image-to-video, prompt: z, duration: 10, image_url: "https://e.com/a.jpg"}
"""


def test_validate_prints_the_estimated_cost_by_model_and_mode(tmp_path, capsys) -> None:
    from batchgen.cli import main

    path = tmp_path / "b.yaml"
    path.write_text(BUDGET_MANIFEST, encoding="utf-8")
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "estimated cost: $2.40" in out  # 1.00 + 0.50 (the manifest's) + 0.90 (the table)
    assert "kling-2-1 pro-image-to-video: 2 jobs, $1.40" in out
    assert "kling-2-1 master-text-to-video: 1 job, $1.00" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(BUDGET_MANIFEST.replace("yes: true", "yes: maybe"), encoding="utf-8")
    assert main(["validate", str(bad)]) == 2
    assert "budget.yes" in capsys.readouterr().err


def test_a_bad_price_name_in_the_manifest_stops_run_before_sending(tmp_path, capsys) -> None:
    from batchgen.cli import main

    path = tmp_path / "b.yaml"
    path.write_text(BUDGET_MANIFEST.replace("pro-image-to-video:5", "pro"), encoding="utf-8")
    assert main(["run", str(path), "--sandbox", "--output", str(tmp_path / "o")]) == 2
    assert "budget.prices" in capsys.readouterr().err


def test_a_budget_note_comes_first_and_keeps_the_note_it_covers(tmp_path) -> None:
    """Found by tests/test_hazards.py (seed 20261208): a job put back to pending by a
    transient resubmit and then held by the spend cap kept only its resubmit note, so
    nothing said why it was not submitted. The cap's reason now comes first; the resubmit
    note is kept after it and comes back when a new run clears the budget's notes."""
    from batchgen import store as st

    store = st.Store(tmp_path / "s.db")
    body = {"input": {"mode": "master-text-to-video", "prompt": "p"}}
    store.jobs.sync([("a", "kling-2-1", body), ("b", "kling-2-1", {**body, "x": 1})])
    store.db.execute("UPDATE jobs SET note='resubmitted after GENERATION_FAILED' WHERE id='a'")
    store.ledger.note_pending("spend cap reached")
    notes = dict(store.db.execute("SELECT id, note FROM jobs"))
    assert notes["a"] == (
        "not submitted: spend cap reached | earlier: resubmitted after GENERATION_FAILED"
    )
    assert notes["b"] == "not submitted: spend cap reached"
    store.ledger.note_pending("spend cap reached again")  # a later moment of the same run
    notes = dict(store.db.execute("SELECT id, note FROM jobs"))
    assert notes["a"].startswith("not submitted: spend cap reached again | earlier: resub")
    store.ledger.clear_budget_notes()
    notes = dict(store.db.execute("SELECT id, note FROM jobs"))
    assert notes == {"a": "resubmitted after GENERATION_FAILED", "b": None}
    store.close()
