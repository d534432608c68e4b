"""The real CLI against a second, independent fake of APIXO's Kling 2.1 API.

The fake below is written only from /work/shared/apixo-kling-2-1.md, not from batchgen's own
simulator, and deliberately differs from it wherever the reference leaves room:

- time is scaled so a generation takes 0.3-1.2 s (pending first, then processing);
- the API server closes idle keep-alive connections after 0.5 s;
- some errors are HTTP statuses (429 with an integer Retry-After, 503 with an HTML body),
  others HTTP 200 with the code in the envelope (429, 500, 401);
- task ids look like `kl21-<uuid4 hex>`; every answer carries fields the reference does not name
  and a Java-style `application/json;charset=UTF-8` type;
- `resultJson` is a JSON string whose `resultUrls` point at a CDN on another port, where some
  files are sent chunked (no Content-Length, Range ignored, `binary/octet-stream`) and others
  with Content-Length, ETag and Range support; one file of each kind is cut midway on its
  first download;
- a cap of tasks in flight and a sliding-window request limit, both answered with 429 when
  exceeded; the test gives the CLI the same limits and checks the server never had to refuse;
- in callback mode each finished task is POSTed to its callback_url (some twice, retried when
  not answered 200), and one forged early "failed" callback is posted too (no signature exists).

The CLI runs as a subprocess (`batchgen run` / `batchgen resume`), exactly as a user would.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import os
import random
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest
import yaml
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
BATCHGEN = ROOT / ".venv" / "bin" / "batchgen"
KEY = "sk-indep-7f3a9c"

RATE_N, RATE_PERIOD = 10, 0.5  # the server's limit, and the one given to the CLI
CAP = 4  # tasks pending or processing at once

MODES = (
    "standard-image-to-video",
    "pro-image-to-video",
    "master-image-to-video",
    "master-text-to-video",
)
FTYP = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"


# --------------------------------------------------------------------------------------------
# The CDN: result files on another port.


@dataclass
class CdnFile:
    data: bytes
    kind: str  # "ranged" (Content-Length, ETag, Range) or "chunked" (no length, no Range)
    cut_once: bool = False
    gets: int = 0

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def etag(self) -> str:
        return '"' + self.sha256[:20] + '"'


class FakeCdn:
    def __init__(self) -> None:
        self.files: dict[str, CdnFile] = {}
        self.log: list[tuple[str, str | None, int]] = []  # (name, Range header, status)
        self.cuts = 0
        self.base = ""
        self._runner: web.AppRunner | None = None
        self._cut_kinds: set[str] = set()

    def add(self, name: str, data: bytes, kind: str) -> str:
        cut = kind not in self._cut_kinds  # the first file of each kind is cut once
        self._cut_kinds.add(kind)
        self.files[name] = CdnFile(data, kind, cut_once=cut)
        return f"{self.base}/v/{name}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v/{name}", self.serve)
        self._runner = web.AppRunner(app, access_log=None, keepalive_timeout=3.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def serve(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        f = self.files.get(name)
        rng_header = request.headers.get("Range")
        if f is None:
            self.log.append((name, rng_header, 404))
            return web.Response(status=404, text="NoSuchKey")
        f.gets += 1
        cut = f.cut_once and f.gets == 1
        if f.kind == "chunked":
            # As object stores do for an object uploaded without a type.
            resp = web.StreamResponse(status=200, headers={"Content-Type": "binary/octet-stream"})
            resp.enable_chunked_encoding()
            self.log.append((name, rng_header, 200))
            return await self._send(request, resp, f.data, cut)
        start, end, status = 0, len(f.data) - 1, 200
        if_range = request.headers.get("If-Range")
        if rng_header and (if_range is None or if_range == f.etag):
            spec = rng_header.strip()
            ok = spec.startswith("bytes=") and "," not in spec
            a, _, b = spec[6:].partition("-") if ok else ("", "", "")
            if ok and a.isdigit() and (b == "" or b.isdigit()):
                start = int(a)
                end = min(int(b), len(f.data) - 1) if b else len(f.data) - 1
                if start >= len(f.data) or start > end:
                    self.log.append((name, rng_header, 416))
                    return web.Response(
                        status=416, headers={"Content-Range": f"bytes */{len(f.data)}"}
                    )
                status = 206
        headers = {
            "Content-Type": "video/mp4",
            "ETag": f.etag,
            "Accept-Ranges": "bytes",
            "Last-Modified": "Mon, 05 Jan 2026 10:00:00 GMT",
        }
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{len(f.data)}"
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = end - start + 1
        self.log.append((name, rng_header, status))
        return await self._send(request, resp, f.data[start : end + 1], cut)

    async def _send(
        self, request: web.Request, resp: web.StreamResponse, body: bytes, cut: bool
    ) -> web.StreamResponse:
        await resp.prepare(request)
        limit = len(body) // 2 if cut else len(body)
        for i in range(0, limit, 32 * 1024):
            await resp.write(body[i : min(i + 32 * 1024, limit)])
        if cut:
            self.cuts += 1
            transport = request.transport
            if transport is not None:
                transport.close()  # mid-body: the client sees a short or unterminated body
            return resp
        await resp.write_eof()
        return resp


# --------------------------------------------------------------------------------------------
# The API.


@dataclass
class Task:
    task_id: str
    body: dict[str, Any]
    created: float  # monotonic
    created_ms: int
    pending_s: float
    gen_s: float
    fails: bool
    urls: list[str] = field(default_factory=list)

    def state(self, now: float) -> str:
        if now < self.created + self.pending_s:
            return "pending"
        if now < self.created + self.gen_s:
            return "processing"
        return "failed" if self.fails else "success"


def _validate(body: Any) -> str | None:
    """The request rules of the reference; a message when broken."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    if body.get("request_type", "async") not in ("async", "callback"):
        return "request_type must be async or callback"
    if body.get("request_type") == "callback" and not body.get("callback_url"):
        return "callback_url is required for callback"
    if body.get("provider", "auto") not in ("auto", "value", "official"):
        return "provider must be auto, value or official"
    inp = body.get("input")
    if not isinstance(inp, dict):
        return "input is required"
    mode = inp.get("mode")
    if mode not in MODES:
        return f"unknown mode {mode!r}"
    prompt = inp.get("prompt")
    if not isinstance(prompt, str) or not 1 <= len(prompt) <= 5000:
        return "prompt must be 1 to 5000 characters"
    if type(inp.get("duration")) is not int or inp["duration"] not in (5, 10):
        return "duration must be 5 or 10"
    urls = inp.get("image_urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        return "image_urls must be a list of URLs"
    want = {MODES[0]: (1,), MODES[1]: (1, 2), MODES[2]: (1,), MODES[3]: (0,)}[mode]
    if len(urls) not in want:
        return f"{mode} takes {want} images, got {len(urls)}"
    if mode == MODES[3] and inp.get("aspect_ratio") not in ("16:9", "9:16", "1:1"):
        return "aspect_ratio is required for master-text-to-video"
    if "aspect_ratio" in inp and inp["aspect_ratio"] not in ("16:9", "9:16", "1:1"):
        return "bad aspect_ratio"
    neg = inp.get("negative_prompt")
    if neg is not None and (not isinstance(neg, str) or len(neg) > 500):
        return "negative_prompt at most 500 characters"
    cfg = inp.get("cfg_scale")
    if cfg is not None and (
        isinstance(cfg, bool)
        or not isinstance(cfg, int | float)
        or not 0 <= cfg <= 1
        or abs(cfg * 10 - round(cfg * 10)) > 1e-9
    ):
        return "cfg_scale must be 0 to 1 in steps of 0.1"
    return None


class FakeKling:
    """POST /api/v1/generateTask/kling-2-1 and GET /api/v1/statusTask/kling-2-1."""

    # Injected answers, by the 1-based count of requests to each endpoint.
    SUBMIT_FAULTS: ClassVar[dict[int, str]] = {2: "http429", 6: "env429"}
    STATUS_FAULTS: ClassVar[dict[int, str]] = {
        3: "http429",
        8: "env429",
        12: "http503",
        16: "env500",
    }

    def __init__(self, cdn: FakeCdn, *, seed: int = 11) -> None:
        self.cdn = cdn
        self.rng = random.Random(seed)
        self.tasks: dict[str, Task] = {}
        self.arrivals: collections.deque[float] = collections.deque()
        self.busiest_window = 0
        self.rate_refusals = 0
        self.cap_refusals = 0
        self.peak_in_flight = 0
        self.submit_requests = 0
        self.status_requests = 0
        self.injected: list[str] = []
        self.problems: list[str] = []  # requests that break the reference
        self.unknown_polls: list[str] = []
        self.callbacks: list[tuple[str, str, int | str]] = []  # (taskId, state, answer)
        self.forged: list[tuple[str, int | str]] = []
        self.base = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._bg: set[asyncio.Task] = set()
        # While True, tasks made do not end (each keeps its own time, given back by release):
        # a test can hold every slot taken for as long as it needs, however slow the machine.
        self.holding = False
        self._held: dict[str, float] = {}

    def release(self) -> None:
        """Held tasks end at their own times again (now, for those whose time has passed)."""
        self.holding = False
        for tid, gen in self._held.items():
            self.tasks[tid].gen_s = gen
        self._held.clear()

    # -- lifecycle
    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        app = web.Application()
        app.router.add_post("/api/v1/generateTask/kling-2-1", self.submit)
        app.router.add_get("/api/v1/statusTask/kling-2-1", self.status)
        self._runner = web.AppRunner(app, access_log=None, keepalive_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}/api/v1"

    async def close(self) -> None:
        for t in self._bg:
            t.cancel()
        await asyncio.gather(*self._bg, return_exceptions=True)
        if self._runner:
            await self._runner.cleanup()
        if self._session:
            await self._session.close()

    # -- views for the test
    def created_per_prompt(self) -> collections.Counter[str]:
        return collections.Counter(t.body["input"]["prompt"] for t in self.tasks.values())

    def task_for_prompt(self, prompt: str) -> Task:
        (task,) = [t for t in self.tasks.values() if t.body["input"]["prompt"] == prompt]
        return task

    def in_flight(self, now: float) -> int:
        return sum(1 for t in self.tasks.values() if now < t.created + t.gen_s)

    # -- helpers
    @staticmethod
    def _envelope(code: int, message: str, data: Any = None, status: int = 200, **hdr: str):
        body = {"code": code, "message": message, "data": data, "requestId": uuid.uuid4().hex}
        headers = {"Content-Type": "application/json;charset=UTF-8", **hdr}  # Java-style
        return web.Response(body=json.dumps(body).encode(), status=status, headers=headers)

    def _admit(self, request: web.Request) -> web.Response | None:
        """Rate window, then key: every request counts, refused or not."""
        now = time.monotonic()
        self.arrivals.append(now)
        while self.arrivals and self.arrivals[0] <= now - RATE_PERIOD:
            self.arrivals.popleft()
        self.busiest_window = max(self.busiest_window, len(self.arrivals))
        if len(self.arrivals) > RATE_N:
            self.rate_refusals += 1
            return self._envelope(429, "rate limit exceeded", status=429, **{"Retry-After": "1"})
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            # As HTTP 200 with the code in the envelope (the reference allows both).
            return self._envelope(401, "Invalid API key")
        return None

    # -- endpoints
    async def submit(self, request: web.Request) -> web.Response:
        refused = self._admit(request)
        if refused is not None:
            return refused
        self.submit_requests += 1
        if not request.headers.get("Content-Type", "").startswith("application/json"):
            self.problems.append(f"submit without JSON content type: {request.content_type}")
            return self._envelope(400, "Content-Type must be application/json", status=400)
        try:
            body = json.loads(await request.read())
        except ValueError:
            self.problems.append("submit body is not JSON")
            return self._envelope(400, "malformed JSON", status=400)
        bad = _validate(body)
        if bad:
            self.problems.append(f"invalid submit: {bad}: {body}")
            return self._envelope(400, bad, status=400)
        fault = self.SUBMIT_FAULTS.get(self.submit_requests)
        if fault == "http429":
            self.injected.append("submit:http429")
            return self._envelope(429, "Too many requests", status=429, **{"Retry-After": "1"})
        if fault == "env429":
            self.injected.append("submit:env429")
            return self._envelope(
                429, "Rate limit exceeded, wait and retry", **{"Retry-After": "1"}
            )
        now = time.monotonic()
        if self.in_flight(now) >= CAP:
            self.cap_refusals += 1
            return self._envelope(
                429, "too many concurrent tasks", status=429, **{"Retry-After": "1"}
            )
        inp = body["input"]
        lo, hi = (0.3, 0.8) if inp["duration"] == 5 else (0.6, 1.2)
        gen = self.rng.uniform(lo, hi)
        tid = f"kl21-{uuid.uuid4().hex}"
        task = Task(
            task_id=tid,
            body=body,
            created=now,
            created_ms=int(time.time() * 1000),
            pending_s=gen * self.rng.uniform(0.25, 0.5),
            gen_s=gen,
            fails="VIOLATE" in inp["prompt"],
        )
        if not task.fails:
            n = 2 if "TWO-TAKES" in inp["prompt"] else 1
            for k in range(n):
                size = self.rng.randint(150_000, 400_000)
                data = FTYP + b"\x00\x00\x00\x08free" + self.rng.randbytes(size)
                kind = "ranged" if len(self.cdn.files) % 2 == 0 else "chunked"
                task.urls.append(self.cdn.add(f"{uuid.uuid4().hex}-{k}.mp4", data, kind))
        self.tasks[tid] = task
        if self.holding:
            self._held[tid], task.gen_s = task.gen_s, 1e9
        if body.get("request_type") == "callback":
            n = len(self.tasks)
            self._spawn(self._deliver(task, body["callback_url"], duplicate=n % 2 == 0))
            if n == 1 and not task.fails:
                self._spawn(self._forge(task, body["callback_url"]))
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight(now))
        return self._envelope(200, "success", {"taskId": tid, "queue": "kling-2-1/standard"})

    async def status(self, request: web.Request) -> web.Response:
        refused = self._admit(request)
        if refused is not None:
            return refused
        self.status_requests += 1
        fault = self.STATUS_FAULTS.get(self.status_requests)
        if fault == "http429":
            self.injected.append("status:http429")
            return self._envelope(429, "Too many requests", status=429, **{"Retry-After": "1"})
        if fault == "env429":
            self.injected.append("status:env429")
            return self._envelope(429, "rate limit exceeded")
        if fault == "http503":
            self.injected.append("status:http503")
            return web.Response(
                status=503, text="<html><body>503 Service Unavailable</body></html>",
                content_type="text/html",
            )  # fmt: skip
        if fault == "env500":
            self.injected.append("status:env500")
            return self._envelope(500, "internal error, please retry")
        tid = request.query.get("taskId", "")
        task = self.tasks.get(tid)
        if task is None:
            self.unknown_polls.append(tid)
            return self._envelope(400, f"task not found: {tid}")
        return self._envelope(200, "success", self._data(task, time.monotonic()))

    def _data(self, task: Task, now: float) -> dict[str, Any]:
        state = task.state(now)
        tid = task.task_id
        data: dict[str, Any] = {
            "taskId": tid,
            "model": "kling-2-1",
            "state": state,
            "param": json.dumps(task.body),
            "createTime": task.created_ms,
            "progress": {"pending": 0, "processing": 50}.get(state, 100),
            "updateTime": int(time.time() * 1000),
        }
        if state in ("success", "failed"):
            cost = int(task.gen_s * 1000)
            data.update(completeTime=task.created_ms + cost, costTime=cost)
        if state == "success":
            data["resultJson"] = json.dumps({"resultUrls": task.urls, "resultWaterMarkUrls": []})
        elif state == "failed":
            data.update(
                failCode="CONTENT_VIOLATION", failMsg="Content does not meet safety guidelines"
            )
        return data

    # -- callback mode
    def _spawn(self, coro) -> None:
        t = asyncio.ensure_future(coro)
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)

    async def _post(self, url: str, payload: dict[str, Any]) -> int | str:
        assert self._session is not None
        try:
            async with self._session.post(url, json=payload) as r:
                await r.read()
                return r.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            return type(exc).__name__

    async def _deliver(self, task: Task, url: str, duplicate: bool) -> None:
        """When the task ends: POST the status envelope; retry up to 3 times (time scaled) on
        anything but 200; some callbacks are sent twice."""
        await asyncio.sleep(task.gen_s + 0.02)
        payload = {"code": 200, "message": "success", "data": self._data(task, time.monotonic())}
        for delay in (0.0, 0.3, 0.6, 1.2):
            await asyncio.sleep(delay)
            answer = await self._post(url, payload)
            self.callbacks.append((task.task_id, payload["data"]["state"], answer))
            if answer == 200:
                break
        if duplicate:
            await asyncio.sleep(0.1)
            answer = await self._post(url, payload)
            self.callbacks.append((task.task_id, payload["data"]["state"], answer))

    async def _forge(self, task: Task, url: str) -> None:
        """Anyone who learns the URL can post to it (no signature): a false 'failed' early."""
        await asyncio.sleep(0.05)
        fake = {
            "taskId": task.task_id,
            "state": "failed",
            "failCode": "CONTENT_VIOLATION",
            "failMsg": "forged",
            "createTime": task.created_ms,
            "completeTime": task.created_ms + 50,
            "costTime": 50,
        }
        self.forged.append(
            (task.task_id, await self._post(url, {"code": 200, "message": "success", "data": fake}))
        )


