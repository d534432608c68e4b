"""Issue 9, secrets: the API key never leaves memory.

`batchgen run` runs as a real subprocess against the simulator with faults on (so retries,
ambiguous submits, failed jobs and cut downloads all log and report something) and a
recognisable key; afterwards the key (or a distinctive piece of it) must appear in no file
under the output folder (SQLite file, WAL, SHM, results.jsonl, .part sidecars, lock file), in
the simulator's request log, and in nothing the process printed. A rejected key (401) must not
be echoed either.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from batchgen.simulator import Simulator
from tests.enginekit import SCALE, mixed_jobs, pace_args

pytestmark = pytest.mark.timeout(120)

CANARY = "sk-SECRET-canary-7f3a9c1e5b2d4086"
PIECES = (CANARY, "canary-7f3a", "7f3a9c1e5b2d4086")


def write_manifest(path: Path, n: int) -> None:
    lines = ["version: 1", "name: secrets", "jobs:"]
    for job_id, _, body in mixed_jobs(n, violations=(2,)):
        inp = body["input"]
        lines.append(f"  - id: {job_id}")
        for k, v in inp.items():
            if isinstance(v, list):
                lines.append(f"    {k}: [{', '.join(v)}]")
            else:
                lines.append(f'    {k}: "{v}"' if isinstance(v, str) else f"    {k}: {v}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


async def run_cli(*argv: str, env: dict[str, str]) -> tuple[int, bytes]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "batchgen",
        *argv,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=90)
    assert proc.returncode is not None
    return proc.returncode, out


def pace(base_url: str) -> list[str]:
    return pace_args(base_url, backoff="0.02,0.3")


def assert_no_secret(blob: bytes, where: str) -> None:
    for piece in PIECES:
        assert piece.encode() not in blob, f"{piece!r} leaked into {where}"
        assert piece.encode("utf-16-le") not in blob, f"{piece!r} (utf-16) leaked into {where}"


async def test_key_appears_nowhere_after_a_faulty_run(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    write_manifest(manifest, 16)
    out = tmp_path / "out"
    sim_log = tmp_path / "sim.jsonl"
    faults = {
        "p_5xx": 0.1,
        "p_429": 0.05,
        "p_reset": 0.05,
        "p_reset_after_create": 0.1,
        "p_error_in_200": 0.05,
        "p_file_cut": 0.3,
    }
    async with Simulator(
        api_keys=frozenset({CANARY}), time_scale=SCALE, seed=9, log_path=str(sim_log), **faults
    ) as sim:
        env = {"APIXO_API_KEY": CANARY}
        # Three fresh batches (each with its own output folder, so the faults hit all three):
        # JSON logs, text logs, and the key from a file instead of the environment.
        argv = ["run", str(manifest), *pace(sim.base_url)]
        code, printed = await run_cli(
            *argv, "--output", str(out / "json"), "--log-format", "json", env=env
        )
        code_text, printed_text = await run_cli(*argv, "--output", str(out / "text"), env=env)
        key_file = tmp_path / "key.txt"
        key_file.write_text(CANARY + "\n")
        code_file, printed_file = await run_cli(
            *argv,
            "--output",
            str(out / "file"),
            "--api-key-file",
            str(key_file),
            env={"APIXO_API_KEY": ""},
        )
        _, status_out = await run_cli("status", str(out / "json" / "batchgen.db"), env={})
        fired = sum(sim.dice.fired.values())
    assert code in (0, 1), printed.decode()
    assert code_text in (0, 1) and code_file in (0, 1), printed_text.decode()
    assert fired > 0  # error paths ran
    assert b"Traceback" not in printed + printed_text + printed_file
    # job-0002 fails CONTENT_VIOLATION, unless a reset made its submit ambiguous first
    assert b"CONTENT_VIOLATION" in status_out or b"ambiguous" in status_out
    assert b"failed" in printed_text or b"ambiguous" in printed_text
    for name, blob in {
        "run output (json)": printed,
        "run output (text)": printed_text,
        "run output (key file)": printed_file,
        "status output": status_out,
        "simulator log": sim_log.read_bytes(),
    }.items():
        assert_no_secret(blob, name)
    scanned = 0
    for path in out.rglob("*"):
        if path.is_file():
            assert_no_secret(path.read_bytes(), str(path))
            scanned += 1
    assert scanned >= 3 * 10  # state files, WAL, lock, results.jsonl and the videos


async def test_a_rejected_key_is_not_echoed(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    write_manifest(manifest, 3)
    out = tmp_path / "out"
    async with Simulator(api_keys=frozenset({"sk-the-right-one"}), time_scale=SCALE) as sim:
        for fmt in ("text", "json"):
            code, printed = await run_cli(
                "run",
                str(manifest),
                "--output",
                str(out),
                "--log-format",
                fmt,
                *pace(sim.base_url),
                env={"APIXO_API_KEY": CANARY},
            )
            assert code == 3, printed.decode()
            assert b"401" in printed or b"API key" in printed, printed.decode()
            assert_no_secret(printed, f"401 output ({fmt})")
    for path in out.rglob("*"):
        if path.is_file():
            assert_no_secret(path.read_bytes(), str(path))
