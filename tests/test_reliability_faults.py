"""Issue 9, fault matrix: the real engine (`runner.execute`) against a scripted fake API
(tests/faultkit.py) and, for callbacks, the simulator. Each case asserts its documented outcome
and counts what the server saw; nothing here times the client.

Fault -> documented outcome:
- 429 storm with Retry-After -> the whole client pauses; the run completes; each 429 is
  counted once.
- 429 storm without Retry-After -> backoff per request; the run completes.
- 429 for longer than the per-run submit budget (max_submit_tries) -> a 429 is not a failed
  try: the run waits for capacity and completes, one task per job.
- 500/503 in the API's envelope, or code 500 in a 200, on submit -> retried; 500/502/503
  pages (not the envelope) on a poll -> retried; each body creates exactly one task. (A
  proxy's page on a submit makes the job ambiguous: tests/test_submit_ambiguity.py.)
- connection refused (nothing sent) -> retried, never ambiguous; exit 75 while it lasts.
- reset after the request was sent -> submit: ambiguous, not resubmitted unless
  --resubmit-ambiguous; poll: retried.
- submit hangs past the read timeout -> ambiguous. Poll hangs -> retried.
- HTTP 200 envelope with code 500 / 429 -> retried.
- malformed JSON / HTML on a 200 -> submit: ambiguous; poll: retried.
- `resultJson` not JSON -> poll retried with backoff, never failed: after the run's outage
  window the task is left in flight for the next run (exit 75; tests/test_status_outage.py).
- a task flipping back to pending -> kept polling until terminal.
- a task unknown to the server (404) -> TASK_NOT_FOUND after max_not_found; never resubmitted.
- 401 mid-run -> exit 3; in-flight tasks stay in_flight; the next run finishes them.
- cut, trickled, stalled and Range-ignoring downloads -> resumed or restarted; sha256 verified.
- forged / duplicated callbacks -> refused, or confirmed by a poll; nothing moves twice.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from batchgen import runner
from batchgen import store as st
from batchgen.adapters.client import ApiClient
from batchgen.adapters.download.attempt import Downloader
from batchgen.engine import Engine
from batchgen.hooks import RunHooks
from batchgen.runner import execute
from tests.enginekit import mixed_jobs, options, prepare_state, state_rows
from tests.faultkit import FakeApi, canonical, per_key, sha_of

pytestmark = pytest.mark.timeout(60)


def fast(tmp: Path, api: FakeApi, **over: Any):
    """Run options against the fake: poll soon and often, small backoff."""
    over.setdefault("poll_after_s", 0.03)
    over.setdefault("poll_every_s", 0.03)
    return options(tmp, api.base_url, **over)


def engine_tweak(**config: Any):
    def hook(engine: Engine) -> None:
        for k, v in config.items():
            setattr(engine.config, k, v)

    return hook


@pytest.fixture
def short_timeouts(monkeypatch):
    """The API client's and downloader's read timeouts, 30 s and 60 s in production, cut to
    0.5 s so that a hang is seen quickly."""

    def short(cls):  # the run passes its options' timeouts: these win over them
        return lambda *a, **kw: cls(*a, **{**kw, "read_timeout": 0.5})

    monkeypatch.setattr(runner, "ApiClient", short(ApiClient))
    monkeypatch.setattr(runner, "Downloader", short(Downloader))


def by_state(state: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in state_rows(state):
        out.setdefault(r["state"], []).append(r)
    return out


def assert_done_and_verified(state: Path, out: Path, n: int) -> None:
    rows = state_rows(state)
    assert [r["state"] for r in rows] == [st.DONE] * n, rows
    for r in rows:
        (f,) = r["files"]
        assert (out / f.path).is_file()
        assert f.sha256 == sha_of(r["task_id"])
        assert hashlib.sha256((out / f.path).read_bytes()).hexdigest() == f.sha256


def bodies(jobs) -> list[str]:
    return [canonical(b) for _, _, b in jobs]


# -- 429 -------------------------------------------------------------------------------------


async def test_429_storm_with_retry_after_pauses_the_whole_client(tmp_path: Path) -> None:
    n, ra = 6, 0.6
    state = prepare_state(tmp_path, mixed_jobs(n))
    got: dict[str, Engine] = {}
    storm: dict[str, float] = {}

    async with FakeApi(polls_to_success=10**9) as api:

        def status_hook(hit):
            # Three 429s with Retry-After, one per pause; every other poll is answered, so
            # only a client-wide pause keeps the other jobs quiet.
            starts = storm.setdefault("starts", [])
            due = len(starts) < 3 and api.count("status") >= 30 * (len(starts) + 1)
            if due and (not starts or hit.t > starts[-1] + ra):
                starts.append(hit.t)
                return f"http429ra={ra}"
            if len(starts) == 3 and hit.t > starts[-1] + ra:
                return "success"
            return "processing"

        api.hooks["status"] = status_hook
        outcome = await execute(
            fast(tmp_path, api), RunHooks(on_engine=lambda e: got.__setitem__("e", e))
        )
    starts = storm["starts"]
    in_pause = [[h for h in api.hits if t0 < h.t < t0 + 0.9 * ra] for t0 in starts]
    n429 = api.count("status", f"http429ra={ra}")
    assert outcome.exit_code == 0, outcome
    assert_done_and_verified(state, tmp_path / "out", n)
    # Only requests already on the wire when the first 429 left (one per other job at most)
    # reach the server during the pause; without a client-wide pause each job would poll
    # about every 0.03 s: some 100 requests per pause.
    assert len(starts) == n429 == 3
    for hits in in_pause:
        assert len(hits) <= n - 1, [(h.kind, h.n, h.answer) for h in hits]
    assert got["e"].stats.rate_limited == n429  # each 429 counted exactly once
    assert all(v == 1 for v in api.created.values()) and len(api.created) == n


async def test_429_storm_without_retry_after_completes(tmp_path: Path) -> None:
    n = 6
    jobs = mixed_jobs(n)
    state = prepare_state(tmp_path, jobs)
    got: dict[str, Engine] = {}
    async with FakeApi() as api:
        api.hooks["submit"] = per_key(each=["http429"] * 5 + ["env429"])
        api.hooks["status"] = per_key(each=["http429", "env429", "http429", "processing"])
        outcome = await execute(
            fast(tmp_path, api), RunHooks(on_engine=lambda e: got.__setitem__("e", e))
        )
    assert outcome.exit_code == 0, outcome
    assert_done_and_verified(state, tmp_path / "out", n)
    assert api.count("submit", "http429") + api.count("submit", "env429") == 6 * n
    assert got["e"].stats.rate_limited == 6 * n + 3 * n  # no 429 counted twice or missed
    assert sorted(api.created) == sorted(bodies(jobs))
    assert set(api.created.values()) == {1}


async def test_429_longer_than_the_submit_budget_is_not_a_failed_try(tmp_path: Path) -> None:
    """Issue 20: a 429 proves no task was made and says "wait", not "this job failed": more
    429s than EngineConfig.max_submit_tries (8) still end in one task per job, in one run."""
    n = 3
    jobs = mixed_jobs(n)
    state = prepare_state(tmp_path, jobs)
    async with FakeApi() as api:
        api.hooks["submit"] = per_key(each=["http429"] * 10)
        outcome = await execute(fast(tmp_path, api))
    assert outcome.exit_code == 0, outcome
    assert not any("not submitted" in m for m in outcome.messages)
    assert_done_and_verified(state, tmp_path / "out", n)
    assert api.count("submit", "http429") == 10 * n
    assert set(api.created.values()) == {1} and len(api.created) == n


# -- 5xx, resets, hangs ------------------------------------------------------------------------


async def test_5xx_on_submit_and_poll_are_retried(tmp_path: Path) -> None:
    n = 6
    jobs = mixed_jobs(n)
    state = prepare_state(tmp_path, jobs)
    async with FakeApi() as api:
        api.hooks["submit"] = per_key(each=["http500env", "http503env", "env500"])
        api.hooks["status"] = per_key(each=["http503", "http500", "env500", "http502"])
        outcome = await execute(fast(tmp_path, api))
    assert outcome.exit_code == 0, outcome
    assert_done_and_verified(state, tmp_path / "out", n)
    assert sorted(api.created) == sorted(bodies(jobs)) and set(api.created.values()) == {1}


async def test_connection_refused_is_retried_never_ambiguous(tmp_path: Path) -> None:
    """Nothing listens: the request surely never left, so the job stays plainly pending."""
    import socket

    n = 2
    state = prepare_state(tmp_path, mixed_jobs(n))
    with socket.socket() as s:  # a port that is bound but not listening refuses connections
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        first = await execute(options(tmp_path, f"http://127.0.0.1:{port}/api/v1"))
    rows = state_rows(state)
    assert first.exit_code == 75, first
    assert [(r["state"], r["attempts"]) for r in rows] == [(st.PENDING, 0)] * n
    async with FakeApi() as api:
        second = await execute(fast(tmp_path, api))
    assert second.exit_code == 0
    assert_done_and_verified(state, tmp_path / "out", n)


@pytest.mark.parametrize("fault", ["reset", "reset_after"])
async def test_reset_after_sending_a_submit_is_ambiguous(tmp_path: Path, fault: str) -> None:
    """`reset`: the server drops the connection before creating the task; `reset_after`: after
    creating it (the simulator's p_reset_after_create). The client cannot tell them apart: both
    are ambiguous, never resubmitted, until the user says --resubmit-ambiguous."""
    n = 4
    jobs = mixed_jobs(n)
    state = prepare_state(tmp_path, jobs)
    victims = bodies(jobs)[:2]
    async with FakeApi() as api:
        api.hooks["submit"] = per_key({b: [fault] for b in victims})
        first = await execute(fast(tmp_path, api))
        rows = by_state(state)
        assert first.exit_code == 1, first
        assert sorted(r["id"] for r in rows[st.AMBIGUOUS]) == ["job-0000", "job-0001"]
        assert len(rows[st.DONE]) == 2
        again = await execute(fast(tmp_path, api))
        assert again.exit_code == 1
        assert api.count("submit") == n  # the rerun sent nothing
        final = await execute(fast(tmp_path, api, resubmit_ambiguous=True))
    assert final.exit_code == 0, final
    assert_done_and_verified(state, tmp_path / "out", n)
    assert api.count("submit") == n + 2
    expected_created = 2 if fault == "reset_after" else 1
    assert [api.created[b] for b in victims] == [expected_created] * 2


async def test_reset_on_a_poll_is_retried(tmp_path: Path) -> None:
    n = 4
    state = prepare_state(tmp_path, mixed_jobs(n))
    async with FakeApi() as api:
        api.hooks["status"] = per_key(each=["reset", "processing", "reset"])
        outcome = await execute(fast(tmp_path, api))
    assert outcome.exit_code == 0
    assert_done_and_verified(state, tmp_path / "out", n)
    assert set(api.created.values()) == {1}


async def test_hung_submit_is_ambiguous_hung_poll_is_retried(
    tmp_path: Path, short_timeouts
) -> None:
    n = 4
    jobs = mixed_jobs(n)
    state = prepare_state(tmp_path, jobs)
    async with FakeApi(hang_s=5.0) as api:
        api.hooks["submit"] = per_key({bodies(jobs)[0]: ["hang_after"], bodies(jobs)[1]: ["hang"]})
        api.hooks["status"] = per_key(each=["hang", "processing"])
        outcome = await execute(fast(tmp_path, api))
    rows = by_state(state)
    assert outcome.exit_code == 1, outcome
    assert sorted(r["id"] for r in rows[st.AMBIGUOUS]) == ["job-0000", "job-0001"]
    assert sorted(r["id"] for r in rows[st.DONE]) == ["job-0002", "job-0003"]
    assert api.count("submit") == n
    hung = [h for h in api.hits if h.kind == "status" and h.answer == "hang"]
    assert len(hung) == 2  # one per task that got an id, each followed by a good poll


# -- answers that cannot be read ---------------------------------------------------------------


async def test_malformed_answers_submit_ambiguous_poll_retried(tmp_path: Path) -> None:
    n = 4
    jobs = mixed_jobs(n)
    state = prepare_state(tmp_path, jobs)
    async with FakeApi() as api:
        api.hooks["submit"] = per_key({bodies(jobs)[0]: ["badjson"], bodies(jobs)[1]: ["html"]})
        api.hooks["status"] = per_key(each=["badjson", "html", "processing", "badjson"])
        outcome = await execute(fast(tmp_path, api))
    rows = by_state(state)
    assert outcome.exit_code == 1
    assert sorted(r["id"] for r in rows[st.AMBIGUOUS]) == ["job-0000", "job-0001"]
    assert len(rows[st.DONE]) == 2


async def test_result_json_not_json_is_retried_never_failed(tmp_path: Path) -> None:
    n = 3
    state = prepare_state(tmp_path, mixed_jobs(n))
    async with FakeApi() as api:
        # task-0001: twice unreadable, then fine; the others: unreadable for ever
        api.hooks["status"] = lambda hit: (
            None if hit.key == "task-0001" and hit.n > 2 else "result_not_json"
        )
        outcome = await execute(fast(tmp_path, api, status_outage_s=0.3, poll_backoff_cap_s=0.05))
    rows = {r["task_id"]: r for r in state_rows(state)}
    assert outcome.exit_code == 75
    assert rows["task-0001"]["state"] == st.DONE
    for t in ("task-0002", "task-0003"):
        assert (rows[t]["state"], rows[t]["fail_code"]) == (st.IN_FLIGHT, None)
        assert api.count("status") >= 4
    assert api.count("submit") == n  # a task left for the next run is never resubmitted


async def test_task_flipping_back_to_pending_keeps_polling(tmp_path: Path) -> None:
    n = 3
    state = prepare_state(tmp_path, mixed_jobs(n))
    flips = ["processing", "pending", "processing", "pending", "pending", "success"]
    async with FakeApi() as api:
        api.hooks["status"] = per_key(each=flips)
        outcome = await execute(fast(tmp_path, api))
    assert outcome.exit_code == 0
    assert_done_and_verified(state, tmp_path / "out", n)
    assert api.count("status") == n * len(flips)
    assert api.count("submit") == n


async def test_unknown_task_fails_task_not_found_never_resubmitted(tmp_path: Path) -> None:
    n = 3
    state = prepare_state(tmp_path, mixed_jobs(n))
    async with FakeApi() as api:
        api.hooks["status"] = lambda hit: "http404" if hit.key == "task-0002" else None
        outcome = await execute(fast(tmp_path, api))
        again = await execute(fast(tmp_path, api))
    rows = {r["task_id"]: r for r in state_rows(state)}
    assert outcome.exit_code == again.exit_code == 1
    assert (rows["task-0002"]["state"], rows["task-0002"]["fail_code"]) == (
        st.FAILED,
        "TASK_NOT_FOUND",
    )
    assert api.count("status", "http404") == 5  # EngineConfig.max_not_found, not one more
    assert api.count("submit") == n


async def test_401_mid_run_exits_3_and_the_next_run_finishes(tmp_path: Path) -> None:
    n = 6
    jobs = mixed_jobs(n)
    state = prepare_state(tmp_path, jobs)
    async with FakeApi(polls_to_success=3) as api:
        # the key is revoked once 3 tasks exist
        api.hooks["submit"] = lambda hit: "http401" if len(api.tasks) >= 3 else None
        api.hooks["status"] = lambda hit: "http401" if len(api.tasks) >= 3 else None
        first = await execute(fast(tmp_path, api))
        rows = by_state(state)
        assert first.exit_code == 3, first
        assert "Invalid API key" in (first.account_error or "")
        assert len(rows[st.IN_FLIGHT]) == 3 and len(rows[st.PENDING]) == 3
        api.hooks.clear()
        second = await execute(fast(tmp_path, api))
    assert second.exit_code == 0, second
    assert_done_and_verified(state, tmp_path / "out", n)
    assert sorted(api.created) == sorted(bodies(jobs)) and set(api.created.values()) == {1}


# -- downloads ---------------------------------------------------------------------------------


async def test_cut_trickled_stalled_and_range_ignored_downloads(
    tmp_path: Path, short_timeouts
) -> None:
    n = 5
    state = prepare_state(tmp_path, mixed_jobs(n))
    plans = {
        "task-0001": ["cut", "cut", "cut"],
        "task-0002": ["trickle"],
        "task-0003": ["cut", "ignore_range", "cut", "ignore_range"],
        "task-0004": ["stall", "cut"],
        "task-0005": ["cut", "trickle"],
    }
    async with FakeApi(hang_s=3.0) as api:
        api.hooks["file"] = per_key(plans)
        outcome = await execute(fast(tmp_path, api))
    assert outcome.exit_code == 0, outcome
    assert_done_and_verified(state, tmp_path / "out", n)
    # a cut file is resumed where it stopped, not fetched again from the start
    ranged = [h for h in api.hits if h.kind == "file" and h.key == "task-0001" and h.n > 1]
    assert ranged and all("Range" in h.headers for h in ranged)
    # result files live on a CDN: the API key is never sent there
    assert not [h for h in api.hits if h.kind == "file" and "Authorization" in h.headers]
    assert not list((tmp_path / "out").glob("*.part*"))


# -- callbacks ---------------------------------------------------------------------------------


async def test_forged_and_duplicated_callbacks_change_nothing(tmp_path: Path) -> None:
    """Every delivery doubled by the simulator, plus a forger who knows the URL and claims
    each running task failed: the claims are confirmed by a status request, never believed,
    and every job ends done once. tests/test_callbacks.py holds the finer-grained cases."""
    from batchgen.simulator import Simulator
    from tests.enginekit import KEY, SCALE, assert_files_verified

    n = 8
    state = prepare_state(tmp_path, mixed_jobs(n))
    got: dict[str, Any] = {}
    answers: list[int] = []

    async with Simulator(
        api_keys=frozenset({KEY}), time_scale=SCALE * 3, seed=5, p_callback_duplicate=1.0
    ) as sim:

        def on_engine(engine: Engine) -> None:
            got["engine"] = engine

        def on_receiver(rec) -> None:
            got["receiver"] = rec

        opts = options(
            tmp_path,
            sim.base_url,
            callback_listen=("127.0.0.1", 0),
            callback_grace_s=60 * SCALE * 3,
            callback_poll_every_s=30 * SCALE * 3,
        )
        run = asyncio.create_task(
            execute(opts, RunHooks(on_engine=on_engine, on_receiver=on_receiver))
        )
        from tests.conftest import eventually

        await eventually(lambda: "engine" in got and got["engine"].stats.submitted == n)
        rec = got["receiver"]
        url = rec.url_for(None)
        async with aiohttp.ClientSession() as http:
            for r in state_rows(state):
                forged = {
                    "code": 200,
                    "message": "success",
                    "data": {
                        "taskId": r["task_id"],
                        "state": "failed",
                        "failCode": "CONTENT_VIOLATION",
                        "failMsg": "forged",
                    },
                }
                for target in (url, rec.local_base + "/callback/" + "B" * 43):
                    async with http.post(target, json=forged) as resp:
                        answers.append(resp.status)
        outcome = await run
        await eventually(lambda: sim.stats()["callbacks"]["pending"] == 0)
        stats = sim.stats()
        assert assert_files_verified(sim, state, tmp_path / "out") == n
    assert outcome.exit_code == 0, outcome
    assert answers == [200, 403] * n
    assert all(r["state"] == st.DONE for r in state_rows(state))
    assert stats["submits_per_body"]["max_submits_of_one_body"] == 1
    assert rec.counts["forbidden"] == n


# -- gaps found by this suite, fixed in batchgen/adapters/client.py ---------------------------


async def test_trickled_api_answer_is_abandoned_and_the_poll_retried(
    tmp_path: Path, short_timeouts
) -> None:
    state = prepare_state(tmp_path, mixed_jobs(1))
    async with FakeApi(hang_s=30.0) as api:
        api.hooks["status"] = per_key(each=["trickle_answer"])
        # bound the test: stop after 4 s (then 1 s of drain); a fixed client abandons the
        # trickled poll after a few read timeouts (0.5 s here), polls again and finishes
        outcome = await execute(fast(tmp_path, api, max_runtime_s=4.0))
    assert outcome.exit_code == 0, outcome
    assert_done_and_verified(state, tmp_path / "out", 1)


async def test_429_without_retry_after_pauses_the_whole_client(tmp_path: Path) -> None:
    n, base = 6, 0.6
    state = prepare_state(tmp_path, mixed_jobs(n))
    storm: list[float] = []
    async with FakeApi() as api:

        def status_hook(hit):
            if not storm and api.count("status") >= 30:
                storm.append(hit.t)
                return "http429"
            if storm and hit.t > storm[0] + base:
                return "success"
            return "processing"

        api.hooks["status"] = status_hook
        outcome = await execute(
            fast(tmp_path, api, rate_pause_base_s=base, rate_pause_cap_s=2 * base)
        )
    assert outcome.exit_code == 0, outcome
    assert_done_and_verified(state, tmp_path / "out", n)
    # policy.rate_limit_pause(1, Backoff(base, cap), None) == base: the first 429 without
    # Retry-After should quiet the whole client for `base` seconds.
    t0 = storm[0]
    in_pause = [h for h in api.hits if t0 < h.t < t0 + 0.9 * base]
    assert len(in_pause) <= n - 1, len(in_pause)