@contextlib.asynccontextmanager
async def servers(tmp: Path) -> AsyncIterator[FakeKling]:
    """The API and its CDN; what they saw is left in tmp/server.json for a failing test."""
    cdn = FakeCdn()
    await cdn.start()
    api = FakeKling(cdn)
    await api.start()
    try:
        yield api
    finally:
        for run in _RUNS:  # a test that failed early must not leave batchgen running
            if run.proc.returncode is None:
                run.proc.kill()
                await run.proc.wait()
        _RUNS.clear()
        await api.close()
        await cdn.close()
        seen = {
            "submit_requests": api.submit_requests,
            "status_requests": api.status_requests,
            "tasks": len(api.tasks),
            "busiest_window": api.busiest_window,
            "rate_refusals": api.rate_refusals,
            "cap_refusals": api.cap_refusals,
            "peak_in_flight": api.peak_in_flight,
            "injected": api.injected,
            "problems": api.problems,
            "callbacks": api.callbacks,
            "forged": api.forged,
            "cdn_cuts": cdn.cuts,
            "cdn_log": cdn.log,
        }
        (tmp / "server.json").write_text(json.dumps(seen, indent=1))


# --------------------------------------------------------------------------------------------
# Driving the CLI.


def write_manifest(tmp: Path, name: str, n: int, *, violations=(), two_takes=()) -> Path:
    jobs = []
    for i in range(n):
        mode = MODES[i % 4]
        prompt = f"{name} shot {i}: waves rolling onto a pebble beach"
        if i in violations:
            prompt += " VIOLATE"
        if i in two_takes:
            prompt += " TWO-TAKES"
        job: dict[str, Any] = {
            "id": f"{name}-{i:02d}",
            "mode": mode,
            "prompt": prompt,
            "duration": 10 if i % 5 == 4 else 5,
        }
        if mode == MODES[3]:
            job["aspect_ratio"] = ("16:9", "9:16", "1:1")[i % 3]
        else:
            job["image_urls"] = [f"https://example.com/img/{name}-{i}.jpg"]
        if mode == MODES[1] and i % 2:
            job["image_urls"].append(f"https://example.com/img/{name}-{i}-end.png")
        jobs.append(job)
    manifest = {
        "version": 1,
        "name": name,
        "model": "kling-2-1",
        "defaults": {"provider": "auto", "input": {"cfg_scale": 0.5}},
        "output": {"filename": "{id}.mp4"},
        "jobs": jobs,
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def cli_args(api: FakeKling, out: Path) -> list[str]:
    return [
        "--base-url", api.base,
        "--poll-after", "0.3", "--poll-every", "0.05",
        "--rate-limit", f"{RATE_N}/{RATE_PERIOD}s", "--max-in-flight", str(CAP),
        "--stuck-after", "25s", "--max-runtime", "40s",
        "--download-concurrency", "3", "--log-format", "json",
    ]  # fmt: skip


@dataclass
class Run:
    proc: asyncio.subprocess.Process
    log: Path

    async def wait(self, within: float = 45.0) -> int:
        try:
            return await asyncio.wait_for(self.proc.wait(), within)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError(
                f"batchgen did not exit within {within} s\n{self.tail()}"
            ) from None

    def tail(self, n: int = 40) -> str:
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])


