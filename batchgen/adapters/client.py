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

import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import yarl

from batchgen.adapters.answers import (
    TaskStatus,
    _first,
    envelope_data,
    parse_balance,
    parse_status,
    read_answer,
    redirected,
)
from batchgen.adapters.limits import POLL, SUBMIT, SlidingWindowLimiter
from batchgen.adapters.pause import ClientPause
from batchgen.adapters.proxies import Proxies
from batchgen.core.policy import (
    Backoff,
    Limit,
    Outcome,
    classify_status,
    deciding_code,
    parse_retry_after,
    says_out_of_credits,
)
from batchgen.core.taskids import KEPT_CHARS, query_value, refusal, shown, task_id_or_none
from batchgen.errors import (
    ApiConnectionError,
    ApiError,
    AuthError,
    BadAnswer,
    CreditsExhausted,
    InvalidRequest,
    NotFound,
    RateLimited,
    ServerError,
    SubmitSkipped,
    UntrackableTaskId,
)
from batchgen.models import DEFAULT_MODEL
from batchgen.models.base import MODEL_ID
from batchgen.settings import CONNECT_TIMEOUT_S, READ_TIMEOUT_S

log = logging.getLogger("batchgen.adapters.client")

MAX_ANSWER_BYTES = 1 << 20  # an API answer is a few hundred bytes; more is a broken or hostile peer


