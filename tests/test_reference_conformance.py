"""The client, the policy and the webhook receiver against /work/shared/apixo-kling-2-1.md, as
a different (but conforming) server or a slightly sloppy real one could speak it.

The API side is a raw TCP server over loopback that answers exactly the bytes a test scripts
(no Content-Type, chunked, gzip, odd charsets, ...), so nothing about the answer is decided by
our simulator or by aiohttp's server.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from batchgen import store as st
from batchgen.adapters.answers import parse_status
from batchgen.adapters.client import MAX_ANSWER_BYTES, ApiClient
from batchgen.adapters.limits import SlidingWindowLimiter
from batchgen.callbacks import CallbackReceiver
from batchgen.core.policy import Backoff
from batchgen.core.schedule import LONG_VIDEO_SECONDS, PollSchedule, first_poll_delay
from batchgen.errors import (
    AuthError,
    BadAnswer,
    CreditsExhausted,
    InvalidRequest,
    NotFound,
    RateLimited,
    ServerError,
    UntrackableTaskId,
    WrongEndpoint,
)
from batchgen.runner import execute
from batchgen.settings import RunOptions
from tests.enginekit import mixed_jobs, options, prepare_state, state_rows

pytestmark = pytest.mark.timeout(60)

KEY = "sk-ref-0123456789"
URL = "https://r2.apixo.ai/video.mp4"
NOW = 1_767_965_700.0  # the fixed wall clock the client reads Retry-After dates against

# The reference's own answers, byte for byte.
SUBMIT_OK = {"code": 200, "message": "success", "data": {"taskId": "task_12345678"}}
STATUS_OK = {
    "code": 200,
    "message": "success",
    "data": {
        "taskId": "task_12345678",
        "state": "success",
        "resultJson": '{"resultUrls":["https://r2.apixo.ai/video.mp4"]}',
        "createTime": 1767965610929,
        "completeTime": 1767965652317,
        "costTime": 41388,
    },
}
STATUS_FAILED = {
    "code": 200,
    "message": "success",
    "data": {
        "taskId": "task_12345678",
        "state": "failed",
        "failCode": "CONTENT_VIOLATION",
        "failMsg": "Content does not meet safety guidelines",
    },
}


# -- a raw HTTP server: every byte of the answer is the test's ----------------------------------


def answer(
    status: int = 200,
    body: bytes | str | dict | list | None = b"",
    headers: list[tuple[str, str]] | None = None,
    *,
    content_type: str | None = "application/json",
    chunked: bool = False,
) -> bytes:
    if isinstance(body, dict | list):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    body = body or b""
    lines = [f"HTTP/1.1 {status} X"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines += [f"{k}: {v}" for k, v in headers or []]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        payload = b"".join(
            f"{len(body[i : i + 7]):x}\r\n".encode() + body[i : i + 7] + b"\r\n"
            for i in range(0, len(body), 7)
        )
        payload += b"0\r\n\r\n"
    else:
        if not any(k.lower() == "content-length" for k, _ in headers or []):
            lines.append(f"Content-Length: {len(body)}")
        payload = body
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


@dataclass
class RawApi:
    base_url: str = ""
    answers: list[bytes] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    balance_reads: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            first, *rest = head.decode("latin-1").split("\r\n")
            hdrs = {}
            for line in rest:
                if ":" in line:
                    k, v = line.split(":", 1)
                    hdrs[k.strip().lower()] = v.strip()
            body = await reader.readexactly(int(hdrs.get("content-length", "0")))
            if first.startswith("GET /api/v1/apikeys/current-balance"):  # a run's balance reads
                self.balance_reads += 1  # this API has none: the run goes by the price table
                writer.write(answer(404, {"code": 404, "message": "not found", "data": None}))
                await writer.drain()
                return
            self.requests.append((first, hdrs, body))
            writer.write(self.answers.pop(0) if self.answers else answer(500, b"no answer"))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def api() -> AsyncIterator[tuple[RawApi, ApiClient]]:
    raw = RawApi()
    server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    raw.base_url = f"http://127.0.0.1:{port}/api/v1"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        client = ApiClient(
            session,
            raw.base_url,
            KEY,
            limiter=SlidingWindowLimiter(10_000, 60.0),
            read_timeout=10.0,
            wall_clock=lambda: NOW,
            backoff=Backoff(base=1.0, cap=60.0),
        )
        yield raw, client
    server.close()
    await server.wait_closed()


async def submit(api: tuple[RawApi, ApiClient], *answers: bytes) -> str:
    raw, client = api
    raw.answers[:] = list(answers)
    return await client.submit({"request_type": "async", "input": {"prompt": "p"}})


async def status(api: tuple[RawApi, ApiClient], *answers: bytes, task_id: str = "task_12345678"):
    raw, client = api
    raw.answers[:] = list(answers)
    return await client.status(task_id)


# -- requests as the reference writes them ------------------------------------------------------


async def test_requests_carry_the_reference_headers_path_and_query(api) -> None:
    raw, _ = api
    assert await submit(api, answer(200, SUBMIT_OK)) == "task_12345678"
    assert (await status(api, answer(200, STATUS_OK))).state == "success"
    (post_line, post_headers, post_body), (get_line, get_headers, _) = raw.requests
    assert post_line == "POST /api/v1/generateTask/kling-2-1 HTTP/1.1"
    assert post_headers["authorization"] == f"Bearer {KEY}"
    assert post_headers["content-type"].startswith("application/json")
    assert json.loads(post_body)["request_type"] == "async"
    assert get_line == "GET /api/v1/statusTask/kling-2-1?taskId=task_12345678 HTTP/1.1"
    assert get_headers["authorization"] == f"Bearer {KEY}"


# -- submit: every readable envelope gives the task id ------------------------------------------

BIG_PAD = "x" * (2 * MAX_ANSWER_BYTES)


@pytest.mark.parametrize(
    "raw_answer",
    [
        pytest.param(answer(200, SUBMIT_OK), id="reference"),
        pytest.param(answer(201, SUBMIT_OK), id="http-201"),
        pytest.param(
            answer(200, {"code": "200", "msg": "ok", "data": {"taskId": "task_12345678"}}),
            id="code-as-string-and-msg",
        ),
        pytest.param(
            answer(200, {"code": 200.0, "data": {"taskId": "task_12345678"}}), id="code-as-float"
        ),
        pytest.param(answer(200, {"code": 0, "data": {"taskId": "task_12345678"}}), id="code-0"),
        pytest.param(answer(200, {"data": {"taskId": "task_12345678"}}), id="no-code"),
        pytest.param(
            answer(
                200, {**SUBMIT_OK, "requestId": "r", "data": {"taskId": "task_12345678", "x": 1}}
            ),
            id="unknown-fields",
        ),
        pytest.param(
            answer(200, {"code": 200, "data": {"task_id": "task_12345678"}}), id="task_id-spelling"
        ),
        pytest.param(
            answer(200, SUBMIT_OK, content_type="application/json; charset=utf-8"),
            id="charset-utf-8",
        ),
        pytest.param(answer(200, SUBMIT_OK, content_type="text/plain"), id="text-plain"),
        pytest.param(answer(200, SUBMIT_OK, content_type="text/html"), id="text-html"),
        pytest.param(answer(200, SUBMIT_OK, content_type=None), id="no-content-type"),
        pytest.param(answer(200, b"\xef\xbb\xbf" + json.dumps(SUBMIT_OK).encode()), id="utf8-bom"),
        pytest.param(answer(200, SUBMIT_OK, chunked=True), id="chunked"),
        pytest.param(
            answer(
                200,
                gzip.compress(json.dumps(SUBMIT_OK).encode()),
                [("Content-Encoding", "gzip")],
            ),
            id="gzip",
        ),
        pytest.param(
            answer(
                200,
                zlib.compress(json.dumps(SUBMIT_OK).encode()),
                [("Content-Encoding", "deflate")],
            ),
            id="deflate",
        ),
        pytest.param(
            answer(
                200,
                gzip.compress(json.dumps(SUBMIT_OK).encode()),
                [("Content-Encoding", "gzip")],
                chunked=True,
            ),
            id="gzip-chunked",
        ),
        # -- sloppier servers, still unmistakable -------------------------------------------
        pytest.param(
            answer(
                200,
                '{"code":200,"message":"r\xe9ussi","data":{"taskId":"task_12345678"}}'.encode(
                    "latin-1"
                ),
                content_type="application/json; charset=iso-8859-1",
            ),
            id="latin-1-body",
        ),
        pytest.param(
            answer(200, {"code": 200, "data": json.dumps({"taskId": "task_12345678"})}),
            id="data-as-json-string",
        ),
        pytest.param(
            answer(200, {"code": 200, "message": "success", "taskId": "task_12345678"}),
            id="task-id-beside-the-envelope",
        ),
    ],
)
async def test_submit_reads_the_task_id(api, raw_answer: bytes) -> None:
    assert await submit(api, raw_answer) == "task_12345678"


@pytest.mark.parametrize("task_id", ["../../etc", "a b", "t" * 300, "タスク", "x?a=b&c=d4"])
async def test_submit_takes_any_task_id_it_can_send_back(api, task_id: str) -> None:
    """A task id is data (issue 20): the reference promises no shape, and the task is paid."""
    assert await submit(api, answer(200, {"code": 200, "data": {"taskId": task_id}})) == task_id


@pytest.mark.parametrize("task_id", [True, "", "a\x1bb", "t" * 5000])
async def test_a_task_id_that_cannot_be_sent_back_is_untrackable(api, task_id: object) -> None:
    """The answer came, so a task exists: not ambiguous (which invites a resubmit)."""
    with pytest.raises(UntrackableTaskId) as info:
        await submit(api, answer(200, {"code": 200, "data": {"taskId": task_id}}))
    assert "\x1b" not in info.value.shown and len(info.value.shown) < 240


def _ambiguous(exc: BaseException) -> bool:
    """What the engine marks ambiguous: core/verdicts.py's one judgement of a submit's error."""
    from batchgen.core import verdicts

    verdict = verdicts.on_submit(exc)
    return verdict is not None and verdict.act is verdicts.Act.AMBIGUOUS


@pytest.mark.parametrize(
    "raw_answer",
    [
        pytest.param(answer(200, b""), id="empty"),
        pytest.param(answer(200, b"<html>ok</html>", content_type="text/html"), id="html"),
        pytest.param(answer(200, b'{"code":200,"data":{"taskId":"t'), id="cut-json"),
        pytest.param(answer(200, {"code": 200, "message": "success", "data": None}), id="null"),
        pytest.param(answer(200, {"code": 200, "data": {}}), id="no-task-id"),
        pytest.param(answer(200, [1, 2]), id="list"),
        pytest.param(answer(200, {"code": 200, "data": "task_12345678"}), id="data-bare-string"),
        pytest.param(
            answer(200, {"code": 200, "data": {"taskId": "task_1"}, "pad": BIG_PAD}),
            id="over-the-cap",
        ),
        pytest.param(
            answer(200, {"code": 200, "data": {"taskId": "task_1"}, "pad": BIG_PAD}, chunked=True),
            id="over-the-cap-chunked",
        ),
        pytest.param(
            # 2 MiB of valid JSON in a few KiB of gzip: the cap is on what is decoded
            answer(
                200,
                gzip.compress(
                    json.dumps({"code": 200, "data": {"taskId": "task_1"}, "pad": BIG_PAD}).encode()
                ),
                [("Content-Encoding", "gzip")],
            ),
            id="over-the-cap-gzip",
        ),
        pytest.param(
            answer(200, b"not gzip at all", [("Content-Encoding", "gzip")]), id="broken-gzip"
        ),
        pytest.param(
            answer(200, json.dumps(SUBMIT_OK).encode()[:20], [("Content-Length", "200")]),
            id="short-body",
        ),
        # a gateway that gave up waiting: the API may still have created (and billed) the task
        pytest.param(answer(504, b"<html>504 Gateway Time-out</html>"), id="http-504"),
        pytest.param(answer(524, b"origin timed out"), id="http-524"),
        pytest.param(answer(200, {"code": 504, "message": "gateway timeout"}), id="body-504"),
        # a proxy's page, not the API's envelope: it may have lost the API's answer
        pytest.param(answer(502, b"<html>502</html>", content_type="text/html"), id="html-502"),
        pytest.param(answer(503, b"Service Unavailable", content_type="text/plain"), id="text-503"),
        pytest.param(answer(503, b""), id="empty-503"),
        # "failed, retry" yet naming a task: it may exist, a retry could pay twice
        pytest.param(
            answer(500, {"code": 500, "message": "error", "data": {"taskId": "task_1"}}),
            id="500-naming-a-task",
        ),
        pytest.param(
            answer(200, {"code": 429, "message": "busy", "data": {"taskId": "task_1"}}),
            id="429-naming-a-task",
        ),
    ],
)
async def test_a_submit_answer_that_may_hide_a_task_stays_ambiguous(api, raw_answer: bytes) -> None:
    with pytest.raises(Exception) as info:
        await submit(api, raw_answer)
    assert _ambiguous(info.value), info.value


# -- errors: HTTP status or a code in a 200 body --------------------------------------------------


@pytest.mark.parametrize(
    ("raw_answer", "exc_type", "code"),
    [
        # the reference's error envelope, both ways it may arrive
        (
            answer(400, {"code": 400, "message": "Insufficient credits", "data": None}),
            CreditsExhausted,
            400,
        ),
        (
            answer(200, {"code": 400, "message": "Insufficient credits", "data": None}),
            CreditsExhausted,
            400,
        ),
        (answer(200, {"code": "400", "msg": "Insufficient credits"}), CreditsExhausted, 400),
        (answer(400, {"code": 400, "message": "prompt is required"}), InvalidRequest, 400),
        (answer(200, {"code": 400, "message": "duration must be 5 or 10"}), InvalidRequest, 400),
        (answer(400, b"<html>Bad Request</html>", content_type="text/html"), InvalidRequest, 400),
        (answer(400, b""), InvalidRequest, 400),
        (answer(401, {"code": 401, "message": "Invalid API key"}), AuthError, 401),
        (answer(401, b""), AuthError, 401),
        (answer(200, {"code": 401, "message": "Unauthorized"}), AuthError, 401),
        (answer(429, {"code": 429, "message": "rate limit exceeded"}), RateLimited, 429),
        (answer(429, b""), RateLimited, 429),
        (answer(200, {"code": 429, "message": "rate limit exceeded"}), RateLimited, 429),
        (answer(500, {"code": 500, "message": "Internal server error"}), ServerError, 500),
        (answer(503, {"code": 503, "message": "model unavailable"}), ServerError, 503),
        (answer(200, {"code": 500, "message": "Internal server error"}), ServerError, 500),
        # the reported code is the one that decided, never a "success" 0 or a mismatched one
        (answer(400, {"code": 0, "message": "bad prompt"}), InvalidRequest, 400),
        (answer(401, {"code": 400, "message": "invalid key"}), AuthError, 401),
        (answer(402, {"message": "Payment Required"}), CreditsExhausted, 402),
        (answer(400, {"code": 401, "message": "Invalid API key"}), AuthError, 401),
        # other spellings of the message: its words decide credits against a bad request
        (answer(400, {"error": "Insufficient credits"}), CreditsExhausted, 400),
        (
            answer(400, {"code": 400, "message": "", "msg": "Insufficient credits"}),
            CreditsExhausted,
            400,
        ),
        (answer(400, {"error": {"message": "Insufficient credits"}}), CreditsExhausted, 400),
        (answer(400, {"detail": "prompt is required"}), InvalidRequest, 400),
    ],
)
async def test_submit_errors(api, raw_answer: bytes, exc_type: type, code: int) -> None:
    with pytest.raises(exc_type) as info:
        await submit(api, raw_answer)
    assert type(info.value) is exc_type and info.value.status == code


async def test_the_engine_never_resends_a_submit_a_gateway_timed_out(api, tmp_path) -> None:
    """End to end: both jobs are marked ambiguous after one POST each, never resent."""
    raw, _ = api
    state = prepare_state(tmp_path, mixed_jobs(2))
    raw.answers[:] = [
        answer(504, b"<html>504 Gateway Time-out</html>", content_type="text/html"),
        answer(500, {"code": 500, "message": "error", "data": {"taskId": "task_1"}}),
    ]
    outcome = await execute(options(tmp_path, raw.base_url))
    assert outcome.exit_code == 1
    assert [r["state"] for r in state_rows(state)] == [st.AMBIGUOUS, st.AMBIGUOUS]
    assert [line for line, _, _ in raw.requests] == [
        "POST /api/v1/generateTask/kling-2-1 HTTP/1.1"
    ] * 2


@pytest.mark.parametrize("code", [301, 302, 307, 308])
async def test_a_redirect_is_a_wrong_base_url_never_followed(api, code: int) -> None:
    raw, _ = api
    moved = answer(code, b"", [("Location", "https://api.apixo.ai/api/v1/generateTask/x")])
    with pytest.raises(WrongEndpoint) as info:
        await submit(api, moved)
    assert "https://api.apixo.ai" in str(info.value) and "--base-url" in str(info.value)
    assert len(raw.requests) == 1  # not followed: a POST is never replayed at another place
    with pytest.raises(WrongEndpoint):
        await status(api, answer(code, b"", [("Location", "::not a url:: x")]))


async def test_the_engine_stops_at_a_redirecting_api_without_failing_jobs(api, tmp_path) -> None:
    """http:// given for an https-only API: exit 3 with the reason, every job still pending
    (before, each job failed in turn as HTTP_301)."""
    raw, _ = api
    state = prepare_state(tmp_path, mixed_jobs(3))
    raw.answers[:] = [answer(301, b"", [("Location", "https://api.apixo.ai/")])] * 3
    outcome = await execute(options(tmp_path, raw.base_url))
    assert outcome.exit_code == 3, outcome
    assert "--base-url" in (outcome.account_error or "")
    assert [r["state"] for r in state_rows(state)] == [st.PENDING] * 3


async def test_a_400_naming_a_task_makes_the_job_ambiguous(api) -> None:
    """Not retried either way, so nothing is paid twice by the run. Not failed as "refused"
    either: that would release its price under the spend cap, and `retry` would submit it
    again, while the task it names may exist and be billed. Ambiguous, with the task named."""
    from batchgen.core import verdicts

    with pytest.raises(Exception) as info:
        await submit(api, answer(400, {"code": 400, "data": {"taskId": "task_1"}}))
    verdict = verdicts.on_submit(info.value)
    assert verdict is not None and verdict.act is verdicts.Act.AMBIGUOUS
    assert "task_1" in verdict.note


async def test_a_504_to_a_poll_is_only_retried(api) -> None:
    """A status request is idempotent: a gateway timeout there is just a transient error."""
    with pytest.raises(ServerError) as info:
        await status(api, answer(504, b"gateway timeout"))
    assert not isinstance(info.value, BadAnswer) and info.value.status == 504


# -- Retry-After ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        ("1.5", 1.5),
        ("Fri, 09 Jan 2026 13:35:20 GMT", 20.0),  # NOW + 20 s
        ("Fri, 09 Jan 2026 13:30:00 GMT", 0.0),  # in the past
        ("soon", None),
        (None, None),
    ],
)
async def test_429_retry_after_in_every_form(api, header: str | None, expected) -> None:
    _, client = api
    headers = [] if header is None else [("Retry-After", header)]
    with pytest.raises(RateLimited) as info:
        await submit(api, answer(429, {"code": 429, "message": "slow down"}, headers))
    assert info.value.retry_after == (None if expected is None else pytest.approx(expected))
    # the whole client pauses (Retry-After, or its own backoff when there is none usable)
    if expected != 0.0:
        assert client._limiter.paused_until is not None


async def test_a_503_retry_after_is_honoured_too(api) -> None:
    """RFC 9110: Retry-After on a 503 says how long the service will be unavailable."""
    _, client = api
    with pytest.raises(ServerError) as info:
        await status(api, answer(503, b"down", [("Retry-After", "30")], content_type="text/plain"))
    assert info.value.retry_after == pytest.approx(30.0)
    assert client._limiter.paused_until is not None


async def test_a_500_without_retry_after_does_not_pause_the_client(api) -> None:
    _, client = api
    with pytest.raises(ServerError) as info:
        await status(api, answer(500, {"code": 500, "message": "boom"}))
    assert info.value.retry_after is None and client._limiter.paused_until is None


# -- status answers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw_answer",
    [
        pytest.param(answer(200, STATUS_OK), id="reference"),
        pytest.param(answer(200, STATUS_OK, content_type="text/plain"), id="text-plain"),
        pytest.param(answer(200, STATUS_OK, content_type=None), id="no-content-type"),
        pytest.param(answer(200, STATUS_OK, chunked=True), id="chunked"),
        pytest.param(
            answer(
                200, gzip.compress(json.dumps(STATUS_OK).encode()), [("Content-Encoding", "gzip")]
            ),
            id="gzip",
        ),
        pytest.param(
            answer(200, {**STATUS_OK, "code": "200", "msg": "success", "traceId": "x"}),
            id="code-string-msg",
        ),
    ],
)
async def test_status_success_over_the_wire(api, raw_answer: bytes) -> None:
    got = await status(api, raw_answer)
    assert (got.state, got.result_urls, got.task_id) == ("success", [URL], "task_12345678")
    assert (got.create_time_ms, got.complete_time_ms, got.cost_time_ms) == (
        1767965610929,
        1767965652317,
        41388,
    )


async def test_status_failed_over_the_wire(api) -> None:
    got = await status(api, answer(200, STATUS_FAILED))
    assert (got.state, got.fail_code, got.fail_msg) == (
        "failed",
        "CONTENT_VIOLATION",
        "Content does not meet safety guidelines",
    )
    assert got.create_time_ms is None and got.result_urls == []


@pytest.mark.parametrize(
    ("raw_answer", "exc_type"),
    [
        (answer(200, {"code": 200, "message": "success", "data": None}), BadAnswer),
        (answer(200, b"<html>maintenance</html>", content_type="text/html"), BadAnswer),
        (answer(200, b""), BadAnswer),
        (answer(404, {"code": 404, "message": "task not found"}), NotFound),
        (answer(200, {"code": 404, "message": "task not found"}), NotFound),
        (answer(502, b""), ServerError),
    ],
)
async def test_status_errors(api, raw_answer: bytes, exc_type: type) -> None:
    with pytest.raises(exc_type):
        await status(api, raw_answer)


def data(**fields: Any) -> dict[str, Any]:
    return {"taskId": "t1", **fields}


@pytest.mark.parametrize(
    ("fields", "state", "urls"),
    [
        pytest.param({"state": "pending"}, "pending", [], id="pending"),
        pytest.param({"state": "processing"}, "processing", [], id="processing"),
        pytest.param({"state": " Processing\n"}, "processing", [], id="case-and-space"),
        pytest.param({"state": "SUCCESS", "resultJson": {"resultUrls": [URL]}}, "success", [URL]),
        pytest.param(
            {"state": "success", "resultJson": json.dumps({"resultUrls": [URL], "extra": 1})},
            "success",
            [URL],
            id="extra-fields-in-resultJson",
        ),
        pytest.param(
            {"state": None, "status": "success", "resultJson": json.dumps({"resultUrls": [URL]})},
            "success",
            [URL],
            id="state-null-status-set",
        ),
        pytest.param(
            {"state": "success", "resultJson": json.dumps([URL])},
            "success",
            [URL],
            id="resultJson-is-a-list",
        ),
        pytest.param(
            {"state": "success", "resultJson": json.dumps(json.dumps({"resultUrls": [URL]}))},
            "success",
            [URL],
            id="resultJson-encoded-twice",
        ),
        pytest.param(
            {"state": "success", "resultJson": json.dumps({"resultUrls": [{"url": URL}]})},
            "success",
            [URL],
            id="url-objects",
        ),
        pytest.param(
            {"state": "success", "resultJson": json.dumps({"resultUrls": [f" {URL}\n"]})},
            "success",
            [URL],
            id="url-padded-with-whitespace",
        ),
        pytest.param(
            {"state": "success", "resultJson": "", "resultUrls": [URL]},
            "success",
            [URL],
            id="empty-resultJson-urls-beside",
        ),
        pytest.param(
            {"state": "success", "resultJson": None, "result": {"resultUrls": [URL]}},
            "success",
            [URL],
            id="null-resultJson-result-beside",
        ),
    ],
)
def test_status_shapes(fields: dict[str, Any], state: str, urls: list[str]) -> None:
    got = parse_status(data(**fields), "t1")
    assert (got.state, got.result_urls) == (state, urls)


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ({}, (None, None, None)),  # all optional
        ({"createTime": None, "completeTime": None, "costTime": None}, (None, None, None)),
        (
            {"createTime": "1767965610929", "completeTime": 1767965652317.0, "costTime": "41388"},
            (1767965610929, 1767965652317, 41388),
        ),
        (
            {
                "createTime": "1767965610929.0",
                "completeTime": " 1767965652317 ",
                "costTime": 41388.7,
            },
            (1767965610929, 1767965652317, 41388),
        ),
        # Unix seconds where milliseconds were promised: read as the moment they clearly mean
        (
            {"createTime": 1767965610, "completeTime": 1767965652.317},
            (1767965610000, 1767965652317, None),
        ),
        # nonsense is dropped, not believed (a negative completion would date the URL's expiry
        # to 1970)
        (
            {"createTime": -5, "completeTime": 0, "costTime": -1},
            (None, None, None),
        ),
        ({"createTime": "soon", "completeTime": True, "costTime": [1]}, (None, None, None)),
    ],
)
def test_status_times(times: dict[str, Any], expected: tuple) -> None:
    got = parse_status(
        data(state="success", resultJson=json.dumps({"resultUrls": [URL]}), **times), "t1"
    )
    assert (got.create_time_ms, got.complete_time_ms, got.cost_time_ms) == expected


def test_an_answer_about_another_task_is_not_believed() -> None:
    """A status answer naming a different task (a mixed-up cache, a hostile proxy) must not
    finish this job with another job's video."""
    with pytest.raises(BadAnswer):
        parse_status(
            data(
                taskId="task_other", state="success", resultJson=json.dumps({"resultUrls": [URL]})
            ),
            "t1",
        )
    # an id in another JSON type but the same text is the same task, named as we recorded it;
    # another case is another id (ids are case-sensitive data: base64 ids differ by case)
    assert parse_status({"taskId": 12345, "state": "pending"}, "12345").task_id == "12345"
    with pytest.raises(BadAnswer):
        parse_status({"taskId": "TASK_1", "state": "pending"}, "task_1")