_RUNS: list[Run] = []


async def start_cli(tmp: Path, tag: str, *argv: str, key: str = KEY) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APIXO_")}
    env["APIXO_API_KEY"] = key
    log = tmp / f"{tag}.log"
    with log.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            str(BATCHGEN), *argv, stdout=sink, stderr=asyncio.subprocess.STDOUT, env=env,
            cwd=tmp, start_new_session=True,
        )  # fmt: skip
    run = Run(proc, log)
    _RUNS.append(run)
    return run


def read_results(out: Path) -> dict[str, dict[str, Any]]:
    lines = (out / "results.jsonl").read_text().splitlines()
    recs = [json.loads(line) for line in lines]
    by_id = {r["id"]: r for r in recs}
    assert len(by_id) == len(recs), "results.jsonl has a job more than once"
    return by_id


def check_outcome(api: FakeKling, manifest: Path, out: Path, run: Run) -> dict[str, str]:
    """Everything a finished batch must show; returns {job id: status}."""
    jobs = yaml.safe_load(manifest.read_text())["jobs"]
    results = read_results(out)
    assert sorted(results) == sorted(j["id"] for j in jobs), run.tail()
    # Never paid twice: exactly one created task per job, and nothing else.
    per_prompt = api.created_per_prompt()
    assert sorted(per_prompt) == sorted(j["prompt"] for j in jobs)
    assert set(per_prompt.values()) == {1}, per_prompt
    assert not api.problems, api.problems
    assert not api.unknown_polls, api.unknown_polls
    # The limits given to the client are the server's: it never had to refuse.
    assert api.rate_refusals == 0 and api.busiest_window <= RATE_N, api.busiest_window
    assert api.cap_refusals == 0 and api.peak_in_flight <= CAP
    statuses = {}
    for job in jobs:
        rec = results[job["id"]]
        task = api.task_for_prompt(job["prompt"])
        assert rec["task_id"] == task.task_id, rec
        statuses[job["id"]] = rec["status"]
        if task.fails:
            assert rec["status"] == "failed", rec
            assert rec["fail_code"] == "CONTENT_VIOLATION", rec
            assert rec["files"] == [], rec
            continue
        assert rec["status"] == "done", (rec, run.tail())
        assert rec["fail_code"] is None, rec
        assert sorted(f["url"] for f in rec["files"]) == sorted(task.urls), rec
        for f in rec["files"]:
            served = api.cdn.files[f["url"].rsplit("/", 1)[1]]
            path = out / f["path"]
            assert path.resolve().is_relative_to(out.resolve()), f
            data = path.read_bytes()
            assert hashlib.sha256(data).hexdigest() == served.sha256 == f["sha256"], f
            assert f["bytes"] == len(served.data)
    assert not list(out.rglob("*.part")), list(out.rglob("*.part"))
    return statuses