class ApiClient:
    """submit() and status() against `<base_url>/generateTask/<model>` and `/statusTask/<model>`.

    One client per account, not per model: every model shares its rate limiter (the account's
    limit). `model` is the default; each call may name its own (a batch may mix models)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        api_key: str,
        *,
        limiter: SlidingWindowLimiter,
        model: str = DEFAULT_MODEL,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        read_timeout: float = READ_TIMEOUT_S,
        wall_clock: Any = time.time,
        backoff: Backoff | None = None,
        proxies: Proxies | None = None,
        rate_pause: Backoff | None = None,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self._limiter = limiter
        self._model = model
        # Built once per model: aiohttp would parse a str URL again for every request.
        self._urls: dict[str, tuple[yarl.URL, yarl.URL]] = {}
        self._submit_url, self._status_url = self._urls_of(model)
        self._balance_url = yarl.URL(f"{self._base}/apikeys/current-balance")
        # One host for every call: its proxy (if any) and headers are decided once.
        proxies = proxies or Proxies(enabled=False)
        self._send = proxies.request_kwargs(self._submit_url, self._headers)
        proxy = proxies.for_url(self._submit_url)
        self._proxy_shown = proxy.describe() if proxy is not None else "the proxy"
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
        self._pause = ClientPause(limiter, rate_pause or self._backoff, wall_clock)
        self.tasks_in_flight: Callable[[], int] = lambda: 0
        self.account_name: str | None = None  # --accounts: which account this key is (a name)
        """Tasks of ours at the provider (the engine's count): what a 429 that names no limit
        is read against."""
        self.requests_sent = 0
        self.alive_answers = 0
        """Answers in the API's own words (a JSON object as success, or its error envelope),
        as opposed to a gateway's page: the submit gate's sign of life (batchgen/engine/gate.py)."""

    def __repr__(self) -> str:  # never shows the key
        return f"<ApiClient {self._base} model={self._model} sent={self.requests_sent}>"

    def _urls_of(self, model: str | None) -> tuple[yarl.URL, yarl.URL]:
        """(submit URL, status URL) of `model`. The id is one path segment, so it is checked:
        a job's model comes from a manifest or a state file, both outside input."""
        model = self._model if model is None else model
        urls = self._urls.get(model)
        if urls is None:
            if not MODEL_ID.fullmatch(model):
                raise ValueError(f"not a model id: {model[:80]!r}")
            urls = (
                yarl.URL(f"{self._base}/generateTask/{model}"),
                yarl.URL(f"{self._base}/statusTask/{model}"),
            )
            self._urls[model] = urls
        return urls

    async def submit(
        self,
        body: dict[str, Any],
        *,
        before_send: Callable[[], Awaitable[bool]] | None = None,
        model: str | None = None,
    ) -> str:
        """POST the body; return the task id. Raises ApiError subclasses or ApiConnectionError.

        `before_send` runs after the rate limiter grants the request and just before the bytes
        leave: the engine records its intent there, so a job waiting for rate budget is still
        plainly pending if the run stops. Returning False aborts with SubmitSkipped."""
        data = await self._submit_call(body, before_send, self._urls_of(model)[0])
        value = _first(data, "taskId", "task_id", "id") if isinstance(data, dict) else None
        if value is None:
            # A success answer naming no task: one may exist, we cannot know (ambiguous).
            raise ApiConnectionError(
                "the submit was answered as accepted, but the answer names no task id", sent=True
            )
        reason = refusal(value)
        if reason is not None:  # a task exists: never resubmit silently
            raise UntrackableTaskId(reason, shown=shown(value), kept=shown(value, KEPT_CHARS))
        return str(value)

    async def _submit_call(
        self,
        body: dict[str, Any],
        before_send: Callable[[], Awaitable[bool]] | None,
        url: yarl.URL,
    ) -> Any:
        """The POST. Its errors come out as they are (what each proves about a task is
        core/verdicts.on_submit's to judge, from the exception's typed facts)."""
        return await self._call(
            "POST", url, priority=SUBMIT, json_body=body, before_send=before_send
        )

    async def status(
        self, task_id: str, *, priority: int = POLL, model: str | None = None
    ) -> TaskStatus:
        # The query is built already encoded: yarl's own quoting leaves `/`, `?` and `:` and
        # sends a space as `+`, which a server that decodes plainly reads back differently.
        url = self._urls_of(model)[1].with_query(None)
        url = yarl.URL(f"{url}?taskId={query_value(task_id)}", encoded=True)
        try:
            data = await self._call("GET", url, priority=priority)
        except NotFound as exc:
            if exc.envelope:
                raise  # the API's own word: it does not know the task
            # A gateway's or CDN's own 404 page (HTML, empty, a bare {"message": ...}) says
            # nothing about the task; read as "not found" it would fail a paid task that
            # `retry` then pays for again. Unreadable, like a 503 page.
            raise ServerError(
                exc.status, f"HTTP {exc.status} without the API's envelope: {exc.message}"
            ) from exc
        return parse_status(data, task_id)

    async def balance(self) -> Decimal:
        """The key's remaining balance in USD (`GET /apikeys/current-balance`). The reference
        sends a JSON number; a string ("74.8700") or an object naming the balance is read too.
        BadAnswer when the answer holds no readable amount."""
        data = await self._call("GET", self._balance_url, priority=POLL)
        amount = parse_balance(data)
        if amount is None:
            raise BadAnswer(200, "the balance answer holds no amount")
        return amount

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
                timeout=self._timeout,
                allow_redirects=False,
                **self._send,
            ) as resp:
                raw = await _read_capped(resp)
                status = resp.status
                retry_after_header = resp.headers.get("Retry-After")
                charset = resp.charset
                location = resp.headers.get("Location") if 300 <= status <= 399 else None
        except aiohttp.ClientConnectorError as exc:
            raise ApiConnectionError(
                f"cannot connect to the API: {exc.os_error}", sent=False
            ) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise ApiConnectionError(
                "timed out connecting to the API", sent=False, timeout=True
            ) from exc
        except aiohttp.ClientHttpProxyError as exc:  # the tunnel never opened: nothing sent
            if exc.status == 407:  # every request would get it: the run's problem, not a job's
                raise AuthError(
                    407,
                    f"{self._proxy_shown} refused the tunnel to the API (HTTP 407): the proxy "
                    "wants credentials (user:password@ in HTTPS_PROXY), or run with "
                    "--no-proxy-env",
                ) from exc
            raise ApiConnectionError(
                f"the proxy refused the connection to the API (HTTP {exc.status})", sent=False
            ) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise ApiConnectionError(
                "the API did not answer in time", sent=True, timeout=True
            ) from exc
        except aiohttp.ClientError as exc:
            raise ApiConnectionError(f"connection lost: {type(exc).__name__}", sent=True) from exc
        log.debug("%s %s: HTTP %d, %d bytes", method, url.path, status, len(raw))
        if 300 <= status <= 399:
            raise redirected(status, location)
        return self._interpret(status, raw, retry_after_header, charset, submit=method == "POST")

    def _interpret(
        self,
        status: int,
        raw: bytes,
        retry_after_header: str | None,
        charset: str | None = None,
        *,
        submit: bool = False,
    ) -> Any:
        payload, body_code, message, envelope = read_answer(raw, charset)
        outcome = classify_status(status, body_code, message)
        code = deciding_code(status, body_code)
        if envelope or (outcome is Outcome.OK and isinstance(payload, dict)):
            self.alive_answers += 1
        if outcome is not Outcome.RATE_LIMITED:
            self._pause.answered()
        if outcome is Outcome.OK:
            if not isinstance(payload, dict):
                raise BadAnswer(status, "the API's answer is not a JSON object")
            return envelope_data(payload)
        message = message or f"HTTP {status}"
        exc = self._error(outcome, code, message, retry_after_header, submit=submit)
        exc.envelope = envelope
        # An error answer that still names a task (a sloppy server that created it, then
        # failed): the submit must not be resent on the word "retry" (core/verdicts.py).
        data = envelope_data(payload)
        exc.task_id = (
            task_id_or_none(_first(data, "taskId", "task_id")) if isinstance(data, dict) else None
        )
        raise exc

    def _error(
        self,
        outcome: Outcome,
        code: int,
        message: str,
        retry_after_header: str | None,
        *,
        submit: bool = False,
    ) -> ApiError:
        if outcome is Outcome.RATE_LIMITED:
            retry_after = parse_retry_after(retry_after_header, self._wall())
            kind = self._pause.which_limit(message, submit=submit, tasks=self.tasks_in_flight())
            if kind is not Limit.CONCURRENCY:
                self._pause.after_429(message, retry_after)
            return RateLimited(429, message, retry_after=retry_after, limit=kind.value)
        if outcome is Outcome.RETRY:
            # RFC 9110: Retry-After on a 503 says how long the service stays unavailable; it
            # holds for every request, so the whole client pauses, as after a 429.
            retry_after = parse_retry_after(retry_after_header, self._wall())
            if retry_after is not None:
                self._pause.for_seconds(retry_after)
            return ServerError(code, message, retry_after=retry_after)
        if outcome is Outcome.NOT_FOUND:
            return NotFound(code, message)
        if outcome is Outcome.ACCOUNT:
            if says_out_of_credits(code, message):
                return CreditsExhausted(code, message)
            if code == 407:
                message = (
                    f"{message}: the proxy wants credentials (user:password@ in HTTP_PROXY or "
                    "HTTPS_PROXY), or run with --no-proxy-env"
                )
            return AuthError(code, message)
        return InvalidRequest(code, message)

    @property
    def paused(self) -> tuple[float, str] | None:
        """(wall-clock end, why) while a 429 pause is on; for displays."""
        return self._pause.current


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes:
    """The body, at most MAX_ANSWER_BYTES of it. A body whose Content-Length says it fits (an
    API answer always does) is read in one call; the chunked loop is for the rest. A
    compressed body's Content-Length counts the compressed bytes, not what decoding yields (a
    few KiB of gzip can decode to gigabytes), so it always goes through the loop."""
    length = resp.content_length
    encoded = resp.headers.get("Content-Encoding", "identity").strip().lower() != "identity"
    if length is not None and length <= MAX_ANSWER_BYTES and not encoded:
        return await resp.content.read()
    chunks: list[bytes] = []
    total = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        total += len(chunk)
        if total > MAX_ANSWER_BYTES:
            break
        chunks.append(chunk)
    return b"".join(chunks)
