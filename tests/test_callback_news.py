"""Callback news is never dropped (issue 18): the real engine and receiver against a scripted
API whose status says `processing` until the test says the task has ended. Fallback polls are
set hours away, so only callbacks can end these jobs: a dropped one hangs the test."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from batchgen import store as st
from batchgen.hooks import RunHooks
from batchgen.runner import execute
from batchgen.settings import RunOptions
from tests.conftest import eventually
from tests.enginekit import KEY, mixed_jobs, prepare_state, state_rows
from tests.faultkit import FakeApi

pytestmark = pytest.mark.timeout(60)

HOURS = 3600.0


class Scripted:
    """A FakeApi whose one task runs until `end()`; records when each callback was posted."""

    def __init__(self, api: FakeApi) -> None:
        self.api = api
        self.ended = False
        api.hooks["status"] = lambda hit: None if self.ended else "processing"

    def end(self) -> None:
        self.ended = True

    def status_times(self) -> list[float]:
        return [h.t for h in self.api.hits if h.kind == "status"]


def one_job_options(tmp: Path, api: FakeApi, got: dict[str, Any], **kw: Any) -> RunOptions:
    """Real-world defaults (scale 1: the guard window is 0.5 s), fallback polls hours away."""
    opts = RunOptions.from_flat(
        state_path=tmp / "out" / "batchgen.db",
        output_dir=tmp / "out",
        base_url=api.base_url,
        api_key=KEY,
        callback_listen=("127.0.0.1", 0),
        callback_grace_s=HOURS,
        callback_poll_every_s=HOURS,
        seed=3,
    )
    return opts.replace(**kw)


def envelope(task_id: str, state: str) -> bytes:
    data: dict[str, Any] = {"taskId": task_id, "state": state}
    if state == "success":
        data["resultJson"] = json.dumps({"resultUrls": ["https://cdn.example/forged.mp4"]})
    return json.dumps({"code": 200, "message": "success", "data": data}).encode()


async def start_one(tmp_path: Path, api: FakeApi, **kw: Any):
    state = prepare_state(tmp_path, mixed_jobs(1))
    got: dict[str, Any] = {}
    hooks = RunHooks(
        on_engine=lambda e: got.__setitem__("engine", e),
        on_receiver=lambda r: got.__setitem__("receiver", r),
    )
    run = asyncio.create_task(execute(one_job_options(tmp_path, api, got, **kw), hooks))
    await eventually(lambda: "engine" in got and got["engine"].stats.submitted == 1)
    (row,) = state_rows(state)
    return run, got, state, row["task_id"], got["receiver"].url_for(None)


async def post(http: aiohttp.ClientSession, url: str, body: bytes) -> int:
    async with http.post(url, data=body) as r:
        await r.read()
        return r.status


async def test_a_processing_notice_costs_no_request_and_keeps_the_final_word(
    tmp_path: Path,
) -> None:
    """A `processing` notice claims nothing a request would need to check: it wakes nobody
    (before issue 25 it cost a confirmation each). The final word still ends the job with
    one request."""
    async with FakeApi() as api, aiohttp.ClientSession() as http:
        script = Scripted(api)
        run, got, state, task_id, url = await start_one(tmp_path, api)
        assert await post(http, url, envelope(task_id, "processing")) == 200
        assert got["receiver"].counts["accepted"] == 1  # taken as news of a known task
        script.end()
        assert await post(http, url, envelope(task_id, "success")) == 200
        outcome = await asyncio.wait_for(run, 30)
    assert outcome.exit_code == 0, outcome
    assert len(script.status_times()) == 1  # the final word's confirmation only
    assert [r["state"] for r in state_rows(state)] == [st.DONE]


async def test_an_early_post_does_not_push_the_final_word_out(tmp_path: Path) -> None:
    """An early (or forged) claim of the end, confirmed as still running; the real end 0.5 s
    later. Before the fix the second post was answered "duplicate" and dropped."""
    async with FakeApi() as api, aiohttp.ClientSession() as http:
        script = Scripted(api)
        run, _got, state, task_id, url = await start_one(tmp_path, api)
        assert await post(http, url, envelope(task_id, "success")) == 200
        await eventually(lambda: len(script.status_times()) == 1)
        await asyncio.sleep(0.5)
        script.end()
        assert await post(http, url, envelope(task_id, "success")) == 200
        outcome = await asyncio.wait_for(run, 30)
    assert outcome.exit_code == 0, outcome
    assert len(script.status_times()) == 2
    (row,) = state_rows(state)
    assert row["state"] == st.DONE and "forged" not in row["files"][0].url


async def test_a_burst_of_posts_costs_two_requests_and_keeps_the_last_news(
    tmp_path: Path,
) -> None:
    """100 posts for one task: 99 while it runs, the last once it has ended. The first wakes
    a confirmation; all the others are confirmed together when the guard window ends, by a
    request that sees the end."""
    async with FakeApi() as api, aiohttp.ClientSession() as http:
        script = Scripted(api)
        # A window long enough for 100 posts on a loaded machine: this is about coalescing.
        run, _got, state, task_id, url = await start_one(tmp_path, api, callback_guard_s=3.0)
        body = envelope(task_id, "success")
        answers = [await post(http, url, body)]
        await eventually(lambda: len(script.status_times()) == 1)  # confirmed: still running
        answers += await asyncio.gather(*(post(http, url, body) for _ in range(98)))
        script.end()
        answers.append(await post(http, url, body))
        outcome = await asyncio.wait_for(run, 30)
    assert answers == [200] * 100
    assert outcome.exit_code == 0, outcome
    assert len(script.status_times()) <= 2
    assert [r["state"] for r in state_rows(state)] == [st.DONE]


async def test_a_plausible_claim_the_status_refutes_is_looked_at_again_briefly(
    tmp_path: Path,
) -> None:
    """A callback says the task ended after it could have (here the earliest finish is
    10 ms), its status says it still runs (a status that lags its webhook), and the provider
    does not post again. The task is looked at again after 1, 2 and 4 guard windows, not
    left for the slow fallback (hours here), and not polled at the normal pace either."""
    async with FakeApi() as api, aiohttp.ClientSession() as http:
        script = Scripted(api)
        run, _got, state, task_id, url = await start_one(
            tmp_path, api, poll_after_s=0.01, callback_guard_s=0.5
        )
        await asyncio.sleep(0.05)  # past the earliest finish
        assert await post(http, url, envelope(task_id, "success")) == 200
        await eventually(lambda: len(script.status_times()) == 1)  # confirmed: still running
        script.end()  # the end is real now, and no callback says so
        outcome = await asyncio.wait_for(run, 30)
    assert outcome.exit_code == 0, outcome
    assert [r["state"] for r in state_rows(state)] == [st.DONE]
    times = script.status_times()
    assert len(times) == 2  # the claim's confirmation, then the first follow-up
    assert times[1] - times[0] >= 0.5  # one guard window later


async def test_forged_claims_cost_one_confirmation_each_then_fewer(tmp_path: Path) -> None:
    """Issue 25 item 2: whoever knows the callback URL claims the end mid-generation, again
    and again. Each claim made before the task could end is confirmed (the guard window
    doubling with each refuted one), and never puts the task on the normal pace: before,
    one forged claim cost a poll every --poll-every until the end."""
    async with FakeApi() as api, aiohttp.ClientSession() as http:
        script = Scripted(api)
        run, _got, state, task_id, url = await start_one(
            tmp_path, api, poll_every_s=0.05, callback_guard_s=0.2
        )
        for n in range(1, 4):  # a claim, confirmed before the next one is posted
            assert await post(http, url, envelope(task_id, "success")) == 200
            await eventually(lambda n=n: len(script.status_times()) == n)
        await asyncio.sleep(0.5)  # ten normal-pace polls' worth of time: none is sent
        assert len(script.status_times()) == 3
        times = script.status_times()
        assert times[2] - times[1] >= 0.4  # after two refuted claims the guard is doubled
        script.end()
        assert await post(http, url, envelope(task_id, "success")) == 200
        outcome = await asyncio.wait_for(run, 30)
    assert outcome.exit_code == 0, outcome
    assert len(script.status_times()) == 4
    assert [r["state"] for r in state_rows(state)] == [st.DONE]
