"""`batchgen resume STATE` continues against the API the batch was created on, with the run's
recorded settings, unless the command line says otherwise (issue 20, item 8)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest

from batchgen import store as st
from batchgen.cli import build_parser
from batchgen.commands import recorded
from batchgen.simulator import Simulator
from tests.enginekit import KEY, SCALE, pace_args
from tests.opskit import counts, finish, spawn

MANIFEST = """\
defaults:
  mode: master-text-to-video
  input:
    duration: 5
    aspect_ratio: "16:9"
jobs:
""" + "".join(f"  - id: clip-{i:02d}\n    prompt: a calm sea at dawn, take {i}\n" for i in range(6))

# A stale $APIXO_BASE_URL that leads nowhere: what resume used before it read the record.
DEAD_API = "http://127.0.0.1:9/api/v1"


async def _cli(argv: list[str]) -> tuple[int, str, str]:
    old = os.environ.get("APIXO_BASE_URL")
    os.environ["APIXO_BASE_URL"] = DEAD_API
    try:
        proc = await spawn([sys.executable, "-m", "batchgen", *argv])
    finally:
        if old is None:
            del os.environ["APIXO_BASE_URL"]
        else:
            os.environ["APIXO_BASE_URL"] = old
    return await finish(proc)


async def test_resume_without_base_url_reaches_the_recorded_server(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(MANIFEST, encoding="utf-8")
    out = tmp_path / "out"
    state = out / "batchgen.db"
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=7) as sim:
        assert not sim.base_url.startswith("http://127.0.0.1:9/")
        # The first run stops at once: every task created, none collected.
        code, _, err = await _cli(
            ["run", str(manifest), "--output", str(out), "--no-wait", *pace_args(sim.base_url)]
        )
        assert code == 75, err
        assert counts(state).get(st.IN_FLIGHT) == 6
        submits = sim.stats()["submits_per_body"]

        # Exactly as the CLI suggests after a stop: no --base-url, no pace flags.
        code, _, err = await _cli(["resume", str(state), "--max-runtime", "30"])
        assert code == 0, err
        assert f"API {sim.base_url} (as recorded)" in err, err
        assert {k: v for k, v in counts(state).items() if v} == {st.DONE: 6}
        assert sim.stats()["submits_per_body"] == submits  # nothing submitted twice
    assert len(list(out.glob("*.mp4"))) == 6


def _resume_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["resume", "s.db", *argv])


def test_flags_given_on_the_command_line_win_over_the_record() -> None:
    saved = {
        "base_url": "http://10.1.2.3:8080/api/v1",
        "rate_limit": (20, 60.0),
        "poll_every": 2.0,
        "max_in_flight": 7,
        "sandbox": False,
    }
    args = _resume_args("--poll-every", "9", "--max-in-flight", "3")
    taken = recorded.fill(args, saved)
    assert args.base_url == saved["base_url"]
    assert args.rate_limit == (20, 60.0)
    assert (args.poll_every, args.max_in_flight) == (9.0, 3)
    assert args.poll_after == 60.0  # not recorded: the usual default
    assert set(taken) == {"base_url", "rate_limit"}

    args = _resume_args("--base-url", "http://elsewhere:1/api/v1")
    recorded.fill(args, saved)
    assert args.base_url == "http://elsewhere:1/api/v1"


@pytest.mark.parametrize("argv", [[], ["--max-runtime", "1m"]])
def test_a_recorded_sandbox_resumes_in_the_sandbox(argv: list[str]) -> None:
    args = _resume_args(*argv)
    recorded.fill(args, {"sandbox": True, "time_scale": 0.05, "base_url": None})
    assert args.sandbox is True and args.base_url is None and args.time_scale == 0.05
    args = _resume_args("--base-url", "http://h:1/api/v1")
    recorded.fill(args, {"sandbox": True, "time_scale": 0.05})
    assert not args.sandbox and args.base_url == "http://h:1/api/v1"


def test_the_record_holds_no_secret(tmp_path: Path) -> None:
    store = st.Store(tmp_path / "s.db")
    args = build_parser().parse_args(
        ["run", "m.yaml", "--api-key-file", "/secret/key", "--callback-listen", "127.0.0.1:0"]
    )
    recorded.record(store, args, "https://api.example/api/v1")
    text = store.get_meta(recorded.META_KEY) or ""
    store.close()
    assert "/secret/key" not in text and "api_key" not in text
    assert "https://api.example/api/v1" in text


# What a run does not hand to the next: the key, what to show, and controls of one invocation.
PER_INVOCATION = {
    "api_key_file",
    "accounts",  # several accounts: their file leads to keys, so resume is given it again
    "command",
    "gallery",
    "handler",
    "log_format",
    "max_runtime",
    "limit",  # a partial run: this invocation only
    "only",
    "max_spend",  # the cap and prices persist in the state file itself (money.recorded_settings)
    "price",
    "yes",  # consent to spend past the balance: given each time
    "no_wait",
    "output",
    "progress_every",
    "quiet",
    "resubmit_ambiguous",
    "seed",
    "state",
    # notifications (issue 30): their URLs often hold tokens, so never stored; given each time
    "notify",
    "notify_json",
    "notify_on",
    "ping",
    "metrics_file",
    # the account database (issue 29): a postgresql:// URL may hold a password, so never
    # stored; the clock offset is for tests
    "account_db",
    "account_clock_offset",
    # issue 26: a proxy URL may hold a password, so never stored; -v is per invocation
    "proxy",
    "verbose",
}


def test_every_setting_of_a_run_is_recorded_or_named_per_invocation() -> None:
    """A new run option must be decided on: resumed as recorded, or left to each invocation.
    (`--rate-pause` was once forgotten, so a resumed run fell back to the default pauses.)"""
    run = set(vars(build_parser().parse_args(["run", "m.yaml"])))
    resume = set(vars(build_parser().parse_args(["resume", "s.db"])))
    shared = run & resume
    assert shared - PER_INVOCATION == set(recorded.RECORDED)
    assert "rate_pause" in recorded.RECORDED
