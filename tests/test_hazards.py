"""Every hazard at once (issue 25): a seeded generator draws each example's mix and the whole
run must keep batchgen's promises, checked as invariants rather than examples.

Each example draws: more jobs than the in-flight cap or not; a server whose task cap is lower
than the client's, its 429 worded as the reference words it ("Rate limit exceeded") or as a
concurrency cap; transient fail codes and content violations; 429 bursts; 5xx pages before and
after a task is made; connection resets before and after; a status outage for a while;
callback mode with lost, duplicated, early, forged deliveries and `processing` notices; a spend
cap; result files cut, gzipped or sent whole for a Range; and SIGKILLs after the run's n-th API
request (a kill point that does not depend on the machine's speed), each followed by a rerun.
The real CLI runs against the real simulator over loopback.

After every example: no traceback and no exit code outside batchgen/exitcodes.py's table for the
situation; no task made twice for a job beyond its transient resubmits; the simulator never
charged past the cap; every job done, failed with a code, ambiguous, or pending with the spend
cap's note; every done file hashes to the bytes served; the server never held more of our tasks
than the client's cap plus the tasks of submits whose answer was lost.

A failing example prints its seed: `BATCHGEN_HAZARD_SEED=N pytest tests/test_hazards.py` runs
that one again. CI runs EXAMPLES seeds; `BATCHGEN_SOAK=N` runs N more, drawn afresh and printed.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from batchgen import store as st
from batchgen.simulator import Simulator
from batchgen.states import STATES
from batchgen.store import ledger
from tests.enginekit import (
    KEY,
    SCALE,
    assert_files_verified,
    body,
    prepare_state,
    record_bodies,
    state_rows,
)
from tests.opskit import resume_argv
from tests.test_crash import _run_once

EXAMPLES = 6
ALLOWED_EXITS = {0, 1, 5, 75}  # done; some unsuccessful; the spend cap; work left
MODES = ("master-text-to-video", "standard-image-to-video", "pro-image-to-video")


@dataclass
class Mix:
    """One example's hazards, all drawn from `seed`."""

    seed: int
    jobs: int
    client_cap: int
    server_cap: int
    cap_words: str
    callbacks: bool
    faults: dict[str, float] = field(default_factory=dict)
    max_spend: float | None = None
    kills: list[int] = field(default_factory=list)  # kill each run after its n-th request
    outage_after: int | None = None  # a status outage starts after n requests ...
    outage_s: float = 0.0  # ... and lasts this long

    @classmethod
    def draw(cls, seed: int) -> Mix:
        r = random.Random(seed)
        jobs = r.randint(10, 36)
        client_cap = r.choice([max(2, jobs // 3), jobs - 3, jobs + 5])
        faults = {
            "p_transient": r.choice([0.0, 0.15, 0.3]),
            "p_content_violation": r.choice([0.0, 0.07]),
            "p_429": r.choice([0.0, 0.02]),
            "p_5xx": r.choice([0.0, 0.02]),
            "p_reset": r.choice([0.0, 0.01]),
            "p_reset_after_create": r.choice([0.0, 0.02]),
            "p_502_after_create": r.choice([0.0, 0.03]),
            "p_error_in_200": r.choice([0.0, 0.02]),
            "p_file_cut": r.choice([0.0, 0.15]),
            "p_file_ignore_range": r.choice([0.0, 0.2]),
            "p_file_gzip": r.choice([0.0, 0.3]),
        }
        callbacks = r.random() < 0.5
        if callbacks:
            faults.update(
                p_callback_fail=r.choice([0.0, 0.2]),
                p_callback_duplicate=r.choice([0.0, 1.0]),
                p_callback_early=r.choice([0.0, 0.3]),
                p_callback_forged=r.choice([0.0, 1.0]),
                p_callback_notice=r.choice([0.0, 1.0]),
            )
        outage = r.random() < 0.3
        return cls(
            seed=seed,
            jobs=jobs,
            client_cap=client_cap,
            server_cap=r.choice([1000, max(2, client_cap // 2)]),
            cap_words=r.choice(
                ["Rate limit exceeded", "Too many concurrent tasks (limit {limit})"]
            ),
            callbacks=callbacks,
            faults={k: v for k, v in faults.items() if v},
            max_spend=r.choice([None, None, round(jobs * r.uniform(0.3, 0.8), 2)]),
            kills=[r.randint(2, 30) for _ in range(r.randint(0, 3))],
            outage_after=r.randint(5, 60) if outage else None,
            outage_s=r.uniform(0.2, 0.6) if outage else 0.0,
        )


def _jobs(mix: Mix) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (
            f"h{mix.seed}-{i:03d}",
            "kling-2-1",
            body(i, MODES[i % 3], prompt=f"hazard {mix.seed} job {i}", duration=5 if i % 4 else 10),
        )
        for i in range(mix.jobs)
    ]


async def _outage(sim: Simulator, mix: Mix) -> None:
    """Every status answer a proxy's page for a while, then the API answers again."""
    assert mix.outage_after is not None
    goal = sim.observer.arrived + mix.outage_after
    while sim.observer.arrived < goal:  # noqa: ASYNC110 (a count, no event)
        await asyncio.sleep(0.005)
    before = sim.dice.config.p_5xx
    sim.set_faults(p_5xx=0.95)
    await asyncio.sleep(mix.outage_s)
    sim.set_faults(p_5xx=before)


async def _run_to_end(argv: list[str]) -> int:
    """One run to its own end: its exit code. No traceback, whatever the code."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env={**os.environ, "APIXO_API_KEY": KEY},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert b"Traceback" not in err, err.decode()
    assert proc.returncode is not None
    return proc.returncode


def _created_per_job(sim: Simulator, mix: Mix) -> Counter[str]:
    """Tasks the simulator made, by the job whose prompt they carry (callback URLs differ
    between runs, so bodies are not compared whole)."""
    made: Counter[str] = Counter()
    for task_body in sim.created_bodies.values():  # type: ignore[attr-defined]
        prompt = task_body["input"]["prompt"]
        made[f"h{mix.seed}-{int(prompt.rsplit(' ', 1)[1]):03d}"] += 1
    return made


async def run_example(mix: Mix, tmp: Path) -> dict[str, Any]:
    state = prepare_state(tmp, _jobs(mix))
    sim_kw: dict[str, Any] = {
        "api_keys": frozenset({KEY}),
        "time_scale": SCALE,
        "seed": mix.seed,
        "max_in_flight": mix.server_cap,
        "concurrency_message": mix.cap_words,
        **mix.faults,
    }
    extra = ["--quiet"]
    if mix.callbacks:
        extra += ["--callback-listen", "127.0.0.1:0"]
    if mix.max_spend is not None:
        extra += ["--max-spend", str(mix.max_spend)]
    codes: list[int | None] = []
    async with Simulator(**sim_kw) as sim:
        record_bodies(sim)
        argv = resume_argv(state, sim.base_url, *extra, in_flight=mix.client_cap)
        outage = asyncio.ensure_future(_outage(sim, mix)) if mix.outage_after else None
        try:
            for k in mix.kills:
                codes.append(await _run_once(argv, None, sim=sim, after_requests=k))
                assert mix.max_spend is None or float(sim.billing.charged) <= mix.max_spend
            for _ in range(8):
                code = await _run_to_end(argv)
                codes.append(code)
                assert mix.max_spend is None or float(sim.billing.charged) <= mix.max_spend
                if code != 75:
                    break
        finally:
            if outage is not None:
                outage.cancel()
        made = _created_per_job(sim, mix)
        unknowable = sum(sim.observer.unknowable.values())
        server_max = sim.stats()["max_in_flight"]
        files = assert_files_verified(sim, state, tmp / "out")
    return {
        "state": state,
        "codes": codes,
        "made": made,
        "unknowable": unknowable,
        "server_max": server_max,
        "files": files,
    }


def check_invariants(mix: Mix, got: dict[str, Any]) -> None:
    codes = [c for c in got["codes"] if c is not None]  # None: a kill that landed
    assert set(codes) <= ALLOWED_EXITS, codes
    final = got["codes"][-1]
    assert final in ALLOWED_EXITS - {75}, f"still work left after 8 runs: {got['codes']}"
    if final == 5:
        assert mix.max_spend is not None
    rows = state_rows(got["state"])
    by_state = Counter(r["state"] for r in rows)
    assert set(by_state) <= set(STATES)
    store = st.Store(got["state"], readonly=True)
    try:
        attempts = store.ledger.all_attempts()
        notes = dict(store.db.execute("SELECT id, COALESCE(note, '') FROM jobs"))
    finally:
        store.close()
    for r in rows:
        state = r["state"]
        assert state not in (st.SUBMITTING, st.IN_FLIGHT, st.SUCCEEDED), r
        if state == st.FAILED:
            assert r["fail_code"], r
        if state == st.PENDING:
            assert final == 5 and "spend cap" in notes[r["id"]], (r, notes[r["id"]])
        # Paid at most once per submit the rules allow: the first, and one per transient
        # resubmit. Ambiguous jobs are never resubmitted on their own either.
        resubmits = sum(a.outcome == ledger.RESUBMITTED for a in attempts.get(r["seq"], []))
        assert got["made"][r["id"]] <= 1 + resubmits, (r, got["made"][r["id"]], resubmits)
        if state == st.DONE:
            assert got["made"][r["id"]] >= 1
    assert got["files"] == by_state[st.DONE]
    lost = got["unknowable"] + len(mix.kills)  # tasks the client may not know it holds
    assert got["server_max"] <= mix.client_cap + lost, (got["server_max"], mix.client_cap, lost)


def _seeds() -> list[int]:
    pinned = os.environ.get("BATCHGEN_HAZARD_SEED")
    if pinned:
        return [int(pinned)]
    seeds = [20261207 + i for i in range(EXAMPLES)]
    soak = int(os.environ.get("BATCHGEN_SOAK", "0"))
    fresh = random.SystemRandom()
    return seeds + [fresh.randrange(1, 2**31) for _ in range(soak)]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("seed", _seeds())
async def test_every_hazard_at_once_keeps_every_promise(tmp_path: Path, seed: int) -> None:
    mix = Mix.draw(seed)
    try:
        got = await run_example(mix, tmp_path)
        check_invariants(mix, got)
    except BaseException:
        print(f"\nhazard example failed: BATCHGEN_HAZARD_SEED={seed}\n{mix}")
        raise
    states = Counter(r["state"] for r in state_rows(got["state"]))
    print(f"\nseed {seed}: {mix.jobs} jobs, exits {got['codes']}, {dict(states)}")
