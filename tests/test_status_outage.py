"""Issue 20 item 1: a paid task is never failed because its status could not be read.

The real engine against the scripted fake API (tests/faultkit.py) over loopback: a status
endpoint answering proxy pages, resets and unreadable bodies for a while, then recovering; an
outage longer than the run's outage window (exit 75, the next run finishes); a cron run; and
`batchgen retry`, which polls a task that exists again instead of paying for a new one. Plus
the decision tables on an injected clock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batchgen import store as st
from batchgen.cli import main
from batchgen.engine.outage import OutageWatch, PollVerdict, after_unreadable
from batchgen.runner import execute
from tests.enginekit import mixed_jobs, options, prepare_state, state_rows
from tests.faultkit import FakeApi, FakeTask

pytestmark = pytest.mark.timeout(90)

UNREADABLE = ["http503", "nginx502", "reset", "html", "badjson", "empty503", "http504"]


def fast(tmp: Path, api: FakeApi, **over: Any):
    """Quick polls and a quick, small backoff, so a long outage is many polls, not much time."""
    over.setdefault("poll_after_s", 0.02)
    over.setdefault("poll_every_s", 0.02)
    over.setdefault("backoff_base_s", 0.002)
    over.setdefault("backoff_cap_s", 0.01)
    over.setdefault("poll_backoff_cap_s", 0.01)
    return options(tmp, api.base_url, **over)


def states(state: Path) -> dict[str, str]:
    return {r["id"]: r["state"] for r in state_rows(state)}


async def test_a_status_outage_of_many_polls_fails_no_task(tmp_path: Path) -> None:
    """Each task meets 60 unreadable answers in a row (more than the 50 that used to fail it
    POLL_ERRORS), then the endpoint recovers: every job is done, none failed or resubmitted."""
    n, bad = 4, 60
    state = prepare_state(tmp_path, mixed_jobs(n))
    async with FakeApi() as api:
        api.hooks["status"] = lambda hit: (
            UNREADABLE[hit.n % len(UNREADABLE)] if hit.n <= bad else None
        )
        outcome = await execute(fast(tmp_path, api))
    assert set(states(state).values()) == {st.DONE}, state_rows(state)
    assert outcome.exit_code == 0
    assert api.count("submit") == n
    assert api.count("status") >= n * (bad + 1)


async def test_an_outage_longer_than_the_window_ends_75_and_the_next_run_finishes(
    tmp_path: Path,
) -> None:
    """Nothing readable for the whole outage window: the trackers stop polling for this run
    (keeping their slots), submits stop, the run ends 75 and says so; no job failed. The next
    run, once the endpoint is back, finishes every job without a new submit for the old ones."""
    n = 5
    state = prepare_state(tmp_path, mixed_jobs(n))
    async with FakeApi() as api:
        api.hooks["status"] = lambda hit: "nginx502"
        first = await execute(fast(tmp_path, api, max_in_flight=2, status_outage_s=0.3))
        after_first = state_rows(state)
        submits_first = api.count("submit")
        api.hooks.pop("status")
        second = await execute(fast(tmp_path, api, max_in_flight=2, status_outage_s=0.3))
    assert first.exit_code == 75
    assert not [r for r in after_first if r["state"] in (st.FAILED, st.AMBIGUOUS)], after_first
    in_flight = [r for r in after_first if r["state"] == st.IN_FLIGHT]
    assert len(in_flight) == submits_first == 2 and all(r["task_id"] for r in in_flight)
    assert (
        "unreadable since" in first.messages[0]
        and "2 task(s) left in flight" in (first.messages[0])
    )
    assert second.exit_code == 0
    assert set(states(state).values()) == {st.DONE}
    assert api.count("submit") == n  # the two tasks of the first run were polled, not resent


async def test_a_cron_run_leaves_an_unreadable_task_for_the_next_run(tmp_path: Path) -> None:
    state = prepare_state(tmp_path, mixed_jobs(2))
    async with FakeApi() as api:
        submit_run = await execute(fast(tmp_path, api, no_wait=True))
        api.hooks["status"] = lambda hit: "http503"
        blind = await execute(fast(tmp_path, api, no_wait=True, poll_after_s=0.0))
        api.hooks.pop("status")
        done = await execute(fast(tmp_path, api, no_wait=True, poll_after_s=0.0))
    assert (submit_run.exit_code, blind.exit_code) == (75, 75)
    assert api.count("status", "http503") >= 2
    assert set(states(state).values()) == {st.DONE}, state_rows(state)
    assert done.exit_code == 0 and api.count("submit") == 2


# -- retry polls a task that exists instead of paying for a new one ---------------------------


def _put(state: Path, job_id: str, task_id: str, how: str) -> None:
    """Bring one job to a state through the store's own transitions."""
    s = st.Store(state)
    row = s.jobs.get(job_id)
    assert row is not None
    s.moves.mark_submitting(row.seq)
    s.moves.mark_in_flight(row.seq, task_id)
    if how == "poll_errors":  # what an earlier version left after a status outage
        s.moves.mark_failed(row.seq, st.POLL_ERRORS, "status unreadable 50 times")
    elif how == "provider_failed":
        s.moves.mark_failed(row.seq, "CONTENT_VIOLATION", "no")
    elif how == "not_found":
        s.moves.mark_failed(row.seq, "TASK_NOT_FOUND", "unknown")
    elif how == "download_refused":
        s.moves.mark_succeeded(
            row.seq,
            ["https://cdn.example/x.mp4"],
            expires_at=s._now() + 3600,
            create_time_ms=None,
            complete_time_ms=None,
            cost_time_ms=None,
        )
        s.db.execute(
            "UPDATE jobs SET state=?, fail_code='DOWNLOAD_REFUSED' WHERE seq=?",
            (st.FAILED, row.seq),
        )
    s.close()


