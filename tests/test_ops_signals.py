"""SIGTERM and double SIGINT in the middle of a run, then a resume: nothing lost or paid twice."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from batchgen import store as st
from batchgen.adapters.signals import StopOnSignal
from batchgen.simulator import Simulator
from tests.enginekit import KEY, SCALE, assert_files_verified, mixed_jobs, prepare_state
from tests.enginekit import state_rows as rows_of
from tests.opskit import finish, integrity_ok, resume_argv, runs, spawn, wait_for_state

UNFINISHED = (st.PENDING, st.SUBMITTING, st.IN_FLIGHT, st.SUCCEEDED)


def _sim(**kw):
    return Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=9, **kw)


async def _resume_to_end(state: Path, base_url: str) -> int:
    code = 75
    for _ in range(4):
        code, _, err = await finish(await spawn(resume_argv(state, base_url, "--quiet")))
        assert "Traceback" not in err, err
        if code != 75:
            break
    return code


def _mid_run(c: dict[str, int]) -> bool:
    return c[st.IN_FLIGHT] > 0 and c[st.PENDING] > 0 and c[st.DONE] > 0


async def test_sigterm_stops_cleanly_then_resume_finishes_without_duplicates(
    tmp_path: Path,
) -> None:
    state = prepare_state(tmp_path, mixed_jobs(40, tag="term"))
    async with _sim() as sim:
        proc = await spawn(resume_argv(state, sim.base_url, in_flight=6))
        await wait_for_state(state, _mid_run, proc=proc)
        proc.send_signal(signal.SIGTERM)
        code, _, err = await finish(proc)
        assert code == 75, err
        assert "SIGTERM: no new submits" in err
        assert "Traceback" not in err
        pid, started, ended, exit_code, how = runs(state)[-1]
        assert (pid, exit_code, how) == (proc.pid, 75, "interrupted by SIGTERM")
        assert ended is not None and ended >= started
        assert integrity_ok(state)
        left = [r for r in rows_of(state) if r["state"] in UNFINISHED]
        assert left, "the signal came mid-run, so work must be left"
        assert not [r for r in left if r["state"] == st.SUBMITTING]  # drained, all recorded

        assert await _resume_to_end(state, sim.base_url) in (0, 1)
        stats = sim.stats()
    rows = rows_of(state)
    assert stats["submits_per_body"]["max_submits_of_one_body"] <= 1
    assert all(r["state"] in (st.DONE, st.AMBIGUOUS) for r in rows), rows
    done = [r for r in rows if r["state"] == st.DONE]
    assert assert_files_verified(sim, state, tmp_path / "out") == len(done) > 30


async def test_double_sigint_exits_at_once_with_a_consistent_state(tmp_path: Path) -> None:
    state = prepare_state(tmp_path, mixed_jobs(24, tag="int"))
    # Every answer takes 1.5 s, so both SIGINTs land while submits are on the wire.
    async with _sim(p_slow=1.0, slow_s=1.5) as sim:
        proc = await spawn(resume_argv(state, sim.base_url, in_flight=6))
        await wait_for_state(state, lambda c: c[st.SUBMITTING] > 0, proc=proc)
        proc.send_signal(signal.SIGINT)
        # Two signals sent at once may merge into one: wait until the first was handled.
        assert proc.stderr is not None
        head = ""
        while "SIGINT: no new submits" not in head:
            line = await asyncio.wait_for(proc.stderr.readline(), 30)
            assert line, head
            head += line.decode()
        proc.send_signal(signal.SIGINT)
        code, _, err = await finish(proc)
        assert code == 130, head + err
        assert "SIGINT again: exiting now" in err
        assert "Traceback" not in head + err
        assert runs(state)[-1][2:] == (None, None, None)  # exited before recording its end
        assert integrity_ok(state)

        status = await finish(await spawn([*resume_argv(state, "")[:3], "status", str(state)]))
        assert status[0] == 0 and "never recorded its end" in status[1], status

        sim.set_faults(p_slow=0.0)
        assert await _resume_to_end(state, sim.base_url) in (0, 1)
        stats = sim.stats()
    rows = rows_of(state)
    assert stats["submits_per_body"]["max_submits_of_one_body"] <= 1
    # A submit cut by the exit may have created a task: ambiguous, never resent silently.
    assert all(r["state"] in (st.DONE, st.AMBIGUOUS) for r in rows), rows
    assert 1 <= sum(r["state"] == st.AMBIGUOUS for r in rows) <= 6  # the submits on the wire
    done = [r for r in rows if r["state"] == st.DONE]
    assert assert_files_verified(sim, state, tmp_path / "out") == len(done) >= 18
    assert integrity_ok(state)


class _Engine:
    def __init__(self) -> None:
        self.stops: list[str] = []

    def request_stop(self, how: str = "stopped") -> None:
        self.stops.append(how)


async def test_signal_before_the_engine_exists_is_applied_when_it_attaches() -> None:
    exits: list[int] = []
    notes: list[str] = []
    loop = asyncio.get_running_loop()
    with StopOnSignal(loop, exit_now=exits.append, notify=notes.append) as stopper:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):
            if stopper.received:
                break
            await asyncio.sleep(0.01)
        engine = _Engine()
        stopper.attach(engine)
        assert engine.stops == ["interrupted by SIGTERM"]
        assert exits == [] and "SIGTERM: no new submits" in notes[0]
        stopper.handle(signal.SIGINT)
        assert exits == [130]
    assert stopper.how == "interrupted by SIGTERM"
    # handlers removed: SIGTERM is back to its default disposition
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None)
