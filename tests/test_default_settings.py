"""Issue 15 step 1: an empty command line gives exactly the run's default settings, so a
default written in argparse can never drift from the one in RunOptions (the one place the
run's defaults are written), and the Python API gets the same run as the CLI."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from batchgen.cli import build_parser
from batchgen.commands.common import options_from_args
from batchgen.settings import RunOptions

KEY = "sk-test-defaults"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APIXO_API_KEY", KEY)
    for var in ("APIXO_BASE_URL", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.lower(), raising=False)


def _parsed(argv: list[str], tmp: Path) -> RunOptions:
    args = build_parser().parse_args(argv)
    return options_from_args(
        args,
        state_path=tmp / "s.db",
        output_dir=tmp,
        model="kling-2-1",
        filename_template="{id}.mp4",
    )


def test_an_empty_command_line_gives_the_default_settings_exactly(tmp_path: Path) -> None:
    """(`resume` takes the settings its run recorded: tests/test_resume_recorded.py.)"""
    opts = _parsed(["run", "m.yaml"], tmp_path)
    assert opts == RunOptions.from_flat(
        state_path=tmp_path / "s.db", output_dir=tmp_path, api_key=KEY
    )
    # ... and the durations left to follow the poll schedule become the documented ones
    paced = opts.paced()
    assert (paced.stuck_after_s, paced.status_outage_s, paced.poll_backoff_cap_s) == (
        3600.0,
        1800.0,
        300.0,
    )
    assert (paced.backoff_base_s, paced.backoff_cap_s) == (1.0, 60.0)


def test_every_option_given_lands_in_its_setting(tmp_path: Path) -> None:
    """The other direction: options that are given are not lost on the way."""
    opts = _parsed(
        ["run", "m.yaml", "--max-in-flight", "7", "--poll-after", "3", "--poll-every", "0.5",
         "--status-outage", "90", "--poll-backoff-cap", "4", "--read-timeout", "12",
         "--no-proxy-env", "--rate-limit", "50/10s"],
        tmp_path,
    )  # fmt: skip
    default = RunOptions.from_flat(state_path=tmp_path / "s.db", output_dir=tmp_path, api_key=KEY)
    given, defaults = opts.flat(), default.flat()
    changed = {name for name in defaults if given[name] != defaults[name]}
    assert changed == {
        "max_in_flight", "poll_after_s", "poll_every_s", "status_outage_s",
        "poll_backoff_cap_s", "read_timeout_s", "proxy_env", "rate_limit", "rate_period_s",
    }  # fmt: skip


def test_settings_are_frozen_once_built(tmp_path: Path) -> None:
    """Nothing changes a run's settings after the CLI or the API built them: a new value
    means a new object (dataclasses.replace, paced, scaled)."""
    from batchgen.engine.config import engine_config

    opts = RunOptions.from_flat(state_path=tmp_path / "s.db", output_dir=tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.timing.poll_after_s = 1.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.timing = opts.timing  # type: ignore[misc]
    config = engine_config(opts)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.page_size = 1  # type: ignore[misc]
    assert (config.page_size, config.poll.poll_after, config.stuck_after_s) == (256, 60.0, 3600.0)
