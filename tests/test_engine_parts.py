"""Issue 15 step 5: the engine's parts (Submitter, Tracker) on their own, with a scripted client
object (no sockets, no simulator), a real state file and a FakeClock. The run's documented
schedule is used as is (first poll after a minute, polls 5 s apart, backoff up to a minute, the
stuck rule at an hour): the clock jumps from one timer to the next, so an hour of a task's
life passes in milliseconds, and the times it waited are exact."""

from __future__ import annotations

import asyncio
import itertools
import random
from pathlib import Path
from typing import Any, TypeVar

import pytest

from batchgen import store as st
from batchgen.adapters.answers import TaskStatus
from batchgen.clock import FakeClock
from batchgen.engine import Engine
from batchgen.engine.config import engine_config
from batchgen.errors import (
    ApiConnectionError,
    AuthError,
    BadAnswer,
    InvalidRequest,
    NotFound,
    RateLimited,
    ServerError,
)
from batchgen.settings import RunOptions
from batchgen.testing import ScriptedClient, on_fake_time

pytestmark = pytest.mark.timeout(20)
T = TypeVar("T")
START = 1_700_000_000.0  # the fake clock is also the run's wall clock


def engine_for(tmp: Path, client: ScriptedClient, **config: Any) -> tuple[Engine, st.Store]:
    """An engine on a FakeClock (also its wall clock) with the documented defaults, unless
    `config` says otherwise."""
    clock = client.clock = client.clock or FakeClock(start=START)
    store = st.Store(tmp / "s.db", wall=clock.now)
    body = {"model": "kling-2-1", "input": {"mode": "master-text-to-video", "prompt": "p"}}
    store.jobs.sync([("j1", "kling-2-1", body)])
    engine = Engine(
        store,
        client,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        engine_config(RunOptions.from_flat(state_path=tmp / "s.db", output_dir=tmp), **config),
        rng=random.Random(1),
        clock=clock,
        wall=clock.now,
    )
    assert engine.cap.try_acquire()  # the submitter's slot, taken before a job's coroutine
    return engine, store


def done(state: str, task_id: str = "t-1") -> TaskStatus:
    if state == "success":
        return TaskStatus(task_id, "success", "success", result_urls=["https://r.example/v.mp4"])
    return TaskStatus(task_id, state, state)


# -- submit ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "state", "calls"),
    [
        (["t-1"], st.IN_FLIGHT, 1),
        ([RateLimited(429, "slow", limit="rate"), RateLimited(429, "slow", limit="rate"), "t-1"],
         st.IN_FLIGHT, 3),  # 429s are waits, not failed tries
        ([ServerError(500, "own envelope"), "t-1"], st.IN_FLIGHT, 2),  # no task: sent again
        ([ApiConnectionError("refused", sent=False), "t-1"], st.IN_FLIGHT, 2),
        ([ApiConnectionError("cut", sent=True)], st.AMBIGUOUS, 1),  # may exist: never resent
        ([BadAnswer(200, "not JSON")], st.AMBIGUOUS, 1),
        ([InvalidRequest(400, "prompt is required")], st.FAILED, 1),
        ([AuthError(401, "bad key")], st.PENDING, 1),  # the account's problem, not the job's
    ],
)  # fmt: skip
async def test_submit_ends_the_job_where_its_answer_says(
    tmp_path: Path, script: list[Any], state: str, calls: int
) -> None:
    client = ScriptedClient(script)
    engine, store = engine_for(tmp_path, client)
    task_id = await on_fake_time(client.clock, engine.submitter.submit(store.jobs.get("j1")))
    row = store.jobs.get("j1")
    assert (row.state, client.submit_calls) == (state, calls)
    assert task_id == (row.task_id if state == st.IN_FLIGHT else None)
    if state == st.FAILED:
        assert store.db.execute("SELECT fail_code FROM jobs").fetchone()[0] == "HTTP_400"
    if isinstance(script[0], AuthError):
        assert engine.context.stops.submits.is_set()


