"""Callback mode in figures: API requests per job, and the receiver's answer time.

    .venv/bin/python bench/callbacks.py [--jobs 200] [--scale 0.01] [--posts 1000] [--rounds 3]

1. The same batch (mixed modes, 5 s and 10 s videos) runs through the real engine against the
   simulator at the same time scale, three ways: polling at the advised schedule (first poll
   after 60 s, then every 5 s), callback mode, and callback mode with 20% of delivery attempts
   dropped and every delivery sent twice. Printed: submit + status requests per job, counted by
   the simulator (downloads go to the CDN and are not API requests).
2. A receiver (the real CallbackReceiver over a real Engine and a state file holding --posts
   in-flight tasks) gets --posts near-simultaneous POSTs, each on its own connection, from an
   aiohttp client in another process. Round 1 wakes every task; later rounds are duplicates.
   Printed: p50 / p99 / max answer time seen by the client (from the shared start instant's
   coroutine start to the answer read), the HTTP statuses, and the p99 time inside the handler.
   On a small machine the client's own CPU (1000 connections at once, on the cores the server
   uses) is part of that figure; `--curl` adds the same POSTs from curl --parallel, a C client
   that also ramps its transfers up rather than starting all at one instant.
Targets (from issues 6 and 25): at most 2.2 requests per job in callback mode, also with a
`processing` notice and a duplicate per task; at most 3 with one forged `success` per task on
top; p99 under 100 ms. A status that lags the final callback is measured, with no target.
Exit status 0 when both are met, else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from batchgen import store as st  # noqa: E402
from batchgen.callbacks import CallbackReceiver  # noqa: E402
from batchgen.engine import Engine  # noqa: E402
from batchgen.engine.config import engine_config  # noqa: E402
from batchgen.runner import execute  # noqa: E402
from batchgen.settings import RunOptions  # noqa: E402
from batchgen.simulator import Simulator  # noqa: E402
from bench import kit  # noqa: E402
from bench.kit import job_body  # noqa: E402

KEY = "sk-bench"


async def one_batch(
    n: int, scale: float, *, callbacks: bool, faults: dict[str, float], folder: Path
) -> dict[str, Any]:
    out = folder / "out"
    store = st.Store(out / "batchgen.db")
    store.jobs.sync((f"job-{i:05d}", "kling-2-1", job_body(i)) for i in range(n))
    store.close()
    sim_kw = {
        "api_keys": frozenset({KEY}),
        "time_scale": scale,
        "seed": 11,
        "callback_timeout_s": 5 / scale,
        **faults,
    }
    async with Simulator(**sim_kw) as sim:
        opts = kit.options(
            folder,
            sim.base_url,
            scale,
            api_key=KEY,
            backoff_base_s=0.02,
            backoff_cap_s=0.5,
            drain_s=5.0,
            seed=3,
        )
        if callbacks:
            opts = opts.replace(callback_listen=("127.0.0.1", 0))
        t0 = time.perf_counter()
        outcome = await execute(opts)
        elapsed = time.perf_counter() - t0
        stats = sim.stats()
    req = stats["requests"]
    submits = sum(req.get("submit", {}).values())
    polls = sum(req.get("status", {}).values())
    return {
        "exit": outcome.exit_code,
        "done": outcome.counts.get("done", 0),
        "submits": submits,
        "status": polls,
        "per_job": (submits + polls) / n,
        "seconds": elapsed,
        "callbacks": stats["callbacks"],
    }


async def requests_per_job(n: int, scale: float) -> dict[str, dict[str, Any]]:
    results = {}
    cases = {
        "polling (60 s, then every 5 s)": (False, {}),
        "callback mode": (True, {}),
        "callback mode, 20% attempts dropped, all doubled": (
            True,
            {"p_callback_fail": 0.2, "p_callback_duplicate": 1.0},
        ),
        # Issue 25: every task also gets a `processing` notice early in its generation and a
        # duplicate of its final word; then the same with one forged `success` mid-generation
        # per task; then a provider whose status lags its final callback (2 s, scaled).
        # Targets: 2.2, 3 and none (said as measured).
        "callback mode, notice + duplicate": (
            True,
            {"p_callback_notice": 1.0, "p_callback_duplicate": 1.0},
        ),
        "callback mode, notice + duplicate + forged": (
            True,
            {"p_callback_notice": 1.0, "p_callback_duplicate": 1.0, "p_callback_forged": 1.0},
        ),
        "callback mode, final word before the status": (True, {"p_callback_early": 1.0}),
    }
    for name, (cb, faults) in cases.items():
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = await one_batch(n, scale, callbacks=cb, faults=faults, folder=Path(tmp))
    return results


# -- receiver answer time -----------------------------------------------------------------------


class TimedReceiver(CallbackReceiver):
    """The real receiver, plus the time each request spends in its handler (server side)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.handler_s: list[float] = []

    def build_app(self) -> web.Application:
        app = super().build_app()

        @web.middleware
        async def timed(request: web.Request, handler: Any) -> web.StreamResponse:
            t0 = time.perf_counter()
            try:
                return await handler(request)
            finally:
                self.handler_s.append(time.perf_counter() - t0)

        app.middlewares.append(timed)
        return app


