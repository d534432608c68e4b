"""SIGKILL `batchgen resume` at seeded random moments, resume each time, until the batch ends.

Nothing may be lost or paid twice: every job ends done, failed or ambiguous; no body reaches
the simulator twice; every task the simulator created is recorded against its job, unless that
job is reported ambiguous; every file hashes to what the simulator served; SQLite says the
state file is intact. A job is ambiguous exactly when its submit's answer could not tell
whether a task was made (a reset, a proxy's page, a task created then a 502 page: the
simulator counts those by body) or the kill fell while its submit was on the wire.

CI lands 24 kills; `BATCHGEN_LONG=1` lands 60 on bigger batches with more faults
(`BATCHGEN_KILLS=N` overrides either) and prints the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from batchgen import store as st
from batchgen.simulator import Simulator
from tests.enginekit import (
    KEY,
    SCALE,
    assert_files_verified,
    mixed_jobs,
    prepare_state,
    record_bodies,
    state_rows,
)
from tests.opskit import resume_argv

LONG = os.environ.get("BATCHGEN_LONG") == "1"
KILLS = int(os.environ.get("BATCHGEN_KILLS", "60" if LONG else "24"))
JOBS_PER_BATCH = 250 if LONG else 150
FAULTS = {
    "p_5xx": 0.02,
    "p_429": 0.01,
    "p_reset": 0.01,  # before the server reads the request: a submit becomes ambiguous
    "p_reset_after_create": 0.01,  # the task exists, its answer is lost: ambiguous
    "p_502_after_create": 0.02,  # the task exists, then a proxy's 502 page: ambiguous
    "p_error_in_200": 0.02,
    "p_file_cut": 0.1,
    "p_file_ignore_range": 0.1,
}
if LONG:
    FAULTS.update(p_5xx=0.04, p_429=0.02, p_error_in_200=0.04, p_file_cut=0.2, p_file_trickle=0.05)


def _argv(state: Path, base_url: str) -> list[str]:
    return resume_argv(state, base_url, "--quiet", in_flight=25)


async def _until_requests(proc: asyncio.subprocess.Process, sim: Simulator, n: int) -> None:
    """Return once the simulator has seen `n` more API requests, or the process has ended."""
    goal = sim.observer.arrived + n
    while sim.observer.arrived < goal and proc.returncode is None:  # noqa: ASYNC110 (a count, no event)
        await asyncio.sleep(0.002)


async def _run_once(
    argv: list[str],
    kill_after: float | None,
    *,
    sim: Simulator | None = None,
    after_requests: int | None = None,
) -> int | None:
    """Run to the end (returns the exit code) or SIGKILL after `kill_after` seconds, or once
    `sim` has seen `after_requests` more requests (a kill point that does not depend on the
    machine's speed). Returns None if the kill landed on a live process, else its exit code."""
    env = {**os.environ, "APIXO_API_KEY": KEY}
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        if after_requests is not None:
            assert sim is not None
            waiter = asyncio.ensure_future(_until_requests(proc, sim, after_requests))
            ended = asyncio.ensure_future(proc.wait())
            await asyncio.wait({waiter, ended}, timeout=120, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if ended.done():
                return proc.returncode
            ended.cancel()
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
            code = await proc.wait()
            return None if code == -signal.SIGKILL else code
        if kill_after is None:
            _, err = await asyncio.wait_for(proc.communicate(), timeout=120)
            assert proc.returncode in (0, 1, 75), err.decode()
            assert b"Traceback" not in err, err.decode()
            return proc.returncode
        try:
            await asyncio.wait_for(proc.wait(), timeout=kill_after)
        except TimeoutError:
            # The run may end on its own in the same instant: then the kill did not land.
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
            code = await proc.wait()
            return None if code == -signal.SIGKILL else code
        return proc.returncode
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
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
    state = prepare_state(
        batch_dir, mixed_jobs(JOBS_PER_BATCH, violations=(5,), tag=batch_dir.name)
    )
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
        bodies = {r.id: _canonical(r.body) for s in st.STATES for r in store.jobs.in_state(s)}
        notes = dict(store.db.execute("SELECT id, note FROM jobs WHERE state=?", (st.AMBIGUOUS,)))
    finally:
        store.close()
    # Ambiguous exactly when it must be: every submit answered unknowably (a reset, a proxy's
    # page, a 502 page after the task was made) and every submit a kill cut on the wire, and
    # nothing else. Each such body was sent once.
    unknowable = sim.observer.unknowable
    unknown_ids = {job_id for job_id, b in bodies.items() if unknowable[b]}
    cut_ids = {
        job_id for job_id, note in notes.items() if "while its submit was on the wire" in note
    }
    assert ambiguous == unknown_ids | cut_ids, (ambiguous, unknown_ids, cut_ids)
    assert all(unknowable[bodies[job_id]] == 1 for job_id in unknown_ids)
    # Paid once, or reported: a body reached the provider at most once (nothing here asks for
    # --resubmit-ambiguous), and a job that holds a result or a provider failure paid exactly
    # once. Ambiguous jobs may have paid once, and are listed as such.
    created: Counter[str] = sim.observer.bodies
    for r in rows:
        n = created[bodies[r["id"]]]
        if r["state"] == st.AMBIGUOUS:
            assert n <= 1, r
        else:
            assert n == 1, (r, n)
    # Nothing lost: every task created for this batch is recorded against its job, or that
    # job is reported ambiguous (its answer never arrived).
    recorded = {r["task_id"] for r in rows if r["task_id"]}
    mine = set(bodies.values())
    unrecorded = [t for t, b in sim_tasks(sim).items() if b in mine and t not in recorded]
    assert len(unrecorded) <= len(ambiguous), (unrecorded, ambiguous)
    FIGURES["ambiguous"] += len(ambiguous)
    FIGURES["ambiguous_paid"] += len(unrecorded)
    FIGURES["jobs"] += len(rows)
    FIGURES["unknowable"] += len(unknown_ids - cut_ids)
    FIGURES["cut"] += len(cut_ids)
    return landed


FIGURES: Counter[str] = Counter()


def _canonical(body: str) -> str:
    return json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sim_tasks(sim: Simulator) -> dict[str, str]:
    """task id -> canonical body, for every task the simulator created."""
    return {t: _canonical(json.dumps(body)) for t, body in sim.created_bodies.items()}


@pytest.mark.timeout(3600 if LONG else 300)
async def test_sigkill_at_random_moments_loses_nothing_and_pays_nothing_twice(
    tmp_path: Path, capsys
) -> None:
    rng = random.Random(20261126)
    landed = batches = 0
    FIGURES.clear()
    started = time.monotonic()
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=11, **FAULTS) as sim:
        record_bodies(sim)
        while landed < KILLS:
            batches += 1
            landed += await _campaign(tmp_path / f"batch{batches}", sim, rng, KILLS - landed)
        stats = sim.stats()
        fired = {k: v for k, v in sim.dice.fired.items() if v}
    # Ambiguous jobs are never resubmitted silently, so no body may reach the provider twice.
    assert stats["submits_per_body"]["max_submits_of_one_body"] <= 1, stats["submits_per_body"]
    assert landed >= KILLS
    assert fired.get("p_502_after_create", 0) > 0  # the new fault was exercised
    with capsys.disabled():
        print(
            f"\ncrash test{' (long)' if LONG else ''}: {landed} kills landed over {batches} "
            f"batch(es) of {JOBS_PER_BATCH} jobs; ambiguous {FIGURES['ambiguous']} of "
            f"{FIGURES['jobs']} jobs ({FIGURES['unknowable']} unknowable answers, "
            f"{FIGURES['cut']} cut by a kill; paid {FIGURES['ambiguous_paid']}); "
            f"faults fired {fired}; "
            f"{time.monotonic() - started:.1f} s"
        )