@pytest.mark.parametrize(
    "result_json",
    ['{"resultUrls": ["https://x/', "{not json", "", "[]", '{"resultUrls": []}', "null"],
)
def test_a_success_without_a_readable_url_is_a_bad_answer(result_json: str) -> None:
    """Retried as an unreadable answer (never failed for it), never finished without a URL."""
    with pytest.raises(BadAnswer):
        parse_status(data(state="success", resultJson=result_json), "t1")


def test_a_bare_url_as_resultjson_is_read() -> None:
    got = parse_status(data(state="success", resultJson=URL), "t1")
    assert got.result_urls == [URL]


def test_failed_with_odd_fail_fields() -> None:
    got = parse_status(data(state="FAILED", failCode=1001, failMsg=None), "t1")
    assert got.state == "failed" and got.fail_code == "1001" and got.fail_msg


# -- the reference's limits and timings are the defaults ------------------------------------------


def test_defaults_follow_the_reference(tmp_path) -> None:
    opts = RunOptions.from_flat(state_path=tmp_path / "s.db", output_dir=tmp_path)
    assert (opts.limits.rate_limit, opts.limits.rate_period_s) == (
        10_000,
        60.0,
    )  # 10,000 requests per minute
    assert opts.limits.max_in_flight == 1000  # 1,000 concurrent tasks
    assert opts.timing.result_lifetime_s == 15 * 86400  # URLs expire 15 days after completion
    assert (opts.timing.poll_after_s, opts.timing.poll_every_s) == (
        60.0,
        5.0,
    )  # wait 60 s, then every 5 s
    sched = PollSchedule()

    class Low:
        def uniform(self, a: float, b: float) -> float:
            return a

    # a 5 s video is not polled before 60 s, a 10 s one not before 90 s (90-120 s to make)
    assert first_poll_delay(5, sched, Low()) == 60.0  # type: ignore[arg-type]
    assert first_poll_delay(LONG_VIDEO_SECONDS, sched, Low()) == 90.0  # type: ignore[arg-type]


