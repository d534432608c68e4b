"""Issue 26 friction 8: money words that say what is true and what to do.

Without a cap the summary said `cap $0.00`; stopped by the balance it said `Raise it with
--max-spend` when the fix is to add funds; `status --json` gave money as strings ("$6.30")
and the balance's time as a Unix time beside ISO strings.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from batchgen import money
from batchgen import store as st
from batchgen.cli import main
from batchgen.engine import EXIT_BUDGET
from batchgen.runner import execute
from batchgen.simulator import Simulator
from tests.enginekit import KEY, SCALE, mixed_jobs, options, prepare_state

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def money_line(messages: list[str]) -> str:
    return next(m for m in messages if m.startswith("spent by this state file"))


async def test_a_stop_at_the_balance_says_add_funds_and_no_cap_is_shown(tmp_path: Path) -> None:
    prepare_state(tmp_path, mixed_jobs(8))
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=3, balance=2.0) as sim:
        first = await execute(options(tmp_path, sim.base_url))  # estimate > balance: none sent
        outcome = await execute(options(tmp_path, sim.base_url, spend_past_balance=True))
    assert first.exit_code == EXIT_BUDGET and "Add funds" in first.how
    assert "cap $0.00" not in money_line(first.messages), first.messages
    assert outcome.exit_code == EXIT_BUDGET
    assert "Add funds" in outcome.how and "--max-spend" not in outcome.how, outcome.how
    line = money_line(outcome.messages)
    assert "cap $" not in line, line  # no cap was given
    assert "limited by the balance to $" in line, line


async def test_without_a_cap_the_summary_shows_none(tmp_path: Path) -> None:
    prepare_state(tmp_path, mixed_jobs(3))
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=3) as sim:
        outcome = await execute(options(tmp_path, sim.base_url))
    assert outcome.exit_code == 0
    assert not [m for m in outcome.messages if "cap" in m], outcome.messages


def test_status_json_gives_money_as_usd_numbers_and_iso_times(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    manifest = Path(__file__).resolve().parents[1] / "manifests" / "example.yaml"
    assert main(["run", str(manifest), "--sandbox", "--output", str(out)]) == 0
    capsys.readouterr()
    assert main(["status", str(out / "batchgen.db"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["money"]
    for name in ("balance_usd", "spent_usd", "estimate_left_usd"):
        assert isinstance(info[name], int | float) and not isinstance(info[name], bool), info
    assert info["spent_usd"] > 0 and info["cap_usd"] is None
    assert all(isinstance(v, float) for v in info["learned_prices_usd"].values()), info
    assert ISO.match(info["balance_seen_at"]), info
    # the text form still shows dollars
    assert main(["status", str(out / "batchgen.db")]) == 0
    text = capsys.readouterr().out
    assert re.search(r"money: spent \$\d+\.\d\d", text), text
    store = st.Store(out / "batchgen.db", readonly=True)
    try:
        assert money.render_status(money.status_info(store))[0].startswith("money: spent $")
    finally:
        store.close()
