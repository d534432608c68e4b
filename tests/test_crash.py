"""SIGKILL `batchgen resume` at seeded random moments, resume each time, until the batch ends.

Nothing may be lost or paid twice: every job ends done, failed or ambiguous; no body reaches
the simulator twice; every file hashes to what the simulator served; SQLite says the state
file is intact.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from pathlib import Path

from batchgen import store as st
from batchgen.simulator import Simulator
from tests.enginekit import KEY, SCALE, assert_files_verified, mixed_jobs, prepare_state, state_rows

KILLS = int(os.environ.get("BATCHGEN_KILLS", "24"))


def _argv(state: Path, base_url: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "batchgen",
        "resume",
        str(state),
        "--base-url",
        base_url,
        "--poll-after",
        str(60 * SCALE),
        "--poll-every",
        str(5 * SCALE),
        "--rate-limit",
        f"10000/{60 * SCALE}s",
        "--backoff",
        "0.02,0.5",
        "--quiet",
        "--max-in-flight",
        "25",
    ]


async def _run_once(argv: list[str], kill_after: float | None) -> int | None:
    """Run to the end (returns the exit code) or SIGKILL after `kill_after` (returns None if
    the kill landed on a live process, else its exit code)."""
    env = {**os.environ, "APIXO_API_KEY": KEY}
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        if kill_after is None:
            _, err = await asyncio.wait_for(proc.communicate(), timeout=120)
            assert proc.returncode in (0, 1, 75), err.decode()
            assert b"Traceback" not in err, err.decode()
            return proc.returncode
        try:
            await asyncio.wait_for(proc.wait(), timeout=kill_after)
        except TimeoutError:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            return None
        return proc.returncode
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _campaign(
    batch_dir: Path,
    sim: Simulator,
    rng: random.Random,
    kills_wanted: int,
) -> int:
    """Kill runs of one batch until it finishes or `kills_wanted` kills landed; then run it to
    its end and check every promise. Returns the kills that hit a running process."""
    state = prepare_state(batch_dir, mixed_jobs(150, violations=(5,), tag=batch_dir.name))
    argv = _argv(state, sim.base_url)
    landed = 0
    code: int | None = None
    while landed < kills_wanted:
        code = await _run_once(argv, kill_after=rng.uniform(0.4, 1.6))
        if code is None:
            landed += 1
        elif code != 75:
            break
    for _ in range(5):
        code = await _run_once(argv, kill_after=None)
        if code != 75:
            break
    rows = state_rows(state)
    by_state = {s: [r for r in rows if r["state"] == s] for s in st.STATES}
    unfinished = [
        r for s in (st.PENDING, st.SUBMITTING, st.IN_FLIGHT, st.SUCCEEDED) for r in by_state[s]
    ]
    assert not unfinished, unfinished[:5]
    ambiguous = {r["id"] for r in by_state[st.AMBIGUOUS]}
    assert {r["id"] for r in by_state[st.FAILED]} == {"job-0005"} - ambiguous
    assert assert_files_verified(sim, state, batch_dir / "out") == len(by_state[st.DONE])
    assert code == (1 if by_state[st.FAILED] or ambiguous else 0)
    store = st.Store(state, readonly=True)
    try:
        assert store.integrity_ok()
    finally:
        store.close()
    return landed


async def test_sigkill_at_random_moments_loses_nothing_and_pays_nothing_twice(
    tmp_path: Path,
) -> None:
    rng = random.Random(20261126)
    faults = {"p_5xx": 0.02, "p_429": 0.01, "p_file_cut": 0.1}
    landed = batches = 0
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=11, **faults) as sim:
        while landed < KILLS:
            batches += 1
            landed += await _campaign(tmp_path / f"batch{batches}", sim, rng, KILLS - landed)
        stats = sim.stats()
    # Ambiguous jobs are never resubmitted silently, so no body may reach the provider twice.
    assert stats["submits_per_body"]["max_submits_of_one_body"] <= 1, stats["submits_per_body"]
    assert landed >= KILLS