# --------------------------------------------------------------------------------------------
# The tests.


async def test_run_to_completion_then_rerun_changes_nothing(tmp_path):
    manifest = write_manifest(tmp_path, "sea", 12, violations=(3, 8), two_takes=(5,))
    out = tmp_path / "out"
    async with servers(tmp_path) as api:
        run = await start_cli(
            tmp_path, "run1", "run", str(manifest), "--output", str(out), *cli_args(api, out)
        )
        rc = await run.wait()
        assert rc == 1, f"exit {rc}, expected 1 (two jobs failed)\n{run.tail()}"
        statuses = check_outcome(api, manifest, out, run)
        assert sorted(statuses.values()).count("failed") == 2
        # The faults really happened (else the test proves less than it says).
        assert {"submit:http429", "submit:env429", "status:http429"} <= set(api.injected)
        assert api.cdn.cuts == 2, api.cdn.log
        files_before = {p.name: p.read_bytes() for p in out.glob("*.mp4")}

        submits, tasks = api.submit_requests, len(api.tasks)
        rerun = await start_cli(
            tmp_path, "run2", "run", str(manifest), "--output", str(out), *cli_args(api, out)
        )
        rc2 = await rerun.wait()
        assert rc2 == 1, f"second run exit {rc2}, expected 1 like the first\n{rerun.tail()}"
        assert api.submit_requests == submits and len(api.tasks) == tasks, rerun.tail()
        assert check_outcome(api, manifest, out, rerun) == statuses
        assert {p.name: p.read_bytes() for p in out.glob("*.mp4")} == files_before