async def test_a_rate_429_waits_its_retry_after_on_the_run_clock(tmp_path: Path) -> None:
    """A 429 naming the request rate with Retry-After 30: the next submit leaves no sooner
    than 30 s later (the run's backoff may add to it, never take from it)."""
    refused = RateLimited(429, "slow down", limit="rate", retry_after=30.0)
    client = ScriptedClient([refused, "t-1"])
    engine, store = engine_for(tmp_path, client)
    assert await on_fake_time(client.clock, engine.submitter.submit(store.jobs.get("j1"))) == "t-1"
    first, second = client.submit_times
    assert first == START and 30.0 <= second - first <= 60.0


async def test_submit_gives_up_after_the_tries_that_proved_no_task(tmp_path: Path) -> None:
    client = ScriptedClient([ServerError(503, "busy")] * 3)
    engine, store = engine_for(tmp_path, client, max_submit_tries=3)
    assert await on_fake_time(client.clock, engine.submitter.submit(store.jobs.get("j1"))) is None
    assert (store.jobs.get("j1").state, client.submit_calls) == (st.PENDING, 3)
    assert "not submitted after 3 tries" in engine.context.messages[0]
    gaps = [b - a for a, b in itertools.pairwise(client.submit_times)]
    assert all(0 < gap <= engine.config.backoff.cap for gap in gaps)  # backed off, on the clock


async def test_a_stop_ends_a_submits_backoff_at_once(tmp_path: Path) -> None:
    client = ScriptedClient([ServerError(503, "busy")] * 8)
    engine, store = engine_for(tmp_path, client)
    task = asyncio.ensure_future(engine.submitter.submit(store.jobs.get("j1")))
    for _ in range(2000):  # the intent's fsync runs in a thread: real moments, bounded
        if client.clock.sleepers:
            break
        await asyncio.sleep(0.001)
    assert client.submit_calls == 1 and client.clock.sleepers >= 1  # backing off
    engine.request_stop()
    await client.clock.settle()
    assert task.done() and task.result() is None  # no time passed
    assert store.jobs.get("j1").state == st.PENDING and client.clock.now() == START


# -- track -------------------------------------------------------------------------------------


async def _tracked(
    tmp: Path, statuses: list[Any], first_delay: float = 60.0, **config: Any
) -> tuple[Engine, st.Store, ScriptedClient]:
    client = ScriptedClient(["t-1"], statuses)
    engine, store = engine_for(tmp, client, **config)
    row = store.jobs.get("j1")
    assert await on_fake_time(client.clock, engine.submitter.submit(row)) == "t-1"
    track = engine.tracker.track(
        store.jobs.get("j1"), first_delay, task_id="t-1", submitted_at=None
    )
    await on_fake_time(client.clock, track)
    return engine, store, client


async def test_polls_follow_the_schedule_on_the_run_clock(tmp_path: Path) -> None:
    """The first poll at the first delay, then every `poll_every` (5 s, ±20 % jitter, ending on
    the 0.5 s grid): exact times, read off the fake clock."""
    statuses = [done("processing")] * 4 + [done("success")]
    engine, store, client = await _tracked(tmp_path, statuses, first_delay=60.0)
    times = [t - START for t in client.status_times]
    assert 60.0 <= times[0] <= 60.5
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 4 and all(4.0 - 0.5 <= gap <= 6.0 + 0.5 for gap in gaps), gaps
    assert all(round(t / 0.5, 6).is_integer() for t in times)  # on the grid
    assert store.jobs.get("j1").state == st.SUCCEEDED
    assert engine.cap.in_flight == 0  # its slot released exactly once


async def test_an_unreadable_status_never_fails_the_task(tmp_path: Path) -> None:
    statuses = [ServerError(503, "<html>"), ApiConnectionError("reset", sent=True),
                done("processing"), ServerError(502, "bad gateway"), done("success")]  # fmt: skip
    _, store, client = await _tracked(tmp_path, statuses)
    assert store.jobs.get("j1").state == st.SUCCEEDED and client.status_calls == 5
    assert [f.url for f in store.jobs.files_of(store.jobs.get("j1").seq)] == [
        "https://r.example/v.mp4"
    ]


