"""Cron mode: `--no-wait` invocations, one after another as cron would start them, drive a batch
to its end; `--max-runtime` stops cleanly at a deadline."""

from __future__ import annotations

import asyncio
from pathlib import Path

from batchgen import store as st
from batchgen.runner import execute
from batchgen.simulator import Simulator
from tests.enginekit import (
    KEY,
    SCALE,
    assert_files_verified,
    mixed_jobs,
    options,
    prepare_state,
    state_rows,
)
from tests.opskit import counts, integrity_ok, resume_argv, run_cli, runs

CAP = 5


async def test_no_wait_cycles_drive_a_batch_to_completion(tmp_path: Path) -> None:
    state = prepare_state(tmp_path, mixed_jobs(16, violations=(4,), tag="cron"))
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=4) as sim:
        argv = resume_argv(state, sim.base_url, "--no-wait", "--quiet", in_flight=CAP)
        codes: list[int] = []
        seen: list[dict[str, int]] = []
        for _ in range(80):
            code, _, err = await run_cli(argv)
            assert "Traceback" not in err, err
            codes.append(code)
            c = counts(state)
            seen.append(c)
            # never more tasks at the provider than the cap, whatever the number of runs
            assert c[st.IN_FLIGHT] <= CAP, c
            assert c[st.SUBMITTING] == 0, c  # a --no-wait run leaves nothing half-recorded
            if code != 75:
                break
            await asyncio.sleep(0.15)  # the gap between two cron runs (scaled)
        stats = sim.stats()
    assert codes[-1] == 1, codes  # finished; job-0004 failed by design
    assert all(c == 75 for c in codes[:-1]), codes
    # 16 jobs under a cap of 5 cannot finish in fewer than 4 runs; each run did something
    assert len(codes) >= 4, codes
    assert seen[0][st.IN_FLIGHT] == CAP and seen[0][st.PENDING] == 16 - CAP, seen[0]
    # Each run refills the slots of the tasks it saw end: the cap stays full while work waits.
    assert all(c[st.IN_FLIGHT] == CAP for c in seen if c[st.PENDING]), seen
    assert stats["submits_per_body"]["max_submits_of_one_body"] == 1
    assert stats["max_in_flight"] <= CAP
    rows = state_rows(state)
    assert {r["id"]: r["state"] for r in rows if r["state"] != st.DONE} == {"job-0004": st.FAILED}
    assert assert_files_verified(sim, state, tmp_path / "out") == 15
    recorded = runs(state)
    assert len(recorded) == len(codes)
    assert [r[3] for r in recorded] == codes
    assert all(r[4] == "work left" for r in recorded[:-1])
    assert integrity_ok(state)


async def test_max_runtime_stops_at_the_deadline_and_the_next_run_continues(
    tmp_path: Path,
) -> None:
    state = prepare_state(tmp_path, mixed_jobs(20, tag="deadline"))
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=6) as sim:
        first = await execute(options(tmp_path, sim.base_url, max_in_flight=4, max_runtime_s=0.8))
        assert first.exit_code == 75
        assert first.how == "stopped at --max-runtime"
        assert runs(state)[-1][3:] == (75, "stopped at --max-runtime")
        c = counts(state)
        assert c[st.SUBMITTING] == 0 and c[st.PENDING] > 0, c
        second = await execute(options(tmp_path, sim.base_url, max_in_flight=10))
        stats = sim.stats()
    assert second.exit_code == 0, second
    assert stats["submits_per_body"]["max_submits_of_one_body"] == 1
    assert assert_files_verified(sim, state, tmp_path / "out") == 20