@pytest.mark.parametrize(
    "selector",
    [["--failed"], ["--codes", "POLL_ERRORS,DOWNLOAD_REFUSED,CONTENT_VIOLATION"], ["--ids", "*"]],
)
async def test_retry_polls_tasks_that_exist_and_resubmits_provider_failures(
    tmp_path: Path, selector: list[str], capsys
) -> None:
    jobs = mixed_jobs(3)
    state = prepare_state(tmp_path, jobs)
    ids = sorted(job_id for job_id, _, _ in jobs)
    async with FakeApi() as api:
        for (job_id, _, body), how in zip(
            sorted(jobs), ("poll_errors", "download_refused", "provider_failed"), strict=True
        ):
            task_id = f"old-{job_id}"  # a task that exists at the provider
            api.tasks[task_id] = FakeTask(task_id, body)
            _put(state, job_id, task_id, how)
        argv = ["retry", str(state), *[",".join(ids) if a == "*" else a for a in selector]]
        assert main(argv) == 0
        printed = capsys.readouterr().out
        after = {r["id"]: r for r in state_rows(state)}
        submits_before = api.count("submit")
        second = await execute(fast(tmp_path, api))
    assert "1 get a new task, 2 keep theirs and are polled again" in printed
    assert (after[ids[0]]["state"], after[ids[0]]["task_id"]) == (st.IN_FLIGHT, f"old-{ids[0]}")
    assert (after[ids[1]]["state"], after[ids[1]]["task_id"]) == (st.IN_FLIGHT, f"old-{ids[1]}")
    assert (after[ids[2]]["state"], after[ids[2]]["task_id"]) == (st.PENDING, None)
    assert second.exit_code == 0 and set(states(state).values()) == {st.DONE}
    assert submits_before == 0 and api.count("submit") == 1  # only the provider's failure


# -- decision tables --------------------------------------------------------------------------

DAY = 86400.0


