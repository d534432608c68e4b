"""The CPU floor of aiohttp for batchgen's request pattern: is "at most 1 client CPU second per
1,000 jobs" reachable at all with this HTTP library on this machine?

    .venv/bin/python bench/floor.py [--jobs 5000] [--cap 500] [--write] [--json PATH]

It starts the simulator exactly as `scenarios.py overhead --size quick` does (cap 500, time
scale 0.02, default rate) and drives it with a deliberately minimal client: the two sessions of
`runner._sessions` (same settings), an asyncio.Semaphore(cap), and per job: POST a sample body,
sleep the engine's scaled first poll delay, GET the status until terminal (sleeping the
engine's next poll delay between), release the slot, GET each result URL into memory (8 at a
time, like the engine's download workers). No state file, no limiter, no logging. CPU is
`time.process_time()` around the run, as in the engine's figure: the rest is batchgen's cost.

Variants (one fresh simulator each):
  spread   polls on the engine's schedule (jitter 0.2): requests trickle in one by one
  bunched  every sleep ends on a poll_every grid (jitter 0): requests leave in bursts
  +write   (--write) also writes each file to a temp folder and fsyncs it and the folder in
           asyncio.to_thread: the least durability needs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import yarl  # noqa: E402

from batchgen.adapters.durability import fsync_folder  # noqa: E402
from batchgen.core.schedule import PollSchedule, first_poll_delay, next_poll_delay  # noqa: E402
from bench import kit  # noqa: E402

MODEL = "kling-2-1"
DOWNLOAD_CONCURRENCY = 8  # LimitSettings.download_concurrency


def _write_durably(folder: Path, name: str, data: bytes) -> None:
    path = folder / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_folder(folder)


class Floor:
    """One run of the minimal client against one simulator."""

    sessions: tuple[aiohttp.ClientSession, aiohttp.ClientSession]  # api, cdn

    def __init__(
        self, base_url: str, n: int, cap: int, scale: float, *, bunched: bool, out: Path | None
    ) -> None:
        self.n, self.cap, self.bunched, self.out = n, cap, bunched, out
        self.sched = PollSchedule(
            poll_after=60.0 * scale, poll_every=5.0 * scale, jitter=0.0 if bunched else 0.2
        )
        self.rng = random.Random(7)
        self.submit_url = yarl.URL(f"{base_url}/generateTask/{MODEL}")
        self.status_url = yarl.URL(f"{base_url}/statusTask/{MODEL}")
        self.timeout = aiohttp.ClientTimeout(total=90, connect=10, sock_connect=10, sock_read=30)
        headers = {"Authorization": f"Bearer {kit.KEY}", "Accept": "application/json"}
        self.kw = {"headers": headers, "timeout": self.timeout, "allow_redirects": False}
        self.requests = self.downloads = self.retried = self.done = self.failed = 0
        self.t0 = 0.0

    async def _sleep(self, delay: float) -> None:
        if self.bunched:  # end on the next tick of a poll_every grid shared by every job
            loop = asyncio.get_running_loop()
            tick = self.sched.poll_every
            until = self.t0 + math.ceil((loop.time() + delay - self.t0) / tick) * tick
            delay = until - loop.time()
        await asyncio.sleep(delay)

    async def _api(
        self, api: aiohttp.ClientSession, method: str, url: yarl.URL, body: Any = None
    ) -> dict[str, Any]:
        while True:
            self.requests += 1
            async with api.request(method, url, json=body, **self.kw) as resp:
                payload = json.loads(await resp.read())
                retry_after = resp.headers.get("Retry-After")
            if resp.status == 429 or payload.get("code") == 429:  # only at the cap's edge
                self.retried += 1
                await asyncio.sleep(float(retry_after or self.sched.poll_every))
                continue
            if resp.status != 200 or payload.get("code") != 200:
                raise RuntimeError(f"{method} {url}: HTTP {resp.status} {payload}")
            data: dict[str, Any] = payload["data"]
            return data

    async def _job(self, i: int, cap: asyncio.Semaphore, dl: asyncio.Semaphore) -> None:
        api, cdn = self.sessions
        try:
            task = await self._api(api, "POST", self.submit_url, kit.job_body(i, "f"))
            task_id = task["taskId"]
            await self._sleep(first_poll_delay(kit.duration_of(i), self.sched, self.rng))
            while True:
                data = await self._api(api, "GET", self.status_url.with_query(taskId=task_id))
                if data["state"] in ("success", "failed"):
                    break
                await self._sleep(next_poll_delay(self.sched, self.rng))
        finally:
            cap.release()
        if data["state"] == "failed":
            self.failed += 1
            return
        for k, url in enumerate(json.loads(data["resultJson"])["resultUrls"]):
            async with dl:
                async with cdn.get(url, timeout=self.timeout, allow_redirects=False) as resp:
                    resp.raise_for_status()
                    body = await resp.read()
                self.downloads += 1
                if self.out is not None:
                    await asyncio.to_thread(_write_durably, self.out, f"{i:06d}-{k}.mp4", body)
        self.done += 1

    async def run(self) -> None:
        # The sessions of runner._sessions, same settings (no public-only resolver: loopback).
        api = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=15),
            headers={"User-Agent": "batchgen"},
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        cdn = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max(4, DOWNLOAD_CONCURRENCY * 2)),
            headers={"User-Agent": "batchgen"},
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self.sessions = (api, cdn)
        cap, dl = asyncio.Semaphore(self.cap), asyncio.Semaphore(DOWNLOAD_CONCURRENCY)
        self.t0 = asyncio.get_running_loop().time()
        try:
            async with asyncio.TaskGroup() as tg:
                for i in range(self.n):
                    await cap.acquire()
                    tg.create_task(self._job(i, cap, dl))
        finally:
            await api.close()
            await cdn.close()


def measure(variant: str, n: int, cap: int, scale: float) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp,
        kit.SimProcess(scale, max_in_flight=cap) as sim,
    ):
        out = Path(tmp) if variant.endswith("+write") else None
        floor = Floor(sim.base_url, n, cap, scale, bunched=variant.startswith("bunched"), out=out)
        t0, cpu0, times0 = time.perf_counter(), time.process_time(), os.times()
        asyncio.run(floor.run())
        cpu, times1 = time.process_time() - cpu0, os.times()
        elapsed = time.perf_counter() - t0
        stats, sim_cpu = sim.stats(), sim.cpu_seconds()
    req = stats["requests"]  # the simulator's count, to check the client's
    return {
        "variant": variant,
        "jobs": n,
        "done": floor.done,
        "failed": floor.failed,
        "api_requests": floor.requests,
        "server_api_requests": sum(req.get("submit", {}).values())
        + sum(req.get("status", {}).values()),
        "retried_429": floor.retried,
        "downloads": floor.downloads,
        "requests_per_job": floor.requests / n,
        "downloads_per_job": floor.downloads / n,
        "elapsed_s": elapsed,
        "client_cpu_s": cpu,
        "user_s": times1.user - times0.user,
        "sys_s": times1.system - times0.system,
        "cpu_s_per_1000_jobs": cpu / n * 1000,
        "us_per_request": cpu / max(1, floor.requests + floor.downloads) * 1e6,
        "sim_cpu_s": sim_cpu,
    }


COLUMNS = (  # heading, key, width, format
    ("variant", "variant", 14, ""),
    ("jobs", "jobs", 6, "d"),
    ("done", "done", 6, "d"),
    ("req/job", "requests_per_job", 9, ".2f"),
    ("dl/job", "downloads_per_job", 8, ".2f"),
    ("wall s", "elapsed_s", 8, ".1f"),
    ("cpu s", "client_cpu_s", 8, ".2f"),
    ("user", "user_s", 7, ".2f"),
    ("sys", "sys_s", 7, ".2f"),
    ("cpu s/1k jobs", "cpu_s_per_1000_jobs", 15, ".3f"),
    ("us/req", "us_per_request", 8, ".0f"),
    ("sim cpu s", "sim_cpu_s", 11, ".1f"),
)


def _cell(v: Any, w: int, f: str) -> str:
    return f"{v:<{w}}" if f == "" else f"{'-':>{w}}" if v is None else f"{v:>{w}{f}}"


def table(rows: list[dict[str, Any]]) -> str:
    head = "".join(_cell(h, w, "" if f == "" else "s") for h, _, w, f in COLUMNS)
    body = ["".join(_cell(r[k], w, f) for _, k, w, f in COLUMNS) for r in rows]
    return "\n".join([head, "-" * len(head), *body])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=5000)
    p.add_argument("--cap", type=int, default=500)
    p.add_argument("--scale", type=float, default=0.02)
    p.add_argument("--write", action="store_true", help="also run the +write variants")
    p.add_argument("--only", choices=("spread", "bunched"), help="one schedule, not both")
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args(argv)
    variants = [args.only] if args.only else ["spread", "bunched"]
    if args.write:
        variants += [f"{v}+write" for v in variants]
    rows = [measure(v, args.jobs, args.cap, args.scale) for v in variants]
    print(
        f"aiohttp {aiohttp.__version__}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs; cap {args.cap}, time scale {args.scale}"
    )
    print(table(rows))
    if args.json:
        doc = {"machine": kit.machine(), "aiohttp": aiohttp.__version__, "cap": args.cap}
        doc |= {"time_scale": args.scale, "rows": rows}
        args.json.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    bad = [r["variant"] for r in rows if r["done"] + r["failed"] != r["jobs"]]
    if bad:
        print(f"incomplete runs: {bad}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
