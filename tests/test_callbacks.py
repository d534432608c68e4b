"""Callback mode: the receiver's answers (stub engine), then the real engine, the real receiver
and the simulator's callback delivery over loopback."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from batchgen import callbacks as cb
from batchgen import store as st
from batchgen.callbacks import CallbackReceiver
from batchgen.commands import callback_options
from batchgen.engine import Engine
from batchgen.errors import UsageError
from batchgen.hooks import RunHooks
from batchgen.runner import execute
from batchgen.settings import RunOptions
from batchgen.simulator import Simulator
from tests.conftest import eventually
from tests.enginekit import (
    KEY,
    SCALE,
    assert_files_verified,
    mixed_jobs,
    options,
    prepare_state,
    state_rows,
)

pytestmark = pytest.mark.timeout(60)

SECRET = "s3cr3t-" + "x" * 36
LOOPBACK = ("127.0.0.1", 0)


# -- the receiver against a stub engine -----------------------------------------------------


class StubEngine:
    def __init__(self, known: set[str], waiting: set[str]) -> None:
        self.known, self.waiting = known, waiting
        self.notified: list[tuple[str, Any]] = []

    def knows_task(self, task_id: str) -> bool:
        return task_id in self.known

    def notify(self, task_id: str, status: Any = None, **_: Any) -> bool:
        self.notified.append((task_id, status))
        return task_id in self.waiting


def env(task_id: Any = "task_a", state: str = "success", **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"taskId": task_id, "state": state}
    if state == "success":
        data["resultJson"] = json.dumps({"resultUrls": ["https://cdn.example/v.mp4"]})
    if state == "failed":
        data.update(failCode="CONTENT_VIOLATION", failMsg="no")
    data.update(extra)
    return {"code": 200, "message": "success", "data": data}


@pytest.fixture
async def stub_receiver():
    made: list[CallbackReceiver] = []

    async def make(trust: bool = False) -> tuple[CallbackReceiver, StubEngine]:
        engine = StubEngine({"task_a", "task_b", "task_done"}, {"task_a", "task_b"})
        rec = CallbackReceiver(
            engine,
            SECRET,
            host="127.0.0.1",
            port=0,
            trust=trust,  # type: ignore[arg-type]
        )
        await rec.start()
        made.append(rec)
        return rec, engine

    yield make
    for rec in made:
        await rec.stop()


async def post(
    http: aiohttp.ClientSession,
    url: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    method: str = "POST",
) -> int:
    data = raw if raw is not None else json.dumps(body).encode()
    async with http.request(
        method, url, data=data, headers={"Content-Type": "application/json"}
    ) as r:
        await r.read()
        return r.status


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "outcome"),
    [
        ("/callback", {"body": env()}, 403, "forbidden"),
        ("/callback/", {"body": env()}, 403, "forbidden"),
        ("/callback/wrong-secret-" + "y" * 30, {"body": env()}, 403, "forbidden"),
        ("/callback/" + SECRET[:-1], {"body": env()}, 403, "forbidden"),
        ("/callback/" + SECRET + "x", {"body": env()}, 403, "forbidden"),
        ("/callback/{S}", {"body": env("task_made_up")}, 404, "unknown_task"),
        ("/callback/{S}", {"raw": b"not json {"}, 400, "bad"),
        ("/callback/{S}", {"raw": b"\xff\xfe\x00"}, 400, "bad"),
        ("/callback/{S}", {"body": [1, 2]}, 400, "bad"),
        ("/callback/{S}", {"body": {"code": 200, "data": None}}, 400, "bad"),
        ("/callback/{S}", {"body": env(12345)}, 404, "unknown_task"),  # read as "12345"
        ("/callback/{S}", {"body": env(True)}, 400, "bad"),
        ("/callback/{S}", {"body": env("t" * 1025)}, 400, "bad"),  # over the id rule's limit
        ("/callback/{S}", {"body": env("t" * 500)}, 404, "unknown_task"),  # a valid id
        (
            "/callback/{S}",
            {
                "raw": b'{"data": {"taskId": "task_a", "state": "success", "pad": "'
                + b"x" * (70 * 1024)
                + b'"}}'
            },
            413,
            "too_large",
        ),
        # a `processing` notice is news too: confirmed like any other (batchgen.engine.wakes)
        ("/callback/{S}", {"body": env(state="processing")}, 200, "accepted"),
        ("/callback/{S}", {"body": env(state="pending")}, 200, "accepted"),
        ("/callback/{S}", {"body": env("task_done")}, 200, "duplicate"),
        ("/callback/{S}", {"body": env()}, 200, "accepted"),
        ("/callback/{S}/job-7", {"body": env(state="failed")}, 200, "accepted"),
        ("/callback/{S}", {"body": env(state="weird-new-word")}, 200, "accepted"),
    ],
)
async def test_answers(stub_receiver, http, path, kwargs, status, outcome) -> None:
    rec, engine = await stub_receiver()
    url = rec.local_base + path.replace("{S}", SECRET)
    assert await post(http, url, **kwargs) == status
    assert dict(rec.counts) == {outcome: 1}
    woke = outcome in ("accepted", "duplicate")
    assert [t for t, _ in engine.notified] == ([kwargs["body"]["data"]["taskId"]] if woke else [])
    # never trusts the body: the engine gets no status to act on, only a wake-up
    assert all(s is None for _, s in engine.notified)


async def test_a_numeric_task_id_wakes_its_task(stub_receiver, http) -> None:
    """A submit answer's numeric taskId is kept as its decimal string; its callback too."""
    rec, engine = await stub_receiver()
    engine.known.add("12345")
    engine.waiting.add("12345")
    assert await post(http, rec.url_for(None), env(12345)) == 200
    assert engine.notified == [("12345", None)]