# -- the webhook receiver -----------------------------------------------------------------------

SECRET = "ref-secret-" + "z" * 32


class StubEngine:
    def __init__(self) -> None:
        self.known = {"task_12345678", "task_b"}
        self.notified: list[tuple[str, Any]] = []

    def knows_task(self, task_id: str) -> bool:
        return task_id in self.known

    def notify(self, task_id: str, status: Any = None, **_: Any) -> bool:
        self.notified.append((task_id, status))
        return True


@pytest.fixture
async def receiver() -> AsyncIterator[Any]:
    made: list[CallbackReceiver] = []

    async def make(trust: bool = False) -> tuple[CallbackReceiver, StubEngine]:
        engine = StubEngine()
        rec = CallbackReceiver(engine, SECRET, trust=trust)  # type: ignore[arg-type]
        await rec.start()
        made.append(rec)
        return rec, engine

    yield make
    for rec in made:
        await rec.stop()


async def deliver(url: str, raw: bytes, headers: dict[str, str] | None = None) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=raw, headers=headers or {"Content-Type": "application/json"}) as r,
    ):
        await r.read()
        return r.status


FLAT_OK = STATUS_OK["data"]


@pytest.mark.parametrize(
    ("raw", "headers", "suffix"),
    [
        pytest.param(json.dumps(STATUS_OK).encode(), None, "", id="reference-success"),
        pytest.param(json.dumps(STATUS_FAILED).encode(), None, "", id="reference-failed"),
        pytest.param(
            json.dumps(STATUS_OK).encode(), {"Content-Type": "text/plain"}, "", id="text-plain"
        ),
        pytest.param(json.dumps(STATUS_OK).encode(), {}, "", id="no-content-type"),
        pytest.param(
            json.dumps(STATUS_OK).encode(),
            {"Content-Type": "application/json; charset=utf-8"},
            "",
            id="charset",
        ),
        pytest.param(
            gzip.compress(json.dumps(STATUS_OK).encode()),
            {"Content-Type": "application/json", "Content-Encoding": "gzip"},
            "",
            id="gzip",
        ),
        pytest.param(json.dumps(STATUS_OK).encode(), None, "?taskId=task_12345678", id="query"),
        pytest.param(json.dumps(STATUS_OK).encode(), None, "/", id="trailing-slash"),
        pytest.param(json.dumps(STATUS_OK).encode(), None, "/job-7", id="per-job-path"),
        pytest.param(
            json.dumps({**STATUS_OK, "code": "200", "msg": "success", "extra": [1]}).encode(),
            None,
            "",
            id="code-string-extra-fields",
        ),
        # sloppier senders, still naming the task unmistakably
        pytest.param(json.dumps(FLAT_OK).encode(), None, "", id="no-envelope"),
        pytest.param(
            json.dumps({"code": 200, "data": json.dumps(FLAT_OK)}).encode(),
            None,
            "",
            id="data-as-json-string",
        ),
        pytest.param(
            json.dumps({"code": 200, "data": {"id": "task_12345678", "state": "success"}}).encode(),
            None,
            "",
            id="id-spelling",
        ),
        pytest.param(
            '{"code":200,"message":"r\xe9ussi","data":{"taskId":"task_12345678","state":"failed"}}'.encode(
                "latin-1"
            ),
            {"Content-Type": "application/json; charset=iso-8859-1"},
            "",
            id="latin-1",
        ),
    ],
)
async def test_callback_bodies_that_wake_the_task(receiver, raw, headers, suffix) -> None:
    rec, engine = await receiver()
    assert await deliver(rec.url_for(None) + suffix, raw, headers) == 200
    assert engine.notified == [("task_12345678", None)]
    assert dict(rec.counts) == {"accepted": 1}


