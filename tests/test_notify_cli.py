"""Issue 30 from the command line: notifier URLs (which hold tokens) never reach an output
or a file, the manifest's `notify:` block, and bad input as exit 2 with a clear message."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from batchgen.errors import UsageError
from batchgen.notify import config
from tests.notifykit import Hooks, manifest, serve_hooks
from tests.opskit import run_cli

pytestmark = pytest.mark.timeout(180)
TOKENS = ("tok-json-4711", "tok-query-0815", "tok-ping-1234", "tok-apprise-9999", "tok-pw-42")


@pytest.fixture
async def hooks() -> AsyncIterator[Hooks]:
    async with serve_hooks() as rec:
        yield rec


def every_file(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def batchgen(*argv: str) -> list[str]:
    return [sys.executable, "-m", "batchgen", *argv]


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_tokens_never_reach_an_output_or_a_file(
    tmp_path: Path, hooks: Hooks, log_format: str
) -> None:
    hooks.status["/"] = 500  # every receiver errs: each is tried, then warned about
    host = hooks.base.removeprefix("http://")
    m = manifest(tmp_path, failing=1, ok=1)
    out = tmp_path / "out"
    code, stdout, stderr = await run_cli(
        batchgen(
            "run", str(m), "--sandbox", "--output", str(out), "--log-format", log_format,
            "--notify-json", f"{hooks.base}/hook/{TOKENS[0]}?key={TOKENS[1]}",
            "--ping", f"http://user:{TOKENS[4]}@{host}/ping/{TOKENS[2]}",
            "--notify", f"json://{host}/apprise/{TOKENS[3]}",
            "--metrics-file", str(out / "batchgen.prom"),
            "--drain", "1",
        )
    )  # fmt: skip
    assert code == 1, stderr
    assert "Traceback" not in stderr
    assert len(hooks.on("/hook/")) == 3 and len(hooks.on("/apprise/")) == 3  # all tries made
    assert "not delivered" in stderr and host in stderr  # scheme and host only
    _, status, _ = await run_cli(batchgen("status", str(out / "batchgen.db"), "--json"))
    files = every_file(tmp_path)
    assert str(out / "results.jsonl") in files and str(out / "batchgen.prom") in files
    for token in TOKENS:
        assert token not in stdout and token not in stderr and token not in status
        for name, data in files.items():
            assert token.encode() not in data, f"{token} in {name}"


async def test_the_manifests_notify_block_and_the_command_line_over_it(
    tmp_path: Path, hooks: Hooks
) -> None:
    m = manifest(tmp_path, ok=1)
    m.write_text(
        m.read_text()
        + f"notify:\n  ping: {hooks.base}/ping\n  json: [{hooks.base}/hook]\n  on: [failure]\n"
    )
    code, _, err = await run_cli(batchgen("run", str(m), "--sandbox", "--output", str(tmp_path)))
    assert code == 0, err
    assert [h.path for h in hooks.hits] == ["/ping/start", "/ping"]  # clean: no JSON
    hooks.hits.clear()
    code, _, err = await run_cli(
        batchgen("run", str(m), "--sandbox", "--output", str(tmp_path), "--notify-on", "success")
    )
    assert code == 0, err
    [post] = hooks.on("/hook")
    assert json.loads(post.body)["outcome"] == "success"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--notify-on", "sometimes"], "success, failure, incomplete"),
        (["--notify-json", "ftp://example.com/x"], "--notify-json must be an http(s) URL"),
        (["--ping", "example.com/ping"], "--ping must be an http(s) URL"),
        (["--notify", "not a url"], "apprise URL"),
    ],
)
async def test_bad_notify_options_exit_2_with_a_message(
    tmp_path: Path, args: list[str], said: str
) -> None:
    m = manifest(tmp_path, ok=1)
    code, _, err = await run_cli(batchgen("run", str(m), "--sandbox", *args))
    assert code == 2 and said in err and "Traceback" not in err


async def test_a_bad_notify_block_is_a_manifest_error(tmp_path: Path) -> None:
    m = manifest(tmp_path, ok=1)
    m.write_text(m.read_text() + "notify:\n  on: [never]\n  pager: yes\n")
    code, _, err = await run_cli(batchgen("validate", str(m)))
    assert code == 2 and "Traceback" not in err
    assert "notify.on must be a list of success, failure and incomplete" in err
    assert f"{m.name}:" in err


def test_a_missing_apprise_is_named_with_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "apprise" else real(name)
    )
    with pytest.raises(UsageError, match=r"pip install 'batchgen\[notify\]'") as caught:
        config.build(urls=["slack://tok-a/tok-b/tok-c"])
    assert caught.value.exit_code == 2 and "tok-" not in str(caught.value)


def test_a_url_is_shown_as_scheme_and_host_only() -> None:
    shown = config.redact("https://user:pw@hooks.example.com:8443/services/T0/B1/xyz?token=9")
    assert shown == "https://hooks.example.com:8443"