def task_id(i: int) -> str:
    return f"task_{i:016x}"


def envelope(i: int) -> dict[str, Any]:
    return {
        "code": 200,
        "message": "success",
        "data": {
            "taskId": task_id(i),
            "state": "success",
            "resultJson": json.dumps({"resultUrls": [f"https://cdn.example/{i}.mp4"]}),
            "createTime": 1767965610929,
            "completeTime": 1767965652317,
            "costTime": 41388,
        },
    }


async def client_main(url: str, first: int, n: int, start_at: float) -> None:
    """Runs in its own process: n POSTs at the wall-clock instant start_at, each on a new
    connection (as separate deliveries would be); prints the answer times as JSON."""
    bodies = [json.dumps(envelope(i)).encode() for i in range(first, first + n)]
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        start = asyncio.Event()

        async def one(body: bytes) -> tuple[float, int]:
            await start.wait()
            t0 = time.perf_counter()
            async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
                await r.read()
                return time.perf_counter() - t0, r.status

        tasks = [asyncio.create_task(one(b)) for b in bodies]
        await asyncio.sleep(max(0.0, start_at - time.time()))
        start.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    ok = [r for r in results if isinstance(r, tuple)]
    print(
        json.dumps(
            {
                "latencies": [lat for lat, _ in ok],
                "statuses": [s for _, s in ok],
                "errors": [repr(r) for r in results if not isinstance(r, tuple)][:5],
            }
        )
    )


async def run_clients(url: str, n: int, procs: int) -> dict[str, Any]:
    """n POSTs from `procs` client processes that all start at the same instant."""
    start_at = time.time() + 0.5 + 0.1 * procs  # after every process has started
    share = [n // procs + (1 if k < n % procs else 0) for k in range(procs)]
    firsts = [sum(share[:k]) for k in range(procs)]
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--client",
            url,
            "--first",
            str(first),
            "--posts",
            str(count),
            "--start-at",
            repr(start_at),
            stdout=subprocess.PIPE,
        )
        for first, count in zip(firsts, share, strict=True)
    ]
    merged: dict[str, list[Any]] = {"latencies": [], "statuses": [], "errors": []}
    for child in children:
        raw, _ = await child.communicate()
        for k, v in json.loads(raw).items():
            merged[k] += v
    return merged