@pytest.mark.parametrize("word", ["queued", "RUNNING", "in_progress", "waiting"])
async def test_callbacks_for_a_task_still_running_are_news(receiver, word: str) -> None:
    """A still-running word (in any spelling the client reads as running) is news too: the
    engine confirms it, at most once per task per guard window, so a `processing` notice just
    before the final word never pushes that one out (issue 18)."""
    rec, engine = await receiver()
    body = {"code": 200, "data": {"taskId": "task_12345678", "state": word}}
    assert await deliver(rec.url_for(None), json.dumps(body).encode()) == 200
    assert engine.notified == [("task_12345678", None)] and dict(rec.counts) == {"accepted": 1}


async def test_a_compressed_callback_is_capped_after_decoding(receiver) -> None:
    rec, engine = await receiver()
    bomb = json.dumps({"data": {"taskId": "task_12345678", "pad": "x" * (4 << 20)}}).encode()
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    assert await deliver(rec.url_for(None), gzip.compress(bomb), headers) == 413
    assert engine.notified == []


async def test_duplicate_and_late_callbacks_all_reach_the_engine(receiver) -> None:
    """The provider retries up to 3 times: four deliveries, all answered 200 and none dropped;
    the engine confirms them with one request per guard window (tests/test_callback_news.py)."""
    rec, engine = await receiver()
    for _ in range(4):
        assert await deliver(rec.url_for(None), json.dumps(STATUS_OK).encode()) == 200
    assert engine.notified == [("task_12345678", None)] * 4
    assert rec.counts == {"accepted": 4}


