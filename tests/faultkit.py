"""A scripted fake APIXO for the faults the simulator cannot produce (tests/test_reliability_*).

`FakeApi` speaks the same wire format as the simulator (submit, status, result files with
Range) but every request first asks a *hook* what to do, so a test can script exactly which
answer each request gets: a reset before or after the task exists, a hang, a 200 envelope
carrying an error code, malformed JSON, `resultJson` that is not JSON, a task going back to
pending, a 404 for a task, a cut, trickled or Range-ignoring download, a hostile task id or
result URL. Every request is logged (`hits`) with the server's monotonic time, so tests count
what the server saw instead of timing the client.

Directives for answers from an intermediary (not the API's envelope): `http500`...`http504`
(a short HTML page), `nginx502` (nginx's page), `empty503` (no body), `nginx502_after` (submit:
the task is created, then nginx's page). The API's own errors: `http500env`, `http503env`
(the JSON envelope under that HTTP status), `env500` (code 500 in an HTTP 200).

Hooks: `api.hooks["submit" | "status" | "file"] = fn(hit) -> directive | None`; `None` means
"answer normally". `per_key(...)` builds a hook from a per-body / per-task list of directives.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.enginekit import KEY

NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
FILE_SIZE = 200_000  # > 64 KiB, so a cut file is resumed with Range rather than restarted


@dataclass
class Hit:
    kind: str  # submit | status | file
    t: float  # server monotonic time on arrival
    key: str  # submit: the canonical body; status/file: the task id
    n: int  # 1-based count of requests of this kind for this key
    headers: dict[str, str] = field(default_factory=dict)
    answer: str = ""
    raw_path: str = ""  # the request target exactly as it arrived (path and query, encoded)


@dataclass
class FakeTask:
    task_id: str
    body: dict[str, Any]
    polls: int = 0


def canonical(body: Any) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_FTYP = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isommp41"


def content_for(task_id: str, idx: int = 0, size: int = FILE_SIZE) -> bytes:
    """Shaped like an MP4 (an ftyp box, then an mdat box filling the rest), as the download's
    container checks require."""
    seed = hashlib.sha256(f"{task_id}:{idx}".encode()).digest()
    pattern = (seed * (size // len(seed) + 1))[:size]
    if size < len(_FTYP) + 8:
        return pattern
    head = _FTYP + (size - len(_FTYP)).to_bytes(4, "big") + b"mdat"
    return head + pattern[len(head) :]


def sha_of(task_id: str, idx: int = 0, size: int = FILE_SIZE) -> str:
    return hashlib.sha256(content_for(task_id, idx, size)).hexdigest()


def per_key(table: dict[str, list[Any]] | None = None, *, each: list[Any] | None = None):
    """A hook answering the n-th request for a key with `list[n-1]` (then normally). `each`
    applies the same list to every key."""

    def hook(hit: Hit) -> Any:
        seq = (table or {}).get(hit.key, each or [])
        return seq[hit.n - 1] if hit.n <= len(seq) else None

    return hook


class FakeApi:
    def __init__(
        self,
        *,
        key: str = KEY,
        polls_to_success: int = 1,
        task_ids: Iterator[str] | None = None,
        file_size: int = FILE_SIZE,
        hang_s: float = 30.0,
    ) -> None:
        self.key = key
        self.polls_to_success = polls_to_success
        self.task_ids = task_ids
        self.file_size = file_size
        self.hang_s = hang_s
        self.hooks: dict[str, Callable[[Hit], Any]] = {}
        self.tasks: dict[str, FakeTask] = {}
        self.created: Counter[str] = Counter()  # canonical body -> tasks created
        self.hits: list[Hit] = []
        self._per_key: dict[tuple[str, str], int] = defaultdict(int)
        self.result_urls: Callable[[FakeTask], list[str]] | None = None
        self.origin = ""
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._n = 0

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> FakeApi:
        app = web.Application(client_max_size=2 * 1024 * 1024)
        app.router.add_post("/api/v1/generateTask/kling-2-1", self._submit)
        app.router.add_get("/api/v1/statusTask/kling-2-1", self._status)
        app.router.add_get("/cdn/{task}/{idx:[0-9]+}.mp4", self._file)
        app.router.add_get("/redirect", self._redirect)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = self._runner.addresses[0][1]
        self.origin = f"http://127.0.0.1:{port}"
        self.base_url = f"{self.origin}/api/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what the server saw ---------------------------------------------------------------

    def count(self, kind: str, answer: str | None = None) -> int:
        return sum(h.kind == kind and (answer is None or h.answer == answer) for h in self.hits)

    def _hit(self, kind: str, key: str, request: web.Request) -> Hit:
        self._per_key[(kind, key)] += 1
        hit = Hit(kind, time.monotonic(), key, self._per_key[(kind, key)], dict(request.headers))
        hit.raw_path = request.raw_path
        self.hits.append(hit)
        return hit

    def _directive(self, hit: Hit) -> Any:
        hook = self.hooks.get(hit.kind)
        return hook(hit) if hook is not None else None

    # -- answers ---------------------------------------------------------------------------

    @staticmethod
    def _env(code: int, message: str, data: Any = None, http: int | None = None, **kw: Any):
        body = {"code": code, "message": message, "data": data}
        return web.json_response(body, status=code if http is None else http, **kw)

    async def _generic(self, request: web.Request, hit: Hit, what: Any) -> web.StreamResponse:
        """Directives that mean the same on every endpoint. `what` is a string."""
        hit.answer = str(what)
        if what == "reset":
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)
        if what == "hang":
            await asyncio.sleep(self.hang_s)
            return web.Response(status=500)
        if what == "trickle_answer":
            # headers at once, then one blank (valid JSON whitespace) every 0.1 s for hang_s:
            # never silent for a whole read timeout, never finished either
            resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            await resp.prepare(request)
            deadline = time.monotonic() + self.hang_s
            while time.monotonic() < deadline:
                await resp.write(b" ")
                await asyncio.sleep(0.1)
            await resp.write(b'{"code": 503, "message": "gave up", "data": null}')
            await resp.write_eof()
            return resp
        if what in ("http500", "http502", "http503", "http504"):
            return web.Response(status=int(what[4:]), text="<html>oops</html>")
        if what == "nginx502":
            return web.Response(status=502, text=NGINX_502, content_type="text/html")
        if what == "empty503":
            return web.Response(status=503)
        if what in ("http500env", "http503env"):
            return self._env(int(what[4:7]), "the API's own error: nothing was created")
        if what == "http429":
            return self._env(429, "Rate limit exceeded, please wait and retry")
        if isinstance(what, str) and what.startswith("http429ra="):
            ra = what.split("=", 1)[1]
            return self._env(429, "Rate limit exceeded", headers={"Retry-After": ra})
        if what in ("env500", "env429", "env401"):
            return self._env(int(what[3:]), "error in a 200 envelope", http=200)
        if what == "http401":
            return self._env(401, "Invalid API key")
        if what == "badjson":
            return web.Response(
                status=200,
                text='{"code": 200, "data": {"taskId": ',
            )
        if what == "html":
            return web.Response(
                status=200, text="<html>maintenance</html>", content_type="text/html"
            )
        if what == "http404":
            return self._env(404, "task not found")
        raise AssertionError(f"unknown directive {what!r}")

    def _auth_ok(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.key}"

    async def _submit(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        hit = self._hit("submit", canonical(body), request)
        what = self._directive(hit)
        if not self._auth_ok(request):
            what = "http401"
        if what in (None, "reset_after", "hang_after", "nginx502_after"):
            self._n += 1
            task_id = next(self.task_ids) if self.task_ids is not None else f"task-{self._n:04d}"
            self.tasks[task_id] = FakeTask(task_id, body)
            self.created[hit.key] += 1
            if what == "reset_after":
                return await self._generic(request, hit, "reset")
            if what == "hang_after":
                return await self._generic(request, hit, "hang")
            if what == "nginx502_after":  # a load balancer lost the API's answer
                resp = await self._generic(request, hit, "nginx502")
                hit.answer = what
                return resp
            hit.answer = "ok"
            return self._env(200, "success", {"taskId": task_id})
        return await self._generic(request, hit, what)

    async def _status(self, request: web.Request) -> web.StreamResponse:
        task_id = request.query.get("taskId", "")
        hit = self._hit("status", task_id, request)
        what = self._directive(hit)
        if not self._auth_ok(request):
            what = "http401"
        task = self.tasks.get(task_id)
        if what is None and task is None:
            what = "http404"
        if what in (None, "pending", "processing", "success", "failed", "result_not_json"):
            assert task is not None
            task.polls += 1
            state = what or ("success" if task.polls >= self.polls_to_success else "processing")
            if what == "result_not_json":
                state = "success"
            data: dict[str, Any] = {"taskId": task_id, "state": state, "createTime": 1}
            if state == "success":
                urls = (
                    self.result_urls(task)
                    if self.result_urls is not None
                    else [f"{self.origin}/cdn/{_token(task_id)}/0.mp4"]
                )
                data["resultJson"] = (
                    '{"resultUrls": ["http://x/'
                    if what == "result_not_json"
                    else json.dumps({"resultUrls": urls})
                )
                data["completeTime"] = int(time.time() * 1000)
            elif state == "failed":
                data.update(failCode="CONTENT_VIOLATION", failMsg="no")
            hit.answer = what or state
            return self._env(200, "success", data)
        return await self._generic(request, hit, what)

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        hit = self._hit("file", "redirect", request)
        hit.answer = "redirect"
        raise web.HTTPFound(request.query["to"])

    async def _file(self, request: web.Request) -> web.StreamResponse:
        task_id = _untoken(request.match_info["task"])
        idx = int(request.match_info["idx"])
        hit = self._hit("file", task_id, request)
        what = self._directive(hit)
        if task_id not in self.tasks:
            hit.answer = "404"
            return web.Response(status=404)
        data = content_for(task_id, idx, self.file_size)
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        start = 0
        rng = request.headers.get("Range", "")
        status = 200
        if rng.startswith("bytes=") and what != "ignore_range":
            start = int(rng[6:].split("-")[0])
            status = 206
        headers = {"ETag": etag, "Accept-Ranges": "bytes", "Content-Type": "video/mp4"}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        if what == "huge_length":
            headers["Content-Length"] = str(50 * 1024**3)
            resp = web.StreamResponse(status=200, headers=headers)
            await resp.prepare(request)
            hit.answer = what
            await resp.write(data[:1000])
            if request.transport is not None:
                request.transport.close()
            return resp
        resp = web.StreamResponse(status=status, headers=headers)
        if what != "endless":
            resp.content_length = len(data) - start
        await resp.prepare(request)
        hit.answer = str(what or status)
        body = data[start:]
        if what == "endless":
            for _ in range(10_000):
                await resp.write(data[:65536])
            return resp
        if what == "cut":
            await resp.write(body[: len(body) // 2])
            await asyncio.sleep(0.01)
            if request.transport is not None:
                request.transport.close()
            return resp
        if what == "stall":
            await resp.write(body[: len(body) // 3])
            await asyncio.sleep(self.hang_s)
            return resp
        step = 4096 if what == "trickle" else 65536
        for i in range(0, len(body), step):
            await resp.write(body[i : i + step])
            if what == "trickle":
                await asyncio.sleep(0.002)
        await resp.write_eof()
        return resp


def _token(task_id: str) -> str:
    return task_id.encode().hex()


def _untoken(token: str) -> str:
    try:
        return bytes.fromhex(token).decode()
    except ValueError:
        return token