async def run_curl(url: str, n: int, folder: Path) -> dict[str, Any]:
    """The same POSTs from curl --parallel (a C client: its own overhead is small)."""
    config = folder / "curl.cfg"
    parts = []
    for i in range(n):
        body = json.dumps(json.dumps(envelope(i)))
        parts.append(
            f'url = "{url}"\nheader = "Content-Type: application/json"\n'
            f"data = {body}\noutput = /dev/null\n"
            'write-out = "%{time_total} %{http_code}\\n"\n'
        )
    config.write_text("next\n".join(parts))
    proc = await asyncio.create_subprocess_exec(
        "curl",
        "-s",
        "--parallel",
        "--parallel-immediate",
        "--parallel-max",
        str(n),
        "-K",
        str(config),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    raw, _ = await proc.communicate()
    lines = [line.split() for line in raw.decode().splitlines() if line.strip()]
    return {
        "latencies": [float(a) for a, _ in lines],
        "statuses": [int(b) for _, b in lines],
        "errors": [],
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


async def receiver_latency(n: int, rounds: int, procs: int, tool: str) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        store = st.Store(Path(tmp) / "batchgen.db")
        store.jobs.sync((f"job-{i:05d}", "kling-2-1", job_body(i)) for i in range(n))
        for row in store.jobs.pending_after(0, n):
            store.moves.mark_submitting(row.seq)
            store.moves.mark_in_flight(row.seq, task_id(row.seq - 1))
        config = engine_config(RunOptions.from_flat(Path(tmp) / "s.db", Path(tmp)))
        engine = Engine(store, None, None, config)  # type: ignore[arg-type]
        # trackers waiting for their callbacks, as during a run (the engine's own table)
        for i in range(n):
            engine.context.callbacks.news.wakes[task_id(i)] = asyncio.Event()
        out = []
        async with TimedReceiver(engine, "bench-secret-" + "z" * 32) as rec:
            url = rec.url_for(None)
            for r in range(rounds):
                rec.handler_s.clear()
                if tool == "curl":
                    data = await run_curl(url, n, Path(tmp))
                else:
                    data = await run_clients(url, n, procs)
                lat = data["latencies"]
                out.append(
                    {
                        "round": r + 1,
                        "answered": len(lat),
                        "statuses": {
                            str(s): data["statuses"].count(s) for s in sorted(set(data["statuses"]))
                        },
                        "errors": data["errors"],
                        "p50_ms": 1000 * statistics.median(lat) if lat else float("nan"),
                        "p99_ms": 1000 * percentile(lat, 0.99) if lat else float("nan"),
                        "max_ms": 1000 * max(lat) if lat else float("nan"),
                        "counts": dict(rec.counts),
                        "handler_p99_ms": 1000 * percentile(rec.handler_s, 0.99),
                    }
                )
        woken = sum(e.is_set() for e in engine.context.callbacks.news.wakes.values())
        out[0]["tasks_woken"] = woken
        store.close()
        return out


async def main_async(args: argparse.Namespace) -> int:
    ok = True
    if args.only in (None, "requests"):
        print(f"requests per job: {args.jobs} jobs, time scale {args.scale}")
        per_job = await requests_per_job(args.jobs, args.scale)
        for name, r in per_job.items():
            print(
                f"  {name:50s} {r['per_job']:.2f} requests/job  (submit {r['submits']}, "
                f"status {r['status']}; done {r['done']}/{args.jobs}; exit {r['exit']}; "
                f"{r['seconds']:.1f} s)"
            )
            if name.startswith("callback"):
                cbs = r["callbacks"]
                print(
                    f"  {'':50s} callbacks: delivered {cbs['delivered']}, dropped "
                    f"{cbs['dropped']}, retried {cbs['retried']}, duplicates "
                    f"{cbs['duplicates_sent']}"
                )
        ok = (
            per_job["callback mode"]["per_job"] <= 2.2
            and per_job["callback mode, notice + duplicate"]["per_job"] <= 2.2
            and per_job["callback mode, notice + duplicate + forged"]["per_job"] <= 3.0
        )
    if args.only in (None, "latency"):
        print(
            f"receiver answer time: {args.posts} near-simultaneous POSTs, a new connection "
            f"each, from {args.client_procs} aiohttp client process(es) starting at one "
            "instant"
        )
        tools = ["aiohttp"] + (["curl"] if args.curl and shutil.which("curl") else [])
        results = []
        for tool in tools:
            for r in await receiver_latency(args.posts, args.rounds, args.client_procs, tool):
                results.append((tool, r))
        for tool, r in results:
            kind = "wake" if r["round"] == 1 else "duplicates"
            print(
                f"  {tool} round {r['round']} ({kind}): p50 {r['p50_ms']:.1f} ms, "
                f"p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.1f} ms; answered "
                f"{r['answered']}, HTTP {r['statuses']}; in the handler: p99 "
                f"{r['handler_p99_ms']:.2f} ms"
                + (f", woke {r['tasks_woken']} tasks" if "tasks_woken" in r else "")
                + (f", errors {r['errors']}" if r["errors"] else "")
            )
            if tool == "aiohttp" and (r["p99_ms"] > 100 or r["answered"] != args.posts):
                ok = False
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=200)
    p.add_argument("--scale", type=float, default=0.01)
    p.add_argument("--posts", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", choices=("requests", "latency"))
    p.add_argument(
        "--client-procs", type=int, default=1, help="client processes sharing the POSTs (default 1)"
    )
    p.add_argument(
        "--curl",
        action="store_true",
        help="also measure with curl --parallel as the client (for comparison)",
    )
    p.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)
    p.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.client:
        asyncio.run(client_main(args.client, args.first, args.posts, args.start_at))
        return 0
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
