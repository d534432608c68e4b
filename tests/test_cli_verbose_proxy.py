"""Issue 26: `-v/--verbose` on every command, `--proxy URL` beside the environment's proxies,
one `--json` spelling, one DURATION word.

-v prints batchgen's debug log (each API request's method, path and answer), never a key or a
proxy's password. --proxy carries API calls and downloads through a proxy named on the command
line (the environment's variables were the only way); its credentials appear nowhere.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from batchgen import store as st
from batchgen.cli import build_parser, main
from batchgen.simulator import Simulator
from tests.enginekit import KEY, SCALE, pace_args
from tests.proxykit import ForwardProxy
from tests.test_cli_secrets import subparsers

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = str(ROOT / "manifests" / "example.yaml")
PASSWORD = "s3cret-pw-canary"


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_every_command_takes_verbose() -> None:
    for name, parser in subparsers(build_parser()).items():
        assert "-v" in parser._option_string_actions, name
        assert "--verbose" in parser._option_string_actions, name


def test_verbose_prints_the_debug_log_and_its_absence_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", EXAMPLE, "--sandbox", "-v"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"DEBUG POST /api/v1/generateTask/kling-2-1: HTTP 200", err), err
    assert main(["run", EXAMPLE, "--sandbox", "--output", "again"]) == 0
    assert "DEBUG" not in capsys.readouterr().err
    assert main(["models", "-v"]) == 0  # a command without a run takes it too


def test_json_is_the_one_spelling_and_the_old_ones_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", EXAMPLE, "--sandbox", "--json"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.startswith("{") for line in lines), lines
    assert main(["report", "output/demo/batchgen.db", "--json"]) == 0
    json_lines = capsys.readouterr().out
    assert main(["report", "output/demo/batchgen.db", "--format", "jsonl"]) == 0
    assert capsys.readouterr().out == json_lines
    assert main(["validate", EXAMPLE, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["jobs"] == 8 and summary["estimated_cost_usd"] == 6.3
    assert summary["output"] == "output/demo/{index:03d}-{id}.mp4"
    # Neither given: text, as before (the run's first line says where it writes).
    assert build_parser().parse_args(["run", "m.yaml"]).log_format == "text"
    assert build_parser().parse_args(["report", "s.db"]).format == "jsonl"
    for name, parser in subparsers(build_parser()).items():
        if name in ("run", "resume", "report", "status", "doctor", "balance", "models", "validate"):
            assert "--json" in parser._option_string_actions, name


def test_one_word_for_a_length_of_time() -> None:
    helps = {name: p.format_help() for name, p in subparsers(build_parser()).items()}
    assert not [name for name, text in helps.items() if "SECONDS" in text], helps["run"]
    assert "--poll-every DURATION" in helps["run"]


@pytest.mark.timeout(180)
async def test_proxy_option_carries_api_calls_and_downloads_and_its_password_shows_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Both names resolve only at the proxy: anything that reached the simulator went through
    it, as --proxy named it (no proxy variable is set)."""
    monkeypatch.setenv("APIXO_API_KEY", KEY)
    names = {"api.proxied.test": "127.0.0.1", "cdn.proxied.test": "127.0.0.1"}
    async with (
        Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=5) as sim,
        ForwardProxy(hosts=names, credentials=("alice", PASSWORD)) as proxy,
    ):
        port = sim.origin.rsplit(":", 1)[1]
        sim.origin = f"http://cdn.proxied.test:{port}"
        argv = [
            "run", EXAMPLE, "--output", str(tmp_path / "out"), "-v",
            *pace_args(f"http://api.proxied.test:{port}/api/v1"),
            "--proxy", f"http://alice:{PASSWORD}@localhost:{proxy.port}",
        ]  # fmt: skip
        code = await asyncio.to_thread(main, argv)
    printed = capfd.readouterr()
    assert code == 0, printed.err
    store = st.Store(tmp_path / "out" / "batchgen.db", readonly=True)
    try:
        assert store.jobs.counts().get(st.DONE) == 8
    finally:
        store.close()
    assert len(proxy.targets("POST")) == 8
    assert any(t.startswith(f"http://cdn.proxied.test:{port}/") for t in proxy.targets("GET"))
    assert PASSWORD not in printed.out + printed.err
    assert "DEBUG" in printed.err
    _nowhere(tmp_path, PASSWORD.encode())


def _nowhere(folder: Path, secret: bytes) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes(), path


def test_a_proxy_option_that_is_not_a_proxy_url_is_refused_without_echo(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for bad in ("socks5://u:pw-canary@h:1", "pw-canary", "ftp://h"):
        with pytest.raises(SystemExit) as caught:
            main(["validate", EXAMPLE, "--proxy", bad])
        assert caught.value.code == 2
        err = capsys.readouterr().err
        assert "pw-canary" not in err and "http:// or https://" in err, err