async def test_sigint_with_tasks_in_flight_then_resume(tmp_path):
    manifest = write_manifest(tmp_path, "lake", 10)
    out = tmp_path / "out"
    async with servers(tmp_path) as api:
        api.holding = True  # no task ends before the interrupt: at most CAP are ever made
        run = await start_cli(
            tmp_path, "run", "run", str(manifest), "--output", str(out), *cli_args(api, out)
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and run.proc.returncode is None:
            if len(api.tasks) >= 2:  # (its 429s may teach the client a lower cap than CAP)
                break
            await asyncio.sleep(0.01)
        assert run.proc.returncode is None, f"finished before the interrupt\n{run.tail()}"
        made = len(api.tasks)
        assert 2 <= made <= CAP < 10 and api.in_flight(time.monotonic()) == made
        run.proc.send_signal(signal.SIGINT)
        rc = await run.wait(30)
        api.release()
        assert rc == 75, f"exit {rc} after one SIGINT, expected 75\n{run.tail()}"
        per_prompt = api.created_per_prompt()
        assert set(per_prompt.values()) == {1}, per_prompt
        interrupted_tasks = len(api.tasks)

        state = out / "batchgen.db"
        assert state.is_file()
        resume = await start_cli(tmp_path, "resume", "resume", str(state), *cli_args(api, out))
        rc2 = await resume.wait()
        assert rc2 == 0, f"resume exit {rc2}, expected 0\n{resume.tail()}"
        assert len(api.tasks) == 10 >= interrupted_tasks
        statuses = check_outcome(api, manifest, out, resume)
        assert set(statuses.values()) == {"done"}, statuses


async def test_callback_mode(tmp_path):
    manifest = write_manifest(tmp_path, "hook", 8, violations=(6,))
    out = tmp_path / "out"
    async with servers(tmp_path) as api:
        run = await start_cli(
            tmp_path, "run", "run", str(manifest), "--output", str(out), *cli_args(api, out),
            "--callback-listen", "127.0.0.1:0", "--callback-grace", "2",
            "--callback-poll-every", "0.5",
        )  # fmt: skip
        rc = await run.wait()
        assert rc == 1, f"exit {rc}, expected 1 (one job failed)\n{run.tail()}"
        statuses = check_outcome(api, manifest, out, run)
        assert list(statuses.values()).count("failed") == 1
        # Callbacks really went out to batchgen's receiver and were accepted.
        assert all(t.body.get("request_type") == "callback" for t in api.tasks.values())
        answered = {tid for tid, _, answer in api.callbacks if answer == 200}
        assert answered == set(api.tasks), api.callbacks
        # The forged early 'failed' did not fail a job that succeeded.
        assert len(api.forged) == 1, api.forged


async def test_invalid_key_answered_in_the_envelope_exits_3(tmp_path):
    manifest = write_manifest(tmp_path, "key", 3)
    out = tmp_path / "out"
    async with servers(tmp_path) as api:
        run = await start_cli(
            tmp_path, "run", "run", str(manifest), "--output", str(out), *cli_args(api, out),
            key="sk-wrong-key",
        )  # fmt: skip
        rc = await run.wait()
        assert rc == 3, f"exit {rc}, expected 3 (invalid API key)\n{run.tail()}"
        assert not api.tasks
        assert "sk-wrong-key" not in run.log.read_text(errors="replace")


if sys.platform == "win32":  # pragma: no cover
    pytestmark = pytest.mark.skip("POSIX signals")
