"""Every duration of a run follows its options (issue 18): a run against a faster server,
scaled by --time-scale (the sandbox) or by the poll options a user gives a scaled test server,
takes time in proportion, with no literal seconds hidden in callbacks or backoff.

Durations are compared as generous ratios against the same run without the fault, never as
absolute times (README: "Every duration follows the run's options")."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import pytest

from batchgen import store as st
from batchgen.runner import execute
from batchgen.settings import RunOptions
from batchgen.simulator import Simulator
from tests.enginekit import KEY, mixed_jobs, prepare_state, state_rows
from tests.faultkit import FakeApi

pytestmark = pytest.mark.timeout(120)

SCALE = 0.01


def sandbox_like(tmp: Path, base_url: str, how: str, **kw: Any) -> RunOptions:
    """`sandbox`: RunOptions' defaults scaled as --sandbox --time-scale does. `poll options`:
    a user pointing a plain run at a scaled server, giving only --poll-after/--poll-every
    (and the server's rate window); everything else is left to follow them."""
    if how == "sandbox":
        opts = RunOptions.from_flat(state_path=tmp / "out" / "batchgen.db", output_dir=tmp / "out")
        opts = opts.scaled(SCALE)
    else:
        opts = RunOptions.from_flat(
            state_path=tmp / "out" / "batchgen.db",
            output_dir=tmp / "out",
            poll_after_s=60 * SCALE,
            poll_every_s=5 * SCALE,
            rate_period_s=60 * SCALE,
        )
    return opts.replace(**{"base_url": base_url, "api_key": KEY, "seed": 11, **kw})


def api_requests(stats: dict[str, Any]) -> int:
    return sum(sum(stats["requests"].get(ep, {}).values()) for ep in ("submit", "status"))


async def timed_run(opts: RunOptions, limit: float | None = None):
    start = time.monotonic()
    outcome = await asyncio.wait_for(execute(opts), limit)
    return outcome, time.monotonic() - start


@pytest.mark.parametrize("how", ["sandbox", "poll options"])
async def test_a_scaled_callback_run_with_early_and_duplicate_deliveries(
    tmp_path: Path, how: str
) -> None:
    """120 jobs; a tenth of the callbacks come before the status shows the end, half are
    delivered twice (the provider's retry, 30 s scaled later). The run takes about as long as
    polling the same jobs, at no more than 2.2 API requests per job."""
    n = 120
    sim_kw: dict[str, Any] = {
        "api_keys": frozenset({KEY}),
        "time_scale": SCALE,
        "seed": 9,
        "callback_timeout_s": 500,  # 5 s to answer: loaded machines
    }
    jobs = mixed_jobs(n)
    (tmp_path / "poll").mkdir()
    prepare_state(tmp_path / "poll", jobs)
    async with Simulator(**sim_kw) as sim:
        polled, poll_s = await timed_run(sandbox_like(tmp_path / "poll", sim.base_url, how))
    assert polled.exit_code == 0, polled

    (tmp_path / "cb").mkdir()
    state = prepare_state(tmp_path / "cb", jobs)
    faults = {"p_callback_early": 0.1, "p_callback_duplicate": 0.5}
    async with Simulator(**sim_kw, **faults) as sim:
        opts = sandbox_like(tmp_path / "cb", sim.base_url, how, callback_listen=("127.0.0.1", 0))
        # Before the fix, an early callback's task waited 30 s (unscaled) for its fallback poll.
        outcome, cb_s = await timed_run(opts, limit=max(20.0, 10 * poll_s))
        stats = sim.stats()
    assert outcome.exit_code == 0, outcome
    assert all(r["state"] == st.DONE for r in state_rows(state))
    assert stats["faults_fired"].get("p_callback_early", 0) > 0
    assert api_requests(stats) / n <= 2.2, stats["requests"]
    assert cb_s <= 2.0 * poll_s + 1.0, (cb_s, poll_s)


@pytest.mark.parametrize("how", ["sandbox", "poll options"])
async def test_backoff_follows_the_run_pace(tmp_path: Path, how: str) -> None:
    """A load balancer's 503 HTML page on 30 % of status polls: 6 short jobs take about as
    long as without it. Before, backoff started at 1 s whatever the poll schedule (22 s for
    jobs that took under 1 s), or at 5 % of 1 s in the sandbox."""
    times: dict[bool, float] = {}
    for faulty in (False, True):
        tmp = tmp_path / str(faulty)
        tmp.mkdir()
        state = prepare_state(tmp, mixed_jobs(6))
        async with FakeApi(polls_to_success=4) as api:
            dice = random.Random(5)
            if faulty:
                api.hooks["status"] = lambda hit, d=dice: "http503" if d.random() < 0.3 else None
            outcome, times[faulty] = await timed_run(sandbox_like(tmp, api.base_url, how))
            errors = api.count("status", "http503")
        assert outcome.exit_code == 0, outcome
        assert all(r["state"] == st.DONE for r in state_rows(state))
        assert (errors > 0) == faulty
    assert times[True] <= 3.0 * times[False] + 0.5, times


def _parsed(tmp: Path, *argv: str) -> RunOptions:
    from batchgen.cli import build_parser
    from batchgen.commands.common import options_from_args

    args = build_parser().parse_args(["run", "m.yaml", *argv])
    return options_from_args(
        args, state_path=tmp / "s.db", output_dir=tmp, model="kling-2-1", filename_template="x"
    ).paced()


def test_the_outage_window_and_poll_backoff_cap_follow_the_poll_schedule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, --status-outage (30 min) and --poll-backoff-cap (5 min) stayed in real minutes
    against a test server scaled with --poll-after: an outage there took half an hour to end
    the run."""
    monkeypatch.setenv("APIXO_API_KEY", KEY)
    default = _parsed(tmp_path)
    assert (default.status_outage_s, default.poll_backoff_cap_s) == (1800.0, 300.0)
    quick = _parsed(tmp_path, "--poll-after", "0.6", "--poll-every", "0.05")
    assert quick.status_outage_s == pytest.approx(18.0)
    assert quick.poll_backoff_cap_s == pytest.approx(3.0)
    sandbox = (
        RunOptions.from_flat(state_path=tmp_path / "s.db", output_dir=tmp_path)
        .scaled(SCALE)
        .paced()
    )
    assert sandbox.status_outage_s == pytest.approx(1800.0 * SCALE)
    assert sandbox.poll_backoff_cap_s == pytest.approx(300.0 * SCALE)
    given = _parsed(
        tmp_path, "--poll-after", "0.6", "--status-outage", "90", "--poll-backoff-cap", "7"
    )
    assert (given.status_outage_s, given.poll_backoff_cap_s) == (90.0, 7.0)
    never = _parsed(tmp_path, "--poll-after", "0.6", "--status-outage", "0")
    assert never.status_outage_s == 0  # 0: keep asking for ever (the engine reads None)
