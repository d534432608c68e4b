"""`batchgen doctor`: the setup checked before a batch spends anything (issue 26). Real parts:
the simulator for the API, moto's S3 server (signatures checked) for the stores, a folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import s3kit
from tests.s3kit import S3Server

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "doctor-bucket"


def doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchgen", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**(env or os.environ), "PYTHONPATH": str(ROOT)},
    )


@pytest.fixture
def s3() -> Iterator[S3Server]:
    with s3kit.running(BUCKET) as server:
        yield server


def test_the_sandbox_and_a_folder_pass_every_check(tmp_path: Path) -> None:
    got = doctor("--sandbox", "--output", str(tmp_path / "out"), "--json")
    assert got.returncode == 0, got.stdout + got.stderr
    checks = {c["name"]: c for c in json.loads(got.stdout)}
    assert set(checks) == {"key", "api", "balance", "clock", "proxy", "output"}
    assert all(c["ok"] for c in checks.values())
    assert "GB free" in checks["output"]["detail"]


def test_a_refused_key_fails_and_is_never_shown(tmp_path: Path) -> None:
    """The simulator accepts only its own key: another is refused (401), and neither the key
    nor any part of it beyond an 8-digit fingerprint reaches the output."""
    secret = "sk-doctor-SECRET-0123456789abcdef"
    sim = subprocess.Popen(
        [sys.executable, "-m", "batchgen", "simulate", "--port", "0", "--quiet"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert sim.stdout is not None
        base = sim.stdout.readline().strip()
        got = doctor("--base-url", base, env={**os.environ, "APIXO_API_KEY": secret})
    finally:
        sim.terminate()
        sim.wait(timeout=30)
    assert got.returncode == 1
    assert "FAIL balance      the API refused the key (HTTP 401)" in got.stdout
    assert secret not in got.stdout + got.stderr
    assert "SECRET" not in got.stdout + got.stderr


def test_a_missing_key_fails_with_the_way_out() -> None:
    env = {k: v for k, v in os.environ.items() if k != "APIXO_API_KEY"}
    got = doctor(env=env)
    assert got.returncode == 1
    assert "FAIL key" in got.stdout and "APIXO_API_KEY" in got.stdout


def test_stores_are_written_read_and_deleted_or_named_with_what_is_missing(
    s3: S3Server, tmp_path: Path
) -> None:
    env = {**s3kit.store_env(s3), "APIXO_API_KEY": "unused"}
    ok = doctor(
        "--sandbox",
        "--image-store",
        f"s3://{BUCKET}/images",
        "--output",
        f"s3://{BUCKET}/results",
        "--json",
        env=env,
    )
    checks = {c["name"]: c for c in json.loads(ok.stdout)}
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert checks["images"]["ok"] and checks["output"]["ok"]
    secret = s3.env()["AWS_SECRET_ACCESS_KEY"]
    assert secret not in ok.stdout + ok.stderr
    missing = doctor("--sandbox", "--image-store", "s3://no-such-bucket/x", env=env)
    assert missing.returncode == 1
    assert "FAIL images" in missing.stdout and "no-such-bucket" in missing.stdout
    assert secret not in missing.stdout + missing.stderr


def test_a_callback_url_on_a_private_address_fails() -> None:
    got = doctor("--sandbox", "--callback-url", "https://127.0.0.1/hooks")
    assert got.returncode == 1
    assert "FAIL callback" in got.stdout and "private or local" in got.stdout


def test_balance_says_the_keys_balance_and_what_a_state_file_spent(tmp_path: Path) -> None:
    out = tmp_path / "out"
    ran = subprocess.run(
        [sys.executable, "-m", "batchgen", "run", str(ROOT / "manifests" / "example.yaml"),
         "--sandbox", "--output", str(out), "--quiet"],
        capture_output=True, text=True, timeout=180, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    got = subprocess.run(
        [sys.executable, "-m", "batchgen", "balance", str(out / "batchgen.db"), "--sandbox",
         "--json"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    info = json.loads(got.stdout)
    assert info["balance_usd"] > 0
    assert info["state"]["spent_usd"] > 0 and info["state"]["estimate_left_usd"] == 0
    text = subprocess.run(
        [sys.executable, "-m", "batchgen", "balance", str(tmp_path / "nope.db"), "--sandbox"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert text.returncode == 2 and "no state file" in text.stderr
