"""`batchgen simulate` as a separate process: prints its base URL, serves, stops on a signal."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from batchgen.commands import simulate
from tests.conftest import AUTH, make_body


def parse(argv):
    parser = argparse.ArgumentParser()
    simulate.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["simulate", *argv])


def test_options_map_onto_simconfig():
    args = parse(
        [
            "--port",
            "0",
            "--api-key",
            "a",
            "--api-key",
            "b",
            "--p-5xx",
            "0.25",
            "--credits",
            "7",
            "--callback-retry-delays-s",
            "1,2",
            "--log",
            "x.jsonl",
            "--retry-after-integer",
            "--time-scale",
            "0.5",
        ]
    )
    cfg = simulate.config_from_args(args)
    assert cfg.api_keys == frozenset({"a", "b"}) and cfg.p_5xx == 0.25 and cfg.credits == 7
    assert cfg.callback_retry_delays_s == (1.0, 2.0) and cfg.log_path == "x.jsonl"
    assert cfg.retry_after_integer and cfg.time_scale == 0.5
    default = simulate.config_from_args(parse([]))
    assert default.api_keys == frozenset({"sk-sim-demo"}) and default.host == "127.0.0.1"


def test_bad_option_is_a_usage_error():
    from batchgen.errors import UsageError

    with pytest.raises(UsageError, match="p_reset"):
        simulate.config_from_args(parse(["--p-reset", "2"]))


@pytest.mark.parametrize(
    ("entry", "sig"),
    [(["batchgen", "simulate"], signal.SIGINT), (["batchgen.commands.simulate"], signal.SIGTERM)],
)
def test_separate_process_prints_url_and_stops_cleanly(tmp_path, entry, sig):
    ready = tmp_path / "ready.txt"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            *entry,
            "--port",
            "0",
            "--ready-file",
            str(ready),
            "--time-scale",
            "0.001",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:") and base.endswith("/api/v1")
        deadline = time.monotonic() + 10
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ready.read_text().strip() == base
        req = urllib.request.Request(
            f"{base}/generateTask/kling-2-1",
            data=json.dumps(make_body()).encode(),
            headers={**AUTH, "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.load(r)["data"]["taskId"].startswith("task_")
        proc.send_signal(sig)
        assert proc.wait(timeout=15) == 0
        assert "stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
