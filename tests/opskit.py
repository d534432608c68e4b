"""Helpers for the operations tests (tests/test_ops_*.py): batchgen as a subprocess against an
in-process simulator, reading the state file while it runs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from batchgen import store as st
from tests.enginekit import KEY, pace_args

ROOT = Path(__file__).resolve().parent.parent


def resume_argv(state: Path, base_url: str, *extra: str, in_flight: int = 8) -> list[str]:
    return [
        sys.executable, "-m", "batchgen", "resume", str(state), *pace_args(base_url),
        "--max-in-flight", str(in_flight), *extra,
    ]  # fmt: skip


def env() -> dict[str, str]:
    return {**os.environ, "APIXO_API_KEY": KEY, "PYTHONPATH": str(ROOT)}


async def spawn(argv: list[str], **kw: Any) -> asyncio.subprocess.Process:
    kw.setdefault("stdout", asyncio.subprocess.PIPE)
    kw.setdefault("stderr", asyncio.subprocess.PIPE)
    return await asyncio.create_subprocess_exec(*argv, env=env(), **kw)


async def finish(proc: asyncio.subprocess.Process, within: float = 60) -> tuple[int, str, str]:
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=within)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # it may be exiting right now
                proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def run_cli(argv: list[str], within: float = 60) -> tuple[int, str, str]:
    return await finish(await spawn(argv), within)


def counts(state: Path) -> dict[str, int]:
    store = st.Store(state, readonly=True)
    try:
        return store.jobs.counts()
    finally:
        store.close()


async def wait_for_state(
    state: Path,
    predicate: Any,
    within: float = 30.0,
    proc: asyncio.subprocess.Process | None = None,
) -> dict[str, int]:
    """Poll the state file (read-only, as `batchgen status` does) until predicate(counts)."""
    deadline = time.monotonic() + within
    while True:
        try:
            c = counts(state)
        except Exception:  # not created yet, or mid-migration
            c = None
        if c is not None and predicate(c):
            return c
        if proc is not None and proc.returncode is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before: {c}")
        if time.monotonic() > deadline:
            raise AssertionError(f"state never matched within {within} s: {c}")
        await asyncio.sleep(0.02)


def runs(state: Path) -> list[tuple]:
    store = st.Store(state, readonly=True)
    try:
        return store.db.execute(
            "SELECT pid, started_at, ended_at, exit_code, how FROM runs ORDER BY id"
        ).fetchall()
    finally:
        store.close()


def integrity_ok(state: Path) -> bool:
    store = st.Store(state, readonly=True)
    try:
        return store.integrity_ok()
    finally:
        store.close()