async def test_other_methods_are_refused(stub_receiver, http) -> None:
    rec, engine = await stub_receiver()
    for method in ("GET", "PUT", "DELETE"):
        assert await post(http, rec.url_for(None), env(), method=method) == 405
    assert engine.notified == []


async def test_the_receiver_drops_no_news(stub_receiver, http) -> None:
    """Every post for a task in flight reaches the engine, however close together: the
    engine spaces out the confirming requests (tests/test_wakes.py), the receiver loses none."""
    rec, engine = await stub_receiver()
    statuses = await asyncio.gather(*(post(http, rec.url_for(None), env()) for _ in range(20)))
    assert statuses == [200] * 20
    assert engine.notified == [("task_a", None)] * 20
    assert rec.counts["accepted"] == 20


async def test_trust_mode_hands_the_status_over(stub_receiver, http) -> None:
    rec, engine = await stub_receiver(trust=True)
    assert await post(http, rec.url_for(None), env(state="failed")) == 200
    ((task_id, status),) = engine.notified
    assert task_id == "task_a" and status.state == "failed"
    assert status.fail_code == "CONTENT_VIOLATION"
    # a success without result URLs cannot be acted on: its task is only woken to confirm
    bad = env("task_b")
    del bad["data"]["resultJson"]
    assert await post(http, rec.url_for(None), bad) == 200
    assert engine.notified[1:] == [("task_b", None)]


def test_secret_stays_out_of_repr() -> None:
    rec = CallbackReceiver(StubEngine(set(), set()), SECRET)  # type: ignore[arg-type]
    assert SECRET not in repr(rec)
    with pytest.raises(ValueError):
        CallbackReceiver(StubEngine(set(), set()), "short")  # type: ignore[arg-type]


# -- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8787", ("127.0.0.1", 8787)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("[::1]:9000", ("::1", 9000)),
        ("8787", ("127.0.0.1", 8787)),
        ("localhost:1", ("localhost", 1)),
    ],
)
def test_parse_listen(text, expected) -> None:
    assert cb.parse_listen(text) == expected


@pytest.mark.parametrize("text", [":80", "host:http", "host:70000", "::1:80", "host:-1"])
def test_parse_listen_refuses(text) -> None:
    with pytest.raises(ValueError):
        cb.parse_listen(text)


def test_public_base() -> None:
    assert cb.check_public_base("https://hooks.example.com/bg/") == "https://hooks.example.com/bg"
    assert (
        cb.callback_url("https://h.example/bg/", SECRET)
        == f"https://h.example/bg/callback/{SECRET}"
    )
    for bad in ("ftp://h/x", "hooks.example.com", "https://", "https://h/x?a=1", "https://h/#f"):
        with pytest.raises(UsageError):
            cb.check_public_base(bad)


def test_secret_is_made_once_per_state_file(tmp_path: Path) -> None:
    store = st.Store(tmp_path / "a.db")
    first = cb.state_secret(store)
    assert len(first) >= 40 and cb.state_secret(store) == first
    store.close()
    store = st.Store(tmp_path / "a.db")
    assert cb.state_secret(store) == first
    store.close()
    other = st.Store(tmp_path / "b.db")
    assert cb.state_secret(other) != first
    other.close()