@pytest.mark.parametrize(
    ("now", "task_since", "submitted_at", "window", "no_wait", "verdict"),
    [
        (100.0, 100.0, 0.0, 1800.0, False, PollVerdict.WAIT),  # first unreadable answer
        (1899.0, 100.0, 0.0, 1800.0, False, PollVerdict.WAIT),  # inside the window
        (1900.0, 100.0, 0.0, 1800.0, False, PollVerdict.PARK),  # the window is over
        (10 * DAY, 100.0, 0.0, None, False, PollVerdict.WAIT),  # no window: ask for ever
        (100.0, 100.0, 0.0, 1800.0, True, PollVerdict.PARK),  # cron: the next run asks
        (15 * DAY, 14 * DAY, 0.0, None, False, PollVerdict.EXPIRE),  # result lifetime over
        (15 * DAY, 15 * DAY, 0.0, 1800.0, True, PollVerdict.EXPIRE),  # ...whatever the mode
    ],
)
def test_after_unreadable(now, task_since, submitted_at, window, no_wait, verdict) -> None:
    got = after_unreadable(
        now=now,
        task_since=task_since,
        submitted_at=submitted_at,
        window_s=window,
        result_lifetime_s=15 * DAY,
        no_wait=no_wait,
    )
    assert got is verdict


def test_outage_watch_counts_tasks_and_resets_on_any_readable_answer() -> None:
    w = OutageWatch(window_s=60.0)
    assert w.unreadable("a", 10.0, "HTTP 503") is True  # starts the outage
    assert w.unreadable("b", 20.0, "HTTP 502") is False
    assert w.unreadable("a", 30.0, "HTTP 502") is False
    assert (w.since, w.task_since("a", 99.0), w.task_since("b", 99.0)) == (10.0, 10.0, 20.0)
    assert not w.over(69.0) and w.over(70.0)
    w.park("b")
    summary = w.summary()
    assert summary is not None and "2 task(s) left in flight" in summary
    assert "1 no longer polled" in summary and "HTTP 502" in summary
    assert w.readable("a", 80.0) == 70.0  # the outage lasted 70 s
    assert w.since is None and not w.over(1000.0)
    assert w.task_since("a", 99.0) == 99.0 and w.task_since("b", 99.0) == 20.0
    assert w.readable("b", 81.0) is None and w.summary() is None


@pytest.mark.parametrize(
    ("state", "task_id", "code", "results", "expires", "keep"),
    [
        (st.FAILED, "t", st.POLL_ERRORS, False, None, True),  # the status was unreadable
        (st.FAILED, "t", "DOWNLOAD_REFUSED", True, 2000.0, True),  # delivered, download failed
        (st.FAILED, "t", "SOME_NEW_DOWNLOAD_CODE", True, 2000.0, True),
        (st.FAILED, "t", "DOWNLOAD_REFUSED", True, 500.0, False),  # its results are gone
        (st.FAILED, "t", "CONTENT_VIOLATION", False, None, False),  # the provider said failed
        (st.FAILED, "t", "GENERATION_FAILED", False, None, False),
        (st.FAILED, "t", "TASK_NOT_FOUND", False, None, False),  # the provider does not know it
        (st.FAILED, None, "HTTP_400", False, None, False),  # the submit was refused
        (st.EXPIRED, "t", None, True, 500.0, False),
        (st.EXPIRED, "t", None, False, None, False),
        (st.AMBIGUOUS, None, None, False, None, False),
        (st.AMBIGUOUS, "t", None, False, None, True),
        (st.CANCELLED, None, None, False, None, False),
        (st.ORPHANED, None, None, False, None, False),  # its id cannot be sent back
        (st.ORPHANED, "t", None, False, None, False),
    ],
)
def test_retry_keeps_task(state, task_id, code, results, expires, keep) -> None:
    got = st.retry_keeps_task(
        state=state,
        task_id=task_id,
        fail_code=code,
        has_results=results,
        expires_at=expires,
        now=1000.0,
    )
    assert got is keep
