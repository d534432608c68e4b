"""An API down for good, a gateway's 404 page, the in-flight cap at its edges: runs end.

The real engine against the scripted fake API (tests/faultkit.py) over loopback, each run
bounded by `asyncio.wait_for` so a run that never ends fails instead of hanging; the cap's
decisions as pure unit tests.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from batchgen import store as st
from batchgen.engine.inflight import CapTarget
from batchgen.engine.outage import OutageWatch
from batchgen.runner import execute
from tests.enginekit import mixed_jobs, options, prepare_state, state_rows
from tests.faultkit import FakeApi, Hit

pytestmark = pytest.mark.timeout(60)

BOUND_S = 15.0  # a run that has not ended by then never would


class ReviewApi(FakeApi):
    """FakeApi plus the answers this review needs: a gateway's HTML 404 page, and a 429
    that says the concurrency cap is full after a delay (so it lands when we choose)."""

    slow_429_s = 0.6

    async def _generic(self, request: web.Request, hit: Hit, what: Any) -> web.StreamResponse:
        if what == "html404":
            hit.answer = what
            return web.Response(
                status=404, text="<html><h1>404 Not Found</h1></html>", content_type="text/html"
            )
        if what == "http429c":
            hit.answer = what
            return self._env(429, "concurrency limit reached: too many running tasks")
        if what == "slow429":
            hit.answer = what
            await asyncio.sleep(self.slow_429_s)
            return self._env(429, "too many running tasks: concurrency limit reached")
        return await super()._generic(request, hit, what)


async def bounded(opts: Any):  # type: ignore[no-untyped-def]
    return await asyncio.wait_for(execute(opts), timeout=BOUND_S)


def states(state: Path) -> list[str]:
    return [r["state"] for r in state_rows(state)]


# -- 1. a gateway's 404 page is not the API's "not found" -------------------------------------


async def test_a_gateways_404_page_on_status_fails_no_paid_task(tmp_path: Path) -> None:
    """Eight HTML 404 pages in a row per task (more than --max-not-found's 5) then normal
    answers: the tasks stay in flight and end done; nothing is failed TASK_NOT_FOUND."""
    n = 3
    state = prepare_state(tmp_path, mixed_jobs(n))
    async with ReviewApi() as api:
        api.hooks["status"] = lambda hit: "html404" if hit.n <= 8 else None
        outcome = await bounded(
            options(
                tmp_path,
                api.base_url,
                poll_after_s=0.02,
                poll_every_s=0.02,
                backoff_base_s=0.002,
                backoff_cap_s=0.01,
                poll_backoff_cap_s=0.01,
            )
        )
    assert states(state) == [st.DONE] * n, state_rows(state)
    assert outcome.exit_code == 0
    assert api.count("submit") == n


async def test_the_apis_own_404_still_means_not_found(tmp_path: Path) -> None:
    """The API's envelope with code 404 is its own word: the task is failed TASK_NOT_FOUND."""
    state = prepare_state(tmp_path, mixed_jobs(1))
    async with ReviewApi() as api:
        api.hooks["status"] = lambda hit: "http404"
        outcome = await bounded(
            options(tmp_path, api.base_url, poll_after_s=0.02, poll_every_s=0.02)
        )
    rows = state_rows(state)
    assert [r["fail_code"] for r in rows] == ["TASK_NOT_FOUND"]
    assert outcome.exit_code == 1


# -- 5. a 429 while none of our tasks exist teaches nothing about our cap ------------------------


def test_a_concurrency_429_with_no_task_of_ours_keeps_the_target() -> None:
    target = CapTarget.start(1000)
    before = target.slots
    assert not target.saturated(0, now=1.0)
    assert target.slots == before and target.learned is None and target.lowered == 0


def test_a_concurrency_429_with_tasks_of_ours_still_lowers_the_target() -> None:
    target = CapTarget.start(1000)
    assert target.saturated(7, now=1.0)
    assert target.slots == 7 and target.learned == 7


# -- 2. an API down for good ends the run, even with every task done before it ----------------


class DownForGood:
    """Every answer is nginx's 502 page from the `after`+1-th submit on, for ever."""

    def __init__(self, after: int) -> None:
        self.after, self.submits, self.down = after, 0, False

    def submit(self, hit: Hit) -> Any:
        self.submits += 1
        self.down = self.down or self.submits > self.after
        return "nginx502" if self.down else None

    def status(self, hit: Hit) -> Any:
        return "nginx502" if self.down else None


async def test_an_api_down_for_good_after_every_task_ended_ends_the_run_75(
    tmp_path: Path,
) -> None:
    """One task at a time: two end done, the third submit meets the page (ambiguous), then
    the API never answers again. The gate's probes of a done task fail for --status-outage:
    submits stop and the run ends 75, the other jobs still plainly pending."""
    n = 6
    state = prepare_state(tmp_path, mixed_jobs(n))
    async with ReviewApi() as api:
        down = DownForGood(after=2)
        api.hooks["submit"], api.hooks["status"] = down.submit, down.status
        outcome = await bounded(
            options(
                tmp_path,
                api.base_url,
                max_in_flight=1,
                poll_after_s=0.02,
                poll_every_s=0.02,
                backoff_base_s=0.002,
                backoff_cap_s=0.02,
                status_outage_s=0.3,
            )
        )
    assert states(state) == [st.DONE] * 2 + [st.AMBIGUOUS] + [st.PENDING] * (n - 3)
    assert outcome.exit_code == 75
    assert api.count("submit") == 3
    assert any("unreadable since" in m for m in outcome.messages), outcome.messages


async def test_an_api_down_for_good_with_tasks_in_flight_ends_the_run_75(
    tmp_path: Path,
) -> None:
    """Tasks in flight when the API goes down: their trackers stop polling after the outage
    window and submits stop; the submit waiting at the gate must see that and end too."""
    n = 6
    state = prepare_state(tmp_path, mixed_jobs(n))
    async with ReviewApi(polls_to_success=1000) as api:
        down = DownForGood(after=2)
        api.hooks["submit"], api.hooks["status"] = down.submit, down.status
        outcome = await bounded(
            options(
                tmp_path,
                api.base_url,
                max_in_flight=3,
                poll_after_s=0.02,
                poll_every_s=0.02,
                backoff_base_s=0.002,
                backoff_cap_s=0.02,
                poll_backoff_cap_s=0.02,
                status_outage_s=0.3,
            )
        )
    rows = states(state)
    assert rows.count(st.IN_FLIGHT) == 2 and rows.count(st.AMBIGUOUS) == 1, rows
    assert outcome.exit_code == 75


# -- 3. submits queued in the rate limiter respect a gate that closed meanwhile ------------------


class DownAfterFirstTask:
    """Every answer is nginx's 502 page once a task exists, for `seconds`."""

    def __init__(self, api: FakeApi, seconds: float) -> None:
        self.api, self.seconds = api, seconds
        self.began: float | None = None

    def hook(self, hit: Hit) -> Any:
        if self.began is None and self.api.tasks:
            self.began = hit.t
        down = self.began is not None and hit.t < self.began + self.seconds
        return "nginx502" if down else None


async def test_submits_queued_for_the_limiter_wait_at_a_gate_closed_meanwhile(
    tmp_path: Path,
) -> None:
    """A tight rate limit queues the submits in the limiter, all past the (open) gate. The
    API goes down after the first task: only the submits that left in that first window meet
    the page; the ones the limiter grants later wait at the gate (a task exists to ask
    about) and go once the API is back, so no other job is ambiguous and none is lost."""
    n = 8
    state = prepare_state(tmp_path, mixed_jobs(n))
    async with ReviewApi() as api:
        outage = DownAfterFirstTask(api, seconds=0.6)
        api.hooks["submit"] = api.hooks["status"] = outage.hook
        outcome = await bounded(
            options(
                tmp_path,
                api.base_url,
                poll_after_s=0.03,
                poll_every_s=0.03,
                rate_limit=2,
                rate_period_s=0.1,
            )
        )
    rows = states(state)
    paged = [h for h in api.hits if h.kind == "submit" and h.answer == "nginx502"]
    assert rows.count(st.AMBIGUOUS) == len(paged) <= 2, (rows, len(paged))
    assert rows.count(st.DONE) == n - len(paged)
    assert outcome.exit_code == 1


# -- 4. a concurrency 429 when only stuck tasks hold our slots ----------------------------------


async def test_a_concurrency_429_with_only_stuck_tasks_of_ours_ends_the_run(
    tmp_path: Path,
) -> None:
    """Two tasks never end (given up as stuck for this run) while the third submit is on the
    wire; its answer, later, is a concurrency 429. No slot can free in this run: the job
    must not wait for ever. It stays pending, the run ends 75 and says why."""
    state = prepare_state(tmp_path, mixed_jobs(3))
    async with ReviewApi(polls_to_success=10**6) as api:
        api.slow_429_s = 1.0
        seen = {"n": 0}

        def third_is_refused(hit: Hit) -> Any:
            seen["n"] += 1
            return "slow429" if seen["n"] == 3 else None

        api.hooks["submit"] = third_is_refused
        outcome = await bounded(
            options(
                tmp_path,
                api.base_url,
                max_in_flight=3,
                poll_after_s=0.02,
                poll_every_s=0.02,
                stuck_after_s=0.1,
            )
        )
    rows = states(state)
    assert sorted(rows) == sorted([st.IN_FLIGHT, st.IN_FLIGHT, st.PENDING]), rows
    assert outcome.exit_code == 75
    assert api.count("submit") == 3
    assert any("concurrency cap is full" in m for m in outcome.messages), outcome.messages


async def test_an_api_down_for_good_from_the_start_ends_the_run_75(tmp_path: Path) -> None:
    """No task exists to ask about, so lone submits are the gate's probes: each meets the
    page (ambiguous). Once nothing was readable for --status-outage, submits stop: the run
    ends 75 with jobs plainly pending, instead of turning the whole batch ambiguous."""
    n = 40
    state = prepare_state(tmp_path, mixed_jobs(n))
    async with ReviewApi() as api:
        down = DownForGood(after=0)
        api.hooks["submit"], api.hooks["status"] = down.submit, down.status
        outcome = await bounded(
            options(
                tmp_path,
                api.base_url,
                max_in_flight=2,
                backoff_base_s=0.05,
                backoff_cap_s=0.05,
                status_outage_s=0.3,
            )
        )
    rows = states(state)
    assert rows.count(st.AMBIGUOUS) == api.count("submit") < n, rows
    assert rows.count(st.PENDING) == n - api.count("submit")
    assert outcome.exit_code == 75


def test_a_probe_outage_is_summed_up_only_once_it_stopped_submits() -> None:
    """Probes count toward the outage under no task; the end-of-run line names it only when
    nothing was readable for the whole window (a lone page at the end says nothing)."""
    watch = OutageWatch(window_s=10.0)
    assert watch.unreadable(None, 100.0, "HTTP 502")
    assert watch.tasks == {} and watch.since == 100.0
    assert watch.summary(105.0) is None and not watch.over(105.0)
    assert watch.over(110.0) and "unreadable since" in (watch.summary(110.0) or "")
    assert watch.readable(None, 111.0) == 11.0 and watch.summary(120.0) is None
