"""A notification receiver on loopback for the issue 30 tests: every request recorded as it
came (method, path, query, headers, exact body), each path answering 200, a chosen status,
or never (a hung receiver)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web


@dataclass
class Hit:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Hooks:
    base: str = ""
    hits: list[Hit] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)  # path prefix -> answer
    hang: set[str] = field(default_factory=set)  # path prefixes that never answer

    def on(self, prefix: str) -> list[Hit]:
        return [h for h in self.hits if h.path.startswith(prefix)]


@contextlib.asynccontextmanager
async def serve_hooks() -> AsyncIterator[Hooks]:
    rec = Hooks()
    forever = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        rec.hits.append(
            Hit(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                await request.read(),
            )
        )
        if any(request.path.startswith(p) for p in rec.hang):
            await forever.wait()
        status = next((s for p, s in rec.status.items() if request.path.startswith(p)), 200)
        return web.Response(status=status, text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    rec.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield rec
    finally:
        forever.set()
        await runner.cleanup()


def dead_url(path: str = "/hook") -> str:
    """A loopback URL where nothing listens: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def manifest(tmp_path: Path, *, name: str = "nightly", failing: int = 0, ok: int = 1) -> Path:
    """A small batch: `ok` jobs that succeed, `failing` ones the simulator fails with
    CONTENT_VIOLATION."""
    jobs = [f"  - {{id: ok-{i}, prompt: a calm lake {i}}}" for i in range(ok)]
    jobs += [f"  - {{id: bad-{i}, prompt: '[sim:content_violation] {i}'}}" for i in range(failing)]
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"version: 1\nname: {name}\n"
        "defaults: {mode: master-text-to-video, duration: 5, aspect_ratio: '16:9'}\n"
        "jobs:\n" + "\n".join(jobs) + "\n"
    )
    return path
