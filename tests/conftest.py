"""Shared fixtures: a running simulator (`sim`, `make_sim`), an HTTP session (`http`), a webhook
receiver (`make_receiver`), and the reference's example bodies."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from batchgen.simulator import Simulator

API_KEY = "sk-sim-demo"
AUTH = {"Authorization": f"Bearer {API_KEY}"}

# The three example requests of /work/shared/apixo-kling-2-1.md, as written there.
EXAMPLE_BODIES: list[dict[str, Any]] = [
    json.loads(s)
    for s in (
        '{"request_type":"async","provider":"value","input":{"mode":"standard-image-to-video",'
        '"prompt":"animate this still life scene with subtle camera movement","duration":5,'
        '"image_urls":["https://example.com/std_ref.jpg"],"negative_prompt":"blur, low quality",'
        '"cfg_scale":0.6}}',
        '{"request_type":"callback","callback_url":"https://your-server.com/callback",'
        '"provider":"official","input":{"mode":"pro-image-to-video","prompt":"city skyline '
        'timelapse from day to night","duration":10,"image_urls":["https://example.com/pro_start'
        '.jpg","https://example.com/pro_end.jpg"],"cfg_scale":0.4}}',
        '{"request_type":"async","input":{"mode":"master-text-to-video","prompt":"a futuristic '
        'drone flying through neon-lit streets at night","duration":5,"aspect_ratio":"9:16",'
        '"negative_prompt":"grainy, noisy, static","cfg_scale":0.3}}',
    )
]


@pytest.fixture(scope="session", autouse=True)
def _account_db_off_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """No test writes the real ~/.local/state, not even a module-scoped fixture's run (set up
    before any function-scoped fixture): the whole session's default is a temporary folder.
    Its own MonkeyPatch, so a test's `monkeypatch.undo()` cannot take it away."""
    with pytest.MonkeyPatch.context() as mp:
        state = tmp_path_factory.mktemp("xdg-state-session")
        mp.setenv("XDG_STATE_HOME", str(state))
        mp.delenv("BATCHGEN_ACCOUNT_DB", raising=False)
        yield state


@pytest.fixture(autouse=True)
def _account_db_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Each test's runs (and the subprocesses they start, which inherit os.environ) keep their
    account database in a folder of their own."""
    with pytest.MonkeyPatch.context() as mp:
        state = tmp_path_factory.mktemp("xdg-state")
        mp.setenv("XDG_STATE_HOME", str(state))
        mp.delenv("BATCHGEN_ACCOUNT_DB", raising=False)
        yield state


def make_body(prompt: str = "a calm lake at dawn", duration: int = 5, **top: Any) -> dict:
    """A valid text-to-video body; `top` sets top-level fields (request_type, callback_url)."""
    body = copy.deepcopy(EXAMPLE_BODIES[2])
    body["input"]["prompt"] = prompt
    body["input"]["duration"] = duration
    body.update(top)
    return body


async def eventually(predicate: Callable[[], Any], within: float = 10.0, every: float = 0.01):
    """Wait until predicate() is truthy (generous deadline for loaded machines)."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(every)


@pytest.fixture
async def make_sim() -> AsyncIterator[Callable[..., Awaitable[Simulator]]]:
    """Factory: `sim = await make_sim(time_scale=0.001, p_5xx=0.5)`; all are closed after."""
    sims: list[Simulator] = []

    async def make(**overrides: Any) -> Simulator:
        sim = Simulator(**overrides)
        await sim.start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        await sim.close()


@pytest.fixture
async def sim(make_sim) -> Simulator:
    return await make_sim(time_scale=0.001)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


@dataclass
class Receiver:
    """A webhook endpoint: records every POST; answers with `statuses` in turn (then 200),
    after `delay` seconds."""

    url: str = ""
    posts: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0


@pytest.fixture
async def make_receiver() -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    runners: list[web.AppRunner] = []

    async def make(statuses: list[int] | None = None, delay: float = 0.0) -> Receiver:
        rec = Receiver(statuses=list(statuses or []), delay=delay)

        async def hook(request: web.Request) -> web.Response:
            rec.posts.append(await request.json())
            status = rec.statuses.pop(0) if rec.statuses else 200
            if rec.delay:
                await asyncio.sleep(rec.delay)
            return web.Response(status=status, text="ok")

        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
        return rec

    yield make
    for runner in runners:
        await runner.cleanup()


@pytest.fixture(autouse=True)
def _cli_logging_undone():
    """A CLI run in this process (commands/execution.setup_logging) sets batchgen's loggers'
    levels, handlers and propagation for that process's life; a later test's caplog would miss
    records (a quiet run left the pricing logger at ERROR). Undo it after every test."""
    yield
    import logging

    root = logging.getLogger("batchgen")
    for handler in list(root.handlers):
        if getattr(handler, "batchgen_cli", False):
            root.removeHandler(handler)
    root.setLevel(logging.NOTSET)
    root.propagate = True
    for name in ("batchgen.money", "batchgen.money.spending", "batchgen.money.pricing"):
        logging.getLogger(name).setLevel(logging.NOTSET)
