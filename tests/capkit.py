"""A scripted APIXO with a real concurrency cap, written from the reference, not the simulator.

Tasks run for a fixed time on the server's clock; while `cap` of them are pending or
processing, a submit is answered 429. The answer's wording, and whether it carries
Retry-After, are the test's to choose: the reference only says "beyond either, 429". A
`refuse_all` switch answers every submit 429 (a rate limit the client cannot see coming).
Every request is counted at the server, so tests measure what the server saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.enginekit import KEY

FTYP = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"
VIDEO = FTYP + bytes(2000)


class CappedApi:
    def __init__(
        self,
        *,
        cap: int = 50,
        task_s: float = 0.1,
        message: str = "Too Many Requests",
        retry_after: str | None = None,
        hold_until_refused: bool = False,
    ) -> None:
        self.cap = cap
        # Tasks do not end before the first 429: the cap is reached however slowly the client
        # submits (a busy machine), so a test of what the client learns from it cannot miss it.
        self.hold_until_refused = hold_until_refused
        self.task_s = task_s
        self.message = message
        self.retry_after = retry_after
        self.refuse_all: Callable[[], bool] = lambda: False
        self.on_refusal: Callable[[], None] | None = None
        self.ends: dict[str, float] = {}
        self.submits = 0
        self.accepted = 0
        self.refused = 0
        self.refusal_times: list[float] = []
        self.peak = 0
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> CappedApi:
        app = web.Application()
        app.router.add_post("/api/v1/generateTask/kling-2-1", self._submit)
        app.router.add_get("/api/v1/statusTask/kling-2-1", self._status)
        app.router.add_get("/cdn/{task}.mp4", self._file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.origin = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self.base_url = f"{self.origin}/api/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def end_of(self, task_id: str) -> float:
        end = self.ends[task_id]
        if not self.hold_until_refused:
            return end
        return max(end, self.refusal_times[0]) if self.refusal_times else float("inf")

    def in_flight(self, now: float) -> int:
        return sum(1 for task_id in self.ends if self.end_of(task_id) > now)

    @staticmethod
    def _env(code: int, message: str, data: Any = None, **kw: Any) -> web.Response:
        return web.json_response(
            {"code": code, "message": message, "data": data}, status=code, **kw
        )

    async def _submit(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return self._env(401, "Invalid API key")
        await request.json()
        self.submits += 1
        now = time.monotonic()
        if self.refuse_all() or self.in_flight(now) >= self.cap:
            self.refused += 1
            self.refusal_times.append(now)
            if self.on_refusal is not None:
                self.on_refusal()
            headers = {"Retry-After": self.retry_after} if self.retry_after else None
            return self._env(429, self.message, headers=headers)
        self.accepted += 1
        task_id = f"t{self.accepted:05d}"
        self.ends[task_id] = now + self.task_s
        self.peak = max(self.peak, self.in_flight(now))
        return self._env(200, "success", {"taskId": task_id})

    async def _status(self, request: web.Request) -> web.Response:
        task_id = request.query.get("taskId", "")
        if task_id not in self.ends:
            return self._env(404, "task not found")
        data: dict[str, Any] = {"taskId": task_id, "state": "processing"}
        if time.monotonic() >= self.end_of(task_id):
            data["state"] = "success"
            data["resultJson"] = f'{{"resultUrls": ["{self.origin}/cdn/{task_id}.mp4"]}}'
        return self._env(200, "success", data)

    async def _file(self, request: web.Request) -> web.Response:
        return web.Response(body=VIDEO, content_type="video/mp4")