async def test_callbacks_without_the_secret_are_refused(receiver) -> None:
    """No signature on callbacks (the reference): the secret URL is the only check."""
    rec, engine = await receiver()
    for url in (rec.local_base + "/callback", rec.local_base + "/callback/" + "z" * 43):
        assert await deliver(url, json.dumps(STATUS_OK).encode()) == 403
    assert engine.notified == []


@pytest.mark.parametrize(
    ("body", "state", "urls"),
    [
        (STATUS_OK, "success", [URL]),
        (FLAT_OK, "success", [URL]),
        (
            {"code": 200, "data": {**FLAT_OK, "resultJson": json.dumps([URL])}},
            "success",
            [URL],
        ),
        (STATUS_FAILED, "failed", []),
    ],
)
async def test_trusted_callbacks_hand_over_the_reference_shapes(receiver, body, state, urls):
    rec, engine = await receiver(trust=True)
    assert await deliver(rec.url_for(None), json.dumps(body).encode()) == 200
    ((task_id, got),) = engine.notified
    assert task_id == "task_12345678" and (got.state, got.result_urls) == (state, urls)


@pytest.mark.parametrize(
    "body",
    [
        {"code": 200, "status": "error", "message": "try later", "data": None},
        {"code": 200, "status": "failed", "data": None},
    ],
)
async def test_an_envelope_status_word_is_not_a_task_state(api, body) -> None:
    """Reading fields beside the envelope needs the task named there: an envelope's own
    "status": "error" must not fail a task that may still be running."""
    with pytest.raises(BadAnswer):
        await status(api, answer(200, body))