def _args(**kw: Any) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    callback_options.add_cli_options(p)
    ns = p.parse_args(kw.pop("argv", []))
    ns.no_wait = kw.pop("no_wait", False)
    ns.sandbox = kw.pop("sandbox", False)
    ns.time_scale = kw.pop("time_scale", 1.0)
    return ns


def test_callback_fields_from_args(tmp_path: Path) -> None:
    opts = options(tmp_path, "http://x")
    fields = callback_options.fields(
        _args(
            argv=[
                "--callback-listen",
                "0.0.0.0:8787",
                "--callback-url",
                "https://h.example/bg",
                "--trust-callbacks",
                "--callback-grace",
                "2m",
            ]
        ),
    )
    opts = opts.replace(**fields)
    assert opts.callbacks.callback_listen == ("0.0.0.0", 8787)
    assert opts.callbacks.callback_public_url == "https://h.example/bg"
    assert opts.callbacks.trust_callbacks and opts.callbacks.callback_grace_s == 120.0
    assert opts.paced().callback_poll_every_s == pytest.approx(6 * opts.timing.poll_every_s)
    real = RunOptions.from_flat(state_path=tmp_path / "s.db", output_dir=tmp_path)
    real = real.replace(**callback_options.fields(_args(argv=["--callback-listen", "127.0.0.1:0"])))
    assert real.callbacks.callback_public_url is None
    # Not given: they follow the poll schedule, which gives the documented defaults ...
    paced = real.paced()
    assert (paced.callback_grace_s, paced.callback_poll_every_s) == (60.0, 30.0)
    assert paced.callback_guard_s == pytest.approx(0.5)
    # ... and follow it when it changes (a faster test server), or when --sandbox scales it.
    quick = RunOptions.from_flat(
        state_path=tmp_path / "s.db", output_dir=tmp_path, poll_every_s=0.1
    )
    assert quick.paced().callback_poll_every_s == pytest.approx(0.6)
    fast = real.scaled(0.01).paced()  # --sandbox: every service time, the callback ones included
    assert fast.callback_grace_s == pytest.approx(0.6)
    assert fast.callback_poll_every_s == pytest.approx(0.3)
    assert fast.callback_guard_s == pytest.approx(0.005)
    assert fast.poll_after_s == pytest.approx(0.6) and fast.rate_period_s == pytest.approx(0.6)
    given = _args(argv=["--callback-listen", "127.0.0.1:0", "--callback-guard", "2"])
    real = real.replace(**callback_options.fields(given))
    assert real.scaled(0.01).paced().callback_guard_s == pytest.approx(0.02)
    for argv, extra in (
        (["--callback-url", "https://h.example"], {}),
        (["--callback-listen", "0.0.0.0:1"], {}),
        (["--callback-listen", "127.0.0.1:1"], {"no_wait": True}),
        (["--callback-listen", "127.0.0.1:1", "--callback-url", "file:///x"], {}),
    ):
        with pytest.raises(UsageError):
            callback_options.fields(_args(argv=argv, **extra))


# -- the real engine, receiver and simulator ----------------------------------------------------


def sim_config(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "api_keys": frozenset({KEY}),
        "time_scale": SCALE,
        "seed": 5,
        "callback_timeout_s": 500,
    }  # 5 s to answer: loaded machines
    base.update(kw)
    return base


class Captured:
    engine: Engine
    receiver: CallbackReceiver


def cb_options(tmp: Path, sim: Simulator, got: Captured | None = None, **kw: Any):
    """(options, hooks) for `execute(*cb_options(...))`; the hooks fill `got`."""
    got = got or Captured()
    opts = options(
        tmp,
        sim.base_url,
        callback_listen=LOOPBACK,
        callback_grace_s=kw.pop("grace", 60 * SCALE),
        callback_poll_every_s=kw.pop("every", 30 * SCALE),
        **kw,
    )
    hooks = RunHooks(
        on_engine=lambda e: setattr(got, "engine", e),
        on_receiver=lambda r: setattr(got, "receiver", r),
    )
    return opts, hooks


def api_requests(stats: dict[str, Any]) -> int:
    return sum(sum(stats["requests"].get(ep, {}).values()) for ep in ("submit", "status"))