async def test_a_status_outage_parks_the_task_after_the_window(tmp_path: Path) -> None:
    """Unreadable for the whole --status-outage window (30 min by default): the task is not
    polled again in this run, stays in flight, and submits stop (exit 75 later)."""
    engine, store, client = await _tracked(tmp_path, [ServerError(503, "<html>")] * 200)
    assert store.jobs.get("j1").state == st.IN_FLIGHT
    waited = client.status_times[-1] - client.status_times[0]
    assert 1800.0 <= waited <= 1800.0 + engine.config.poll_backoff.cap
    assert engine.context.stops.submits.is_set()


async def test_the_providers_not_found_fails_the_task_after_max_not_found(tmp_path: Path) -> None:
    _, store, client = await _tracked(
        tmp_path, [NotFound(404, "unknown task")] * 3, max_not_found=3
    )
    row = store.jobs.get("j1")
    assert (row.state, client.status_calls) == (st.FAILED, 3)
    assert store.db.execute("SELECT fail_code FROM jobs").fetchone()[0] == "TASK_NOT_FOUND"


async def test_a_failed_task_fails_the_job_with_the_providers_code(tmp_path: Path) -> None:
    failed = TaskStatus("t-1", "failed", "failed", fail_code="CONTENT_POLICY", fail_msg="no")
    _, store, _ = await _tracked(tmp_path, [failed], max_not_found=3)
    assert store.jobs.get("j1").state == st.FAILED
    assert store.db.execute("SELECT fail_code FROM jobs").fetchone()[0] == "CONTENT_POLICY"


async def test_a_stuck_task_is_left_in_flight_after_an_hour(tmp_path: Path) -> None:
    """The documented stuck rule: still processing an hour after its submit, the task is not
    polled again in this run (an hour of polls every 5 s, in no real time)."""
    engine, store, client = await _tracked(tmp_path, [done("processing")] * 2000)
    assert store.jobs.get("j1").state == st.IN_FLIGHT  # never failed: the next run polls it
    assert any("still 'processing'" in m for m in engine.context.messages)
    age = client.status_times[-1] - START
    assert 3600.0 <= age <= 3600.0 + 6.5 and 600 < client.status_calls < 2000


async def test_a_results_lifetime_runs_from_the_injected_wall_clock(tmp_path: Path) -> None:
    engine, store, client = await _tracked(tmp_path, [done("success")])
    expires = store.jobs.expires_at(store.jobs.get("j1").seq)
    assert expires == client.status_times[-1] + engine.config.result_lifetime_s


async def test_callback_news_cuts_a_trackers_sleep_short(tmp_path: Path) -> None:
    """News from a callback wakes the tracker before its timer: it confirms with one status
    request at once (the guard window has long passed), not at the next scheduled poll."""
    client = ScriptedClient(["t-1"], [done("processing"), done("success")])
    engine, store = engine_for(tmp_path, client)
    clock = client.clock
    assert client.clock is not None
    assert await on_fake_time(clock, engine.submitter.submit(store.jobs.get("j1"))) == "t-1"
    track = asyncio.ensure_future(
        engine.tracker.track(store.jobs.get("j1"), 60.0, task_id="t-1", submitted_at=None)
    )
    await clock.run_for(61.0)  # the first poll: still processing
    assert client.status_calls == 1
    await clock.run_for(1.0)
    assert engine.notify("t-1", claims_end=True)
    await clock.settle()
    assert track.done() and client.status_calls == 2
    assert client.status_times[1] == START + 62.0  # woken by the news, not by its timer
    assert store.jobs.get("j1").state == st.SUCCEEDED


