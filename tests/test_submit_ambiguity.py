"""Issue 20 item 2: a submit is sent again only when the answer proves that no task was made.

A refused connection, a 429, or an error in the API's own JSON envelope prove it. A 5xx whose
body is a proxy's page (nginx's 502 HTML, plain text, nothing) may come after the API created
the task, so the job is ambiguous: never resent on its own, never paid twice.
"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from batchgen import store as st
from batchgen.adapters.client import ApiClient
from batchgen.adapters.limits import SlidingWindowLimiter
from batchgen.core import verdicts
from batchgen.core.verdicts import Act
from batchgen.errors import ApiConnectionError, RateLimited, ServerError
from batchgen.runner import execute
from tests.enginekit import mixed_jobs, options, prepare_state, state_rows
from tests.faultkit import NGINX_502, FakeApi, canonical, per_key

pytestmark = pytest.mark.timeout(60)


async def test_proxy_pages_make_submits_ambiguous_envelope_errors_are_retried(
    tmp_path: Path,
) -> None:
    plan = {
        0: ["nginx502_after"],  # the task IS created, then a load balancer's 502 page
        1: ["http503"],  # a proxy's page before anything: the client cannot tell
        2: ["empty503"],
        3: ["http504"],  # a gateway timeout
        4: ["http500env"],  # the API's own 500 envelope: retried
        5: ["http503env", "http500env"],
        6: ["env500"],  # code 500 in an HTTP 200 envelope: retried
        7: ["http429"],
    }
    jobs = mixed_jobs(len(plan))
    state = prepare_state(tmp_path, jobs)
    keys = [canonical(b) for _, _, b in jobs]
    async with FakeApi() as api:
        api.hooks["submit"] = per_key({keys[i]: answers for i, answers in plan.items()})
        outcome = await execute(
            options(tmp_path, api.base_url, poll_after_s=0.03, poll_every_s=0.03)
        )
    rows = {r["id"]: r for r in state_rows(state)}
    ambiguous = sorted(i for i, r in enumerate(rows.values()) if r["state"] == st.AMBIGUOUS)
    assert ambiguous == [0, 1, 2, 3], rows
    assert all(rows[f"job-{i:04d}"]["state"] == st.DONE for i in (4, 5, 6, 7))
    assert outcome.exit_code == 1
    # Exactly one task for the body answered by a 502 page after its creation, and one for
    # each retried body; each ambiguous submit went out once.
    assert [api.created[k] for k in keys] == [1, 0, 0, 0, 1, 1, 1, 1]
    assert api.count("submit") == 4 + 2 + 3 + 2 + 2


# -- the client's verdict on one answer to a submit -------------------------------------------

ENVELOPE_500 = json.dumps({"code": 500, "message": "Internal server error", "data": None})


@pytest.mark.parametrize(
    ("status", "body", "content_type", "raised"),
    [
        (502, NGINX_502, "text/html", ApiConnectionError),
        (503, "Service Temporarily Unavailable", "text/plain", ApiConnectionError),
        (503, "", "text/plain", ApiConnectionError),
        (500, "<html>oops</html>", "text/html", ApiConnectionError),
        # AWS API Gateway's own answer is JSON, but not the API's envelope
        (502, '{"message": "Internal server error"}', "application/json", ApiConnectionError),
        (504, ENVELOPE_500.replace("500", "504"), "application/json", ApiConnectionError),
        (500, ENVELOPE_500, "application/json", ServerError),
        (502, json.dumps({"code": 502, "message": "upstream busy"}), "text/plain", ServerError),
        (503, json.dumps({"message": "model unavailable", "data": None}), "text/html", ServerError),
        (200, ENVELOPE_500, "application/json", ServerError),
        (429, "<html>Too Many Requests</html>", "text/html", RateLimited),
        # An error of any kind that still names a task: it may exist (and be billed), so
        # the job is ambiguous: never failed as "refused", never resent.
        *[
            (
                http,
                json.dumps({"code": code, "message": "no", "data": {"taskId": "t-9"}}),
                ct,
                ApiConnectionError,
            )
            for http, code, ct in [
                (400, 400, "application/json"),
                (422, 422, "application/json"),
                (200, 400, "application/json"),
                (404, 404, "application/json"),
                (402, 402, "application/json"),
                (500, 500, "application/json"),
                (429, 429, "application/json"),
            ]
        ],
    ],
)
async def test_submit_answer_verdicts(status, body, content_type, raised) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, content_type=content_type)

    app = web.Application()
    app.router.add_post("/api/v1/generateTask/kling-2-1", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        async with aiohttp.ClientSession() as session:
            client = ApiClient(
                session,
                f"http://127.0.0.1:{runner.addresses[0][1]}/api/v1",
                "k",
                limiter=SlidingWindowLimiter(100, 1.0),
            )
            with pytest.raises(Exception) as info:
                await client.submit({"model": "kling-2-1", "input": {"prompt": "x"}})
    finally:
        await runner.cleanup()
    # The client raises what came; core/verdicts.py alone judges what it proves.
    verdict = verdicts.on_submit(info.value)
    assert verdict is not None
    want = {ApiConnectionError: Act.AMBIGUOUS, ServerError: Act.RETRY, RateLimited: Act.WAIT}
    assert verdict.act is want[raised], (info.value, verdict)
    if raised is ApiConnectionError:  # the job is ambiguous: its note says why, no page
        assert "<html" not in verdict.note
        assert ("t-9" in verdict.note) is ("t-9" in body)  # the note names the task


@pytest.mark.parametrize(
    ("deciding", "envelope", "retry"),
    [
        (429, False, True),
        (429, True, True),
        (500, True, True),
        (503, True, True),
        (500, False, False),
        (502, False, False),
        (503, False, False),
        (504, True, False),  # a gateway timeout, even in an envelope
        (524, True, False),
        (408, False, False),
        (408, True, True),
    ],
)
def test_submit_error_proves_no_task(deciding: int, envelope: bool, retry: bool) -> None:
    from batchgen.core.verdicts import proves_no_task
    from batchgen.errors import RateLimited, ServerError

    kind = RateLimited if deciding == 429 else ServerError
    assert proves_no_task(kind(deciding, "x", envelope=envelope)) is retry
    # An error answer naming a task proves nothing, whatever its code or envelope.
    assert not proves_no_task(kind(deciding, "x", envelope=envelope, task_id="t-1"))