async def test_batch_completes_on_callbacks_alone(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    n = 16
    state = prepare_state(tmp_path, mixed_jobs(n, violations=(5,)))
    got = Captured()
    async with Simulator(**sim_config()) as sim:
        # No fallback poll can come before 30 s: only callbacks can finish this batch.
        outcome = await execute(*cb_options(tmp_path, sim, got, grace=30.0, every=30.0))
        await eventually(lambda: sim.stats()["callbacks"]["pending"] == 0)
        stats = sim.stats()
        assert assert_files_verified(sim, state, tmp_path / "out") == n - 1
    assert outcome.exit_code == 1, outcome  # the content violation
    rows = state_rows(state)
    assert [r["id"] for r in rows if r["state"] == st.FAILED] == ["job-0005"]
    assert stats["callbacks"]["delivered"] == n and stats["callbacks"]["retried"] == 0
    assert got.engine.stats.polls == n  # exactly one confirming status request per job
    assert api_requests(stats) / n <= 2.2, stats["requests"]
    assert got.receiver.counts["accepted"] == n
    secret = got.receiver.secret
    assert secret not in caplog.text
    assert secret not in (tmp_path / "out" / "results.jsonl").read_text()
    # the stored bodies are the manifest's, without the callback URL
    store = st.Store(state, readonly=True)
    assert all(secret not in row.body for row in store.jobs.in_state(st.DONE))
    assert store.get_meta("callback_secret") == secret
    store.close()


async def test_duplicate_and_delayed_deliveries_change_nothing(tmp_path: Path) -> None:
    n = 16
    state = prepare_state(tmp_path, mixed_jobs(n))
    got = Captured()
    # Half the attempts are dropped (retried 0.3, 0.6, 1.2 s later); every delivery is doubled.
    faults = {"p_callback_fail": 0.5, "p_callback_duplicate": 1.0}
    async with Simulator(**sim_config(**faults)) as sim:
        # A task whose 4 attempts are all dropped (1 in 16) is polled after 3 s, once its
        # last retry is long over: every task costs exactly one status request either way.
        outcome = await execute(*cb_options(tmp_path, sim, got, grace=3.0, every=3.0))
        # the simulator counts a delivery once it has read our answer: maybe after the run
        await eventually(lambda: sim.stats()["callbacks"]["pending"] == 0)
        stats = sim.stats()
        envelopes = [sim._final_envelope(sim.task(t)) for t in sim.task_ids()]
        assert assert_files_verified(sim, state, tmp_path / "out") == n
    cbs = stats["callbacks"]
    assert outcome.exit_code == 0, outcome
    assert cbs["delivered"] + cbs["failed"] == n and cbs["retried"] > 0
    assert cbs["duplicates_sent"] == cbs["delivered"] > n // 2
    assert stats["submits_per_body"]["max_submits_of_one_body"] == 1
    assert got.engine.stats.polls == n
    # Late duplicates, after the run: acknowledged, and nothing moves.
    before = state_rows(state)
    store = st.Store(state)
    engine = Engine(store, None, None, got.engine.config)  # type: ignore[arg-type]
    rec = CallbackReceiver(engine, got.receiver.secret)
    async with rec, aiohttp.ClientSession() as http:
        answers = [await post(http, rec.url_for(None), e) for e in envelopes]
    store.close()
    assert answers == [200] * n and rec.counts["duplicate"] == n
    assert state_rows(state) == before


async def test_forged_callbacks_change_nothing(tmp_path: Path) -> None:
    scale = 0.05  # generation takes 3-6 s: time to forge while the tasks run
    n = 6
    state = prepare_state(tmp_path, mixed_jobs(n))
    got = Captured()
    async with Simulator(**sim_config(time_scale=scale)) as sim:
        opts, hooks = cb_options(tmp_path, sim, got, grace=60 * scale, every=30 * scale)
        opts = opts.replace(callback_guard_s=0.0)
        run = asyncio.create_task(execute(opts, hooks))
        await eventually(lambda: hasattr(got, "engine") and hasattr(got, "receiver"))
        await eventually(lambda: got.engine.stats.submitted == n)
        rows = state_rows(state)
        victim, other = rows[0]["task_id"], rows[1]["task_id"]
        base = got.receiver.local_base
        good = got.receiver.url_for(None)
        async with aiohttp.ClientSession() as http:
            forged = [
                await post(http, base + "/callback", env(victim)),
                await post(http, base + "/callback/" + "A" * 43, env(victim)),
                await post(http, good, env("task_0000000000000000")),
                await post(http, good + "/job-0000", env("task_0000000000000000", "failed")),
            ]
            assert got.engine.stats.polls == 0  # refused before anything reached the engine
            # A real task with a false state: "success" with a foreign URL, and "failed".
            forged += [
                await post(http, good, env(victim)),
                await post(http, good, env(other, "failed")),
            ]
            assert forged == [403, 403, 404, 404, 200, 200]
            # Each false claim costs one confirming status request, which says "processing".
            await eventually(lambda: got.engine.stats.polls >= 2)
        # Neither claim was believed. (Not "still in flight": on a loaded machine the real
        # tasks, 3-6 s long here, may have ended by now; the end of the test checks the files.)
        now = {r["task_id"]: r["state"] for r in state_rows(state)}
        assert st.FAILED not in (now[victim], now[other]), now
        outcome = await run
        stats = sim.stats()
        assert assert_files_verified(sim, state, tmp_path / "out") == n  # not the forged URL
    assert outcome.exit_code == 0, outcome
    assert all(r["state"] == st.DONE for r in state_rows(state))
    assert stats["callbacks"]["delivered"] == n


async def test_dropped_callbacks_are_recovered_by_the_fallback_poll(tmp_path: Path) -> None:
    n = 12
    state = prepare_state(tmp_path, mixed_jobs(n))
    got = Captured()
    async with Simulator(**sim_config(p_callback_fail=1.0)) as sim:
        outcome = await execute(*cb_options(tmp_path, sim, got))
        stats = sim.stats()
        assert assert_files_verified(sim, state, tmp_path / "out") == n
    assert outcome.exit_code == 0, outcome
    assert stats["callbacks"]["delivered"] == 0 and stats["callbacks"]["dropped"] > 0
    assert got.receiver.counts == {}
    assert got.engine.stats.polls >= n


async def test_restart_polls_callback_tasks_until_callbacks_resume(tmp_path: Path) -> None:
    n = 8
    state = prepare_state(tmp_path, mixed_jobs(n))
    first, second = Captured(), Captured()
    async with Simulator(**sim_config()) as sim:
        # The first run stops before any task ends; its listener goes away with it.
        stopped = await execute(*cb_options(tmp_path, sim, first, max_runtime_s=0.2))
        assert stopped.exit_code == 75, stopped
        assert any(r["state"] == st.IN_FLIGHT for r in state_rows(state))
        # The second run listens elsewhere (the provider still has the old URL) and waits
        # 30 s before any slow poll: only polling recovered tasks at the normal pace can
        # finish it within the test's timeout.
        outcome = await execute(*cb_options(tmp_path, sim, second, grace=30.0, every=30.0))
        assert assert_files_verified(sim, state, tmp_path / "out") == n
    assert outcome.exit_code == 0, outcome
    assert first.receiver.secret == second.receiver.secret


async def test_manifest_with_its_own_callback_url_is_polled_slowly(
    tmp_path: Path, make_receiver
) -> None:
    n = 6
    user_server = await make_receiver()
    jobs = []
    for job_id, model, body in mixed_jobs(n):
        body = dict(body, request_type="callback", callback_url=user_server.url)
        jobs.append((job_id, model, body))
    state = prepare_state(tmp_path, jobs)
    got = Captured()
    async with Simulator(**sim_config()) as sim:
        opts = options(
            tmp_path,
            sim.base_url,
            callback_grace_s=60 * SCALE,
            callback_poll_every_s=30 * SCALE,
        )
        outcome = await execute(opts, RunHooks(on_engine=lambda e: setattr(got, "engine", e)))
        assert assert_files_verified(sim, state, tmp_path / "out") == n
        await eventually(lambda: len(user_server.posts) == n)
    assert outcome.exit_code == 0, outcome
    assert got.engine.stats.polls >= n


def test_cli_sandbox_run_in_callback_mode(tmp_path: Path, monkeypatch, capsys) -> None:
    from batchgen.cli import main

    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "version: 1\nname: cbdemo\nmodel: kling-2-1\n"
        "defaults:\n  input: {duration: 5}\n"
        "jobs:\n"
        "  - {id: a, mode: master-text-to-video, prompt: a calm sea, aspect_ratio: '16:9'}\n"
        "  - {id: b, mode: master-text-to-video, prompt: a stormy sea, aspect_ratio: '16:9'}\n"
    )
    out = tmp_path / "out"
    code = main(
        [
            "run",
            str(manifest),
            "--output",
            str(out),
            "--sandbox",
            "--time-scale",
            "0.01",
            "--callback-listen",
            "127.0.0.1:0",
            "-q",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.glob("*.mp4")) == ["a.mp4", "b.mp4"]
    store = st.Store(out / "batchgen.db", readonly=True)
    secret = store.get_meta("callback_secret")
    store.close()
    assert secret and secret not in capsys.readouterr().err
    code = main(
        [
            "run",
            str(manifest),
            "--output",
            str(out),
            "--sandbox",
            "--callback-url",
            "https://h.example",
        ]
    )
    assert code != 0 and "--callback-listen" in capsys.readouterr().err