@pytest.mark.parametrize(("claim_at", "follow_ups"), [(90.0, [0.5, 1.0, 2.0]), (30.0, [])])
async def test_a_refuted_claim_of_the_end_earns_follow_ups_only_when_plausible(
    tmp_path: Path, claim_at: float, follow_ups: list[float]
) -> None:
    """Callback mode (fallback polls every 30 s): a claim of the end that the status refutes.
    Made after the earliest documented finish (60 s), it is looked at again after 1, 2 and 4
    guard windows (0.5 s each); made before (a forgery mid-generation, an early notice), it
    had its one confirmation. Then the slow callback pace, never the normal pace (issue 25)."""
    statuses = [done("processing")] * 5 + [done("success")]
    client = ScriptedClient(["t-1"], statuses)
    engine, store = engine_for(tmp_path, client)
    engine.receive_callbacks_at("http://127.0.0.1:9/callback/s")
    clock = client.clock
    assert clock is not None
    assert await on_fake_time(clock, engine.submitter.submit(store.jobs.get("j1"))) == "t-1"
    track = asyncio.ensure_future(
        engine.tracker.track(store.jobs.get("j1"), 60.0, task_id="t-1", submitted_at=None)
    )
    await clock.run_for(claim_at)
    assert client.status_calls == 0  # callback mode: the first fallback poll is far off
    assert engine.notify("t-1", claims_end=True)
    await clock.run_for(120.0)
    times = [t - START for t in client.status_times]
    assert times[0] == claim_at  # confirmed at once
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    assert gaps[: len(follow_ups)] == follow_ups
    rest = gaps[len(follow_ups) :]
    assert rest and all(24.0 - 0.5 <= gap <= 36.0 + 0.5 for gap in rest[1:]), gaps  # slow pace
    if not follow_ups:  # the false news moved nothing: the first fallback poll as planned
        assert times[1] == 1.5 * 60.0 + 60.0  # 1.5 x the first delay + the callback grace
    track.cancel()


async def test_every_time_the_state_file_records_follows_the_injected_clock(
    tmp_path: Path,
) -> None:
    """Submit time, the attempt's start and end in the spend ledger, the result's expiry: all
    read the run's wall clock, so a test that moves it moves them all (before, the ledger
    read time.time() on its own)."""
    _, store, client = await _tracked(tmp_path, [done("processing"), done("success")])
    row = store.jobs.get("j1")
    started, ended = store.db.execute("SELECT started_at, ended_at FROM attempts").fetchone()
    assert row.submitted_at == started == START
    assert ended == client.status_times[-1] > START + 60.0


async def test_a_doubtful_submit_closes_the_gate_until_a_probe_is_answered(
    tmp_path: Path,
) -> None:
    """A submit cut on the wire leaves its job ambiguous and closes the submit gate: the next
    submit waits, backing off on the run's clock, and probes a task the state file knows (a
    GET) until the API answers in its own words; only then does it go."""
    client = ScriptedClient(
        ["t-1", ApiConnectionError("cut", sent=True), "t-3"],
        [ServerError(503, "<html>"), done("processing")],
    )
    engine, store = engine_for(tmp_path, client)
    body = {"model": "kling-2-1", "input": {"mode": "master-text-to-video", "prompt": "q"}}
    store.jobs.sync([("j2", "kling-2-1", body), ("j3", "kling-2-1", {**body, "x": 1})])
    submit = engine.submitter.submit
    assert await on_fake_time(client.clock, submit(store.jobs.get("j1"))) == "t-1"
    assert engine.cap.try_acquire()
    assert await on_fake_time(client.clock, submit(store.jobs.get("j2"))) is None
    assert store.jobs.get("j2").state == st.AMBIGUOUS and engine.submitter.gated.gate.in_doubt
    assert await on_fake_time(client.clock, submit(store.jobs.get("j3"))) == "t-3"
    assert client.status_calls == 2  # one unreadable probe, then one answered
    assert client.submit_times[2] >= client.status_times[1] > client.status_times[0]
    assert client.status_times[0] > client.submit_times[1]  # it backed off first
    assert not engine.submitter.gated.gate.in_doubt  # t-3 was answered: open again


async def test_why_submits_stopped_is_recorded_as_data_when_it_happens(tmp_path: Path) -> None:
    """Issue 27: submits stop through one act, `stop_submitting(reason)`, which records the
    reason when it happens (before, seven places set the event and the outcome guessed why)."""
    from batchgen.engine.stops import StopReason

    client = ScriptedClient([AuthError(401, "bad key")])
    engine, store = engine_for(tmp_path, client)
    run = engine.context
    assert await on_fake_time(client.clock, engine.submitter.submit(store.jobs.get("j1"))) is None
    assert run.stops.reasons == [(StopReason.ACCOUNT, "bad key")]
    assert run.stops.submits.is_set() and not run.stops.all.is_set()  # tracking goes on
    assert not run.stops.stop_submitting(StopReason.ACCOUNT, "again")  # said once
    engine.request_stop("stopped at --max-runtime")
    assert [r for r, _ in run.stops.reasons] == [StopReason.ACCOUNT, StopReason.STOPPED]
