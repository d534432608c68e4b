"""A server that closes idle keep-alive connections must not turn submits into ambiguous jobs.

Most API servers drop a connection after a few idle seconds (uvicorn and Node 5 s, gunicorn
2 s). A POST written onto a pooled connection at the instant the server closes it dies with
"server disconnected" or a reset, and since nothing says whether the server read it, the job
becomes ambiguous (the reference has no idempotency key). aiohttp retries only idempotent
methods in that race, so the API session must never offer a submit a connection idle for that
long. Measured before the fix with the simulator closing after 0.25 s idle and submits every
0.25 s: about a third of them failed this way.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from batchgen.adapters.client import ApiClient
from batchgen.adapters.limits import SlidingWindowLimiter
from batchgen.adapters.sessions import open_sessions
from batchgen.errors import ApiConnectionError
from batchgen.settings import API_KEEPALIVE_S, RunOptions
from batchgen.simulator.server import Simulator

from .conftest import make_body

SERVER_IDLE_S = 0.25  # the test's server, 8 times quicker than gunicorn's 2 s
CLIENT_IDLE_S = 0.12  # and the client's keep-alive scaled alike (API_KEEPALIVE_S is 1 s)


def test_the_api_keepalive_is_below_common_server_idle_timeouts(tmp_path: Path) -> None:
    opts = RunOptions.from_flat(state_path=tmp_path / "s.db", output_dir=tmp_path / "out")
    assert opts.api.api_keepalive_s == API_KEEPALIVE_S <= 1.0  # gunicorn's 2 s is the shortest


@pytest.mark.timeout(60)
async def test_submits_spaced_like_the_server_idle_timeout_never_die_on_a_closed_connection(
    tmp_path: Path,
) -> None:
    opts = RunOptions.from_flat(
        state_path=tmp_path / "s.db", output_dir=tmp_path / "out", api_keepalive_s=CLIENT_IDLE_S
    )
    rng = random.Random(7)
    lost: list[str] = []
    async with (
        Simulator(time_scale=0.01, seed=3, keepalive_s=SERVER_IDLE_S) as sim,
        open_sessions(opts, public_only=False) as sessions,
    ):
        client = ApiClient(
            sessions.api, sim.base_url, "sk-sim-demo", limiter=SlidingWindowLimiter(10_000, 60.0)
        )
        for _ in range(24):
            # land right around the moment the server drops the idle connection
            await asyncio.sleep(SERVER_IDLE_S + rng.uniform(-0.004, 0.004))
            try:
                await client.submit(make_body())
            except ApiConnectionError as exc:
                lost.append(str(exc))
    assert lost == []
    assert len(sim.store) == 24
