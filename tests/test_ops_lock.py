"""One run per state file: an OS lock that names its holder and dies with it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from batchgen.adapters.lock import StateLock, holder_of
from batchgen.errors import StateLocked
from batchgen.simulator import Simulator
from tests.enginekit import KEY, SCALE, mixed_jobs, prepare_state
from tests.opskit import env, finish, resume_argv, run_cli, spawn, wait_for_state

HOLD = (
    "import sys, time; from batchgen.adapters.lock import StateLock\n"
    "with StateLock(sys.argv[1]):\n"
    "    print('held', flush=True); time.sleep(60)\n"
)


async def _holder(state: Path) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLD, str(state), env=env(), stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
    assert line == b"held\n"
    return proc


async def test_lock_names_its_holder_and_dies_with_it(tmp_path: Path) -> None:
    state = tmp_path / "batchgen.db"
    assert holder_of(state) is None
    proc = await _holder(state)
    try:
        assert holder_of(state) == proc.pid
        with pytest.raises(StateLocked) as info, StateLock(state):
            pass
        assert f"process {proc.pid}" in str(info.value)
        assert info.value.exit_code == 4
    finally:
        proc.send_signal(signal.SIGKILL)  # the kernel drops a flock with its holder
        await proc.wait()
    assert holder_of(state) is None
    with StateLock(state):
        assert holder_of(state) == os.getpid()
    assert holder_of(state) is None


def test_lock_is_reentrant_within_one_process(tmp_path: Path) -> None:
    state = tmp_path / "s.db"
    with StateLock(state) as outer:
        with StateLock(state):
            assert holder_of(state) == os.getpid()
        assert holder_of(state) == os.getpid()  # the inner exit kept the outer's lock
        assert "depth=1" in repr(outer)
    assert holder_of(state) is None


async def test_second_run_exits_4_at_once_naming_the_first(tmp_path: Path) -> None:
    state = prepare_state(tmp_path, mixed_jobs(30, tag="lock"))
    sim_kw = {"api_keys": frozenset({KEY}), "time_scale": SCALE, "seed": 5}
    async with Simulator(**sim_kw) as sim:
        argv = resume_argv(state, sim.base_url, in_flight=4)
        first = await spawn(argv)
        try:
            await wait_for_state(state, lambda c: c["in_flight"] > 0, proc=first)
            code, _, err = await run_cli(argv)
            assert code == 4, err
            assert f"process {first.pid}" in err
            # retry and cancel refuse too (they would race the engine); status works
            code, _, err = await run_cli(
                [sys.executable, "-m", "batchgen", "retry", str(state), "--failed"]
            )
            assert code == 4 and f"process {first.pid}" in err
            code, _, err = await run_cli([sys.executable, "-m", "batchgen", "cancel", str(state)])
            assert code == 4
            code, out, err = await run_cli([sys.executable, "-m", "batchgen", "status", str(state)])
            assert code == 0, err
            assert f"running now: process {first.pid}" in out
            assert "still running" in out
            # `run MANIFEST --state` refuses before reading (or even finding) the manifest
            code, _, err = await run_cli(
                [
                    sys.executable,
                    "-m",
                    "batchgen",
                    "run",
                    str(tmp_path / "missing.yaml"),
                    "--state",
                    str(state),
                ]
            )
            assert code == 4, err
        finally:
            first.send_signal(signal.SIGTERM)
            code, _, err = await finish(first)
        assert code in (0, 75), err
        assert holder_of(state) is None


def test_status_reads_the_lock_table_and_never_takes_the_lock(tmp_path: Path, monkeypatch):
    """A probe with a shared flock could make a run starting in the same instant exit 4; on
    Linux holder_of reads /proc/locks instead and never calls flock."""
    import fcntl

    from batchgen.adapters import lock as lock_module

    state = tmp_path / "s.db"
    (tmp_path / "s.db.lock").write_text("")
    calls: list[int] = []
    real = fcntl.flock
    monkeypatch.setattr(lock_module.fcntl, "flock", lambda fd, op: calls.append(op) or real(fd, op))
    assert holder_of(state) is None
    assert calls == []
