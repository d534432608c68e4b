"""Issue 15 step 5: the engine's submit and track parts on their own, with a scripted client
object (no sockets, no simulator) and a real state file. Every wait is a millisecond, so each
case runs in milliseconds; what is checked is the state the job ends in and the calls made."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchgen import store as st
from batchgen.adapters.answers import BadAnswer, NotFound, TaskStatus
from batchgen.core.policy import Backoff, PollSchedule
from batchgen.engine import Engine, EngineConfig
from batchgen.errors import (
    ApiConnectionError,
    AuthError,
    InvalidRequest,
    RateLimited,
    ServerError,
)

pytestmark = pytest.mark.timeout(20)
QUICK = Backoff(base=0.001, cap=0.002)


class ScriptedClient:
    """Answers each call with the next item of its script: an exception is raised, anything
    else returned; past the script's end, `then` is used."""

    def __init__(self, submits: list[Any], statuses: list[Any] | None = None) -> None:
        self._submits: Iterator[Any] = iter(submits)
        self._statuses: Iterator[Any] = iter(statuses or [])
        self.submit_calls = 0
        self.status_calls = 0
        self.alive_answers = 0
        self.tasks_in_flight = lambda: 0

    async def submit(self, body: dict, *, before_send=None, model=None) -> str:
        if before_send is not None and not await before_send():
            from batchgen.adapters.answers import SubmitSkipped

            raise SubmitSkipped()
        self.submit_calls += 1
        answer = next(self._submits)
        if isinstance(answer, BaseException):
            raise answer
        self.alive_answers += 1
        return answer

    async def status(self, task_id: str, *, model=None, priority: int = 0) -> TaskStatus:
        self.status_calls += 1
        answer = next(self._statuses)
        if isinstance(answer, BaseException):
            raise answer
        return answer


def engine_for(tmp: Path, client: ScriptedClient, **config: Any) -> tuple[Engine, st.Store]:
    store = st.Store(tmp / "s.db")
    body = {"model": "kling-2-1", "input": {"mode": "master-text-to-video", "prompt": "p"}}
    store.sync_jobs([("j1", "kling-2-1", body)])
    settings = {
        "output_dir": tmp,
        "poll": PollSchedule(poll_after=0.001, poll_every=0.001, jitter=0.0),
        "backoff": QUICK,
        "poll_backoff": QUICK,
        **config,
    }
    wall = settings.pop("wall", None)
    extra = {"wall": wall} if wall is not None else {}
    engine = Engine(store, client, None, EngineConfig(**settings), rng=random.Random(1), **extra)
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
    task_id = await engine._submit(store.job("j1"))
    row = store.job("j1")
    assert (row.state, client.submit_calls) == (state, calls)
    assert task_id == (row.task_id if state == st.IN_FLIGHT else None)
    if state == st.FAILED:
        assert store.db.execute("SELECT fail_code FROM jobs").fetchone()[0] == "HTTP_400"
    if isinstance(script[0], AuthError):
        assert engine._stop_submits.is_set()


async def test_submit_gives_up_after_the_tries_that_proved_no_task(tmp_path: Path) -> None:
    client = ScriptedClient([ServerError(503, "busy")] * 3)
    engine, store = engine_for(tmp_path, client, max_submit_tries=3)
    assert await engine._submit(store.job("j1")) is None
    assert (store.job("j1").state, client.submit_calls) == (st.PENDING, 3)
    assert "not submitted after 3 tries" in engine._messages[0]


# -- track -------------------------------------------------------------------------------------


async def _tracked(
    tmp: Path, statuses: list[Any], **config: Any
) -> tuple[Engine, st.Store, ScriptedClient]:
    client = ScriptedClient(["t-1"], statuses)
    engine, store = engine_for(tmp, client, **config)
    row = store.job("j1")
    assert await engine._submit(row) == "t-1"
    await engine._track(store.job("j1"), 0.0, task_id="t-1", submitted_at=None)
    return engine, store, client


async def test_an_unreadable_status_never_fails_the_task(tmp_path: Path) -> None:
    statuses = [ServerError(503, "<html>"), ApiConnectionError("reset", sent=True),
                done("processing"), ServerError(502, "bad gateway"), done("success")]  # fmt: skip
    _, store, client = await _tracked(tmp_path, statuses)
    assert store.job("j1").state == st.SUCCEEDED and client.status_calls == 5
    assert [f.url for f in store.files_of(store.job("j1").seq)] == ["https://r.example/v.mp4"]


async def test_the_providers_not_found_fails_the_task_after_max_not_found(tmp_path: Path) -> None:
    _, store, client = await _tracked(
        tmp_path, [NotFound(404, "unknown task")] * 3, max_not_found=3
    )
    row = store.job("j1")
    assert (row.state, client.status_calls) == (st.FAILED, 3)
    assert store.db.execute("SELECT fail_code FROM jobs").fetchone()[0] == "TASK_NOT_FOUND"


async def test_a_failed_task_fails_the_job_with_the_providers_code(tmp_path: Path) -> None:
    failed = TaskStatus("t-1", "failed", "failed", fail_code="CONTENT_POLICY", fail_msg="no")
    _, store, _ = await _tracked(tmp_path, [failed], max_not_found=3)
    assert store.job("j1").state == st.FAILED
    assert store.db.execute("SELECT fail_code FROM jobs").fetchone()[0] == "CONTENT_POLICY"


async def test_a_stuck_task_is_left_in_flight_for_the_next_run(tmp_path: Path) -> None:
    engine, store, client = await _tracked(
        tmp_path, [done("processing")] * 1000, stuck_after_s=0.02
    )
    assert store.job("j1").state == st.IN_FLIGHT  # never failed: the next run polls it
    assert any("still 'processing'" in m for m in engine._messages)
    assert client.status_calls < 1000


class Wall:
    """A wall clock the test moves: the engine's submit times, stuck rule and lifetimes."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_the_stuck_rule_reads_the_injected_wall_clock(tmp_path: Path) -> None:
    wall = Wall()
    statuses = iter([done("processing")] * 3)

    def poll_then_jump() -> TaskStatus:
        wall.now += 4000.0  # past the default stuck_after_s of 3600 s, in no real time
        return next(statuses)

    client = ScriptedClient(["t-1"], [])
    client.status = lambda task_id, **kw: _answer(poll_then_jump)  # type: ignore[method-assign]
    engine, store = engine_for(tmp_path, client, wall=wall)
    assert await engine._submit(store.job("j1")) == "t-1"
    await engine._track(store.job("j1"), 0.0, task_id="t-1", submitted_at=wall.now)
    assert store.job("j1").state == st.IN_FLIGHT
    assert any("4000 s after its submit" in m for m in engine._messages), engine._messages


async def _answer(make):  # the client's coroutine shape
    return make()


async def test_a_results_lifetime_runs_from_the_injected_wall_clock(tmp_path: Path) -> None:
    wall = Wall(5_000_000.0)
    engine, store = engine_for(tmp_path, ScriptedClient(["t-1"], [done("success")]), wall=wall)
    assert await engine._submit(store.job("j1")) == "t-1"
    await engine._track(store.job("j1"), 0.0, task_id="t-1", submitted_at=wall.now)
    expires = store.expires_at(store.job("j1").seq)
    assert expires == wall.now + engine.config.result_lifetime_s
