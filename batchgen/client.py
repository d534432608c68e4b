"""The API boundary: the only code that speaks HTTP to APIXO.

One call here is one request, taken from the shared rate limiter first. Every aiohttp or
decoding failure is translated into batchgen's own errors, shaped by how the engine must react:
`ApiConnectionError.sent` says whether a submit may have created a task (so it is ambiguous),
and a 429 pauses the shared limiter so the whole client slows down, not only this request.

The server is treated as liberal input: errors may come as HTTP statuses or as HTTP 200 with a
`code` in the body; `resultJson` may be a string or already an object; unknown fields are
ignored; a task id or URL that looks hostile is refused.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import yarl

from batchgen.errors import (
    ApiConnectionError,
    ApiError,
    AuthError,
    CreditsExhausted,
    InvalidRequest,
    RateLimited,
    ServerError,
)
from batchgen.limits import POLL, SUBMIT, SlidingWindowLimiter
from batchgen.policy import (
    Backoff,
    Outcome,
    classify_status,
    parse_retry_after,
    rate_limit_pause,
)

MAX_ANSWER_BYTES = 1 << 20  # an API answer is a few hundred bytes; more is a broken or hostile peer
_TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")

# Liberal reading of `state`: the documented four, plus names other APIs of this shape use.
_STATES = {
    "pending": "pending",
    "queued": "pending",
    "queue": "pending",
    "waiting": "pending",
    "submitted": "pending",
    "created": "pending",
    "processing": "processing",
    "running": "processing",
    "generating": "processing",
    "in_progress": "processing",
    "started": "processing",
    "success": "success",
    "succeeded": "success",
    "completed": "success",
    "complete": "success",
    "done": "success",
    "finished": "success",
    "failed": "failed",
    "fail": "failed",
    "failure": "failed",
    "error": "failed",
    "cancelled": "failed",
    "canceled": "failed",
}


class SubmitSkipped(Exception):
    """`before_send` refused at the last moment (the job was cancelled): nothing was sent."""


class NotFound(ApiError):
    """The provider does not know this task id (the reference is silent on how it says so)."""


class BadAnswer(ServerError):
    """A 2xx answer we cannot read (not JSON, resultJson broken): transient for polls."""


@dataclass(frozen=True, slots=True)
class TaskStatus:
    task_id: str
    state: str  # pending | processing | success | failed (normalized)
    raw_state: str
    result_urls: list[str] = field(default_factory=list)
    fail_code: str | None = None
    fail_msg: str | None = None
    create_time_ms: int | None = None
    complete_time_ms: int | None = None
    cost_time_ms: int | None = None

    @property
    def terminal(self) -> bool:
        return self.state in ("success", "failed")


def _valid_task_id(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and _TASK_ID.match(value):
        return value
    return None


def _first(data: dict[str, Any], *keys: str) -> Any:
    """The first of `keys` present and not null: the documented name first, then the spellings
    other implementations of this API shape use."""
    for key in keys:
        value = data.get(key)
        if value is not None:
            return value
    return None


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value and abs(value) < 1e16:
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _text(value: Any, limit: int = 2000) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value)[:limit]
    return "".join(ch if ch.isprintable() else " " for ch in text[:limit])


def parse_status(data: Any, expected_task_id: str) -> TaskStatus:
    """Read the `data` of a status answer (or of a callback body). Raises BadAnswer."""
    if not isinstance(data, dict):
        raise BadAnswer(200, "status answer has no data object")
    raw_state = data.get("state", data.get("status"))
    if not isinstance(raw_state, str):
        raise BadAnswer(200, "status answer has no state")
    state = _STATES.get(raw_state.strip().lower())
    if state is None:
        state = "processing"  # unknown word: keep polling rather than guess an outcome
    task_id = _valid_task_id(_first(data, "taskId", "task_id", "id")) or expected_task_id
    times = {
        "create_time_ms": _int_or_none(data.get("createTime")),
        "complete_time_ms": _int_or_none(data.get("completeTime")),
        "cost_time_ms": _int_or_none(data.get("costTime")),
    }
    if state == "failed":
        return TaskStatus(
            task_id,
            state,
            raw_state,
            fail_code=_text(_first(data, "failCode", "fail_code", "errorCode", "error_code"), 100)
            or "FAILED",
            fail_msg=_text(_first(data, "failMsg", "fail_msg", "errorMessage", "error_message"))
            or f"the provider reported state {raw_state!r}",
            **times,
        )
    urls: list[str] = []
    if state == "success":
        urls = _result_urls(data)
        if not urls:
            raise BadAnswer(200, "task succeeded but its answer holds no result URL")
    return TaskStatus(task_id, state, raw_state, result_urls=urls, **times)


def _result_urls(data: dict[str, Any]) -> list[str]:
    result: Any = data.get("resultJson", data.get("result"))
    if isinstance(result, str):
        try:
            result = json.loads(result)
        except ValueError as exc:
            raise BadAnswer(200, "resultJson is not JSON") from exc
    urls: Any = None
    if isinstance(result, dict):
        urls = result.get("resultUrls", result.get("result_urls", result.get("urls")))
    if urls is None:
        urls = data.get("resultUrls")
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, list):
        return []
    return [u for u in urls if isinstance(u, str) and 0 < len(u) <= 4096]


class ApiClient:
    """submit() and status() against `<base_url>/generateTask/<model>` and `/statusTask/<model>`."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        api_key: str,
        *,
        limiter: SlidingWindowLimiter,
        model: str = "kling-2-1",
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        wall_clock: Any = time.time,
        backoff: Backoff | None = None,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self._limiter = limiter
        self._model = model
        # Built once: aiohttp would parse a str URL again for every request.
        self._submit_url = yarl.URL(f"{self._base}/generateTask/{model}")
        self._status_url = yarl.URL(f"{self._base}/statusTask/{model}")
        # A total deadline too: a peer that trickles one byte per read timeout must not hold a
        # request for ever (a submit cut by it is ambiguous, as any lost answer).
        self._timeout = aiohttp.ClientTimeout(
            total=3 * read_timeout,
            connect=connect_timeout,
            sock_connect=connect_timeout,
            sock_read=read_timeout,
        )
        self._wall = wall_clock
        self._backoff = backoff or Backoff()
        self._consecutive_429 = 0
        self.requests_sent = 0

    def __repr__(self) -> str:  # never shows the key
        return f"<ApiClient {self._base} model={self._model} sent={self.requests_sent}>"

    async def submit(
        self, body: dict[str, Any], *, before_send: Callable[[], Awaitable[bool]] | None = None
    ) -> str:
        """POST the body; return the task id. Raises ApiError subclasses or ApiConnectionError.

        `before_send` runs after the rate limiter grants the request and just before the bytes
        leave: the engine records its intent there, so a job waiting for rate budget is still
        plainly pending if the run stops. Returning False aborts with SubmitSkipped."""
        data = await self._call(
            "POST",
            self._submit_url,
            priority=SUBMIT,
            json_body=body,
            before_send=before_send,
        )
        task_id = (
            _valid_task_id(_first(data, "taskId", "task_id", "id"))
            if isinstance(data, dict)
            else None
        )
        if task_id is None:
            # The provider accepted the request but we cannot read a task id: it may exist.
            raise ApiConnectionError("the submit answer holds no usable task id", sent=True)
        return task_id

    async def status(self, task_id: str, *, priority: int = POLL) -> TaskStatus:
        data = await self._call(
            "GET", self._status_url.with_query(taskId=task_id), priority=priority
        )
        return parse_status(data, task_id)

    async def _call(
        self,
        method: str,
        url: yarl.URL,
        *,
        priority: int,
        json_body: Any = None,
        before_send: Callable[[], Awaitable[bool]] | None = None,
    ) -> Any:
        granted_at = await self._limiter.acquire(priority)
        if before_send is not None:
            if not await before_send():
                raise SubmitSkipped()
            # The intent's commit and fsync ran after the grant: count the request when it
            # really leaves. A grant that aged out meanwhile is void: wait for a fresh one (a
            # stop during that wait leaves the job ambiguous, though nothing was sent).
            while not self._limiter.restamp(granted_at):
                granted_at = await self._limiter.acquire(priority)
        self.requests_sent += 1
        try:
            async with self._session.request(
                method,
                url,
                json=json_body,
                headers=self._headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as resp:
                raw = await _read_capped(resp)
                status = resp.status
                retry_after_header = resp.headers.get("Retry-After")
        except aiohttp.ClientConnectorError as exc:
            raise ApiConnectionError(
                f"cannot connect to the API: {exc.os_error}", sent=False
            ) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise ApiConnectionError(
                "timed out connecting to the API", sent=False, timeout=True
            ) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise ApiConnectionError(
                "the API did not answer in time", sent=True, timeout=True
            ) from exc
        except aiohttp.ClientError as exc:
            raise ApiConnectionError(f"connection lost: {type(exc).__name__}", sent=True) from exc
        return self._interpret(status, raw, retry_after_header)

    def _interpret(self, status: int, raw: bytes, retry_after_header: str | None) -> Any:
        payload: Any = None
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        body_code = None
        message = ""
        if isinstance(payload, dict):
            body_code = _int_or_none(payload.get("code"))
            message = _text(payload.get("message") or payload.get("msg") or "", 500) or ""
        outcome = classify_status(status, body_code, message)
        code = body_code if body_code not in (None, 200) else status
        if outcome is not Outcome.RATE_LIMITED:
            self._consecutive_429 = 0
        if outcome is Outcome.OK:
            if not isinstance(payload, dict):
                raise BadAnswer(status, "the API's answer is not a JSON object")
            return payload.get("data")
        message = message or f"HTTP {status}"
        if outcome is Outcome.RATE_LIMITED:
            # The whole client slows down, not only this request: Retry-After when given,
            # else a pause that doubles with each 429 in a row.
            self._consecutive_429 += 1
            retry_after = parse_retry_after(retry_after_header, self._wall())
            self._limiter.pause_for(
                rate_limit_pause(self._consecutive_429, self._backoff, retry_after)
            )
            raise RateLimited(429, message, retry_after=retry_after)
        if outcome is Outcome.RETRY:
            raise ServerError(code, message)
        if outcome is Outcome.NOT_FOUND:
            raise NotFound(code, message)
        if outcome is Outcome.ACCOUNT:
            if code == 400 or "credit" in message.lower():
                raise CreditsExhausted(code, message)
            raise AuthError(code, message)
        raise InvalidRequest(code, message)


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes:
    """The body, at most MAX_ANSWER_BYTES of it. A body whose Content-Length says it fits (an
    API answer always does) is read in one call; the chunked loop is for the rest."""
    length = resp.content_length
    if length is not None and length <= MAX_ANSWER_BYTES:
        return await resp.content.read()
    chunks: list[bytes] = []
    total = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        total += len(chunk)
        if total > MAX_ANSWER_BYTES:
            break
        chunks.append(chunk)
    return b"".join(chunks)
