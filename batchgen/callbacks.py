"""Callback (webhook) mode: a receiver for the provider's POSTs, run inside `batchgen run`.

The provider signs nothing (see the API reference), so the receiver trusts only what it can
check: the URL carries a per-state-file secret (compared in constant time), the body must name a
task this state file recorded, and the body's claim is not believed: the engine confirms it with
one status request (the confirmation is the poll). `--trust-callbacks` hands a terminal body to
the engine as is, for users who accept that anyone holding the URL can then fail or finish jobs.
No news is dropped here: every post for a known task reaches the engine, which spaces out the
confirming requests (batchgen.engine.wakes), so duplicates and floods cost little and a `processing`
notice never pushes the final word out.

Every answer is decided synchronously (parse, one indexed SQLite lookup, `Engine.notify`), so the
provider gets its 200 at once; the engine does the work afterwards. Answers:
200 known task (also news of finished ones), 400 junk, 403 missing or wrong secret,
404 unknown task, 405 other methods, 413 too large.

Secrets never reach a log: the access log is off and nothing here prints a URL.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import web

from batchgen.adapters.answers import (
    BadAnswer,
    TaskStatus,
    _first,
    decode_answer,
    envelope_data,
    normalize_state,
    parse_status,
)
from batchgen.core.taskids import task_id_or_none
from batchgen.core.urls import is_loopback_host
from batchgen.errors import UsageError

if TYPE_CHECKING:
    from batchgen import store as st
    from batchgen.engine import Engine
    from batchgen.settings import RunOptions

log = logging.getLogger("batchgen.callbacks")

SECRET_KEY = "callback_secret"  # in the state file's meta table; not the API key
MAX_BODY = 64 * 1024


# -- settings ---------------------------------------------------------------------------------


def state_secret(store: st.Store) -> str:
    """The state file's callback secret, created on first use and kept for later runs (so the
    provider's retries to a URL given in an earlier run still pass after a restart)."""
    secret = store.get_meta(SECRET_KEY)
    if not secret:
        secret = secrets.token_urlsafe(32)
        store.set_meta_many({SECRET_KEY: secret})
    return secret


def parse_listen(text: str) -> tuple[str, int]:
    """'HOST:PORT', '[::1]:PORT' or 'PORT' (loopback) -> (host, port); port 0 picks a free one."""
    t = text.strip()
    host, sep, port_text = t.rpartition(":")
    if not sep:
        host, port_text = "127.0.0.1", t
    host = host.strip()
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    if not host:
        raise ValueError(f"--callback-listen needs HOST:PORT, got {text!r} (e.g. 127.0.0.1:8787)")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            bracketed = False
        if not bracketed:
            raise ValueError(f"write an IPv6 listen address as [ADDR]:PORT, got {text!r}")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"--callback-listen: {port_text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"--callback-listen: port {port} is out of range 0-65535")
    return host, port


def check_public_base(url: str) -> str:
    """The public base the provider will POST to (a reverse proxy or tunnel to the listener)."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"--callback-url must be an http(s) URL the provider can reach, got {url!r} "
            "(e.g. https://hooks.example.com/batchgen)"
        )
    if parts.query or parts.fragment:
        raise UsageError("--callback-url takes a base URL without ?query or #fragment")
    if parts.scheme.lower() == "http" and not is_loopback_host(parts.hostname):
        log.warning(
            "--callback-url is plain http: the callback secret travels in clear text; "
            "prefer an https tunnel or reverse proxy"
        )
    return url.strip().rstrip("/")


def callback_url(public_base: str, secret: str) -> str:
    return public_base.rstrip("/") + "/callback/" + secret


# -- the receiver -----------------------------------------------------------------------------


class CallbackReceiver:
    """aiohttp.web app + runner answering `POST /callback/{secret}[/{anything}]`."""

    def __init__(
        self,
        engine: Engine,
        secret: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        trust: bool = False,
        max_body: int = MAX_BODY,
        shutdown_s: float = 1.0,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the callback secret is too short")
        self.engine = engine
        self._secret = secret.encode()
        self.host, self.port = host, port
        self.trust = trust
        self.max_body = max_body
        self.shutdown_s = shutdown_s  # how long answers being written may take at the end
        self.counts: Counter[str] = Counter()
        self._runner: web.AppRunner | None = None

    def __repr__(self) -> str:  # never the secret
        state = f"{self.host}:{self.port}" if self._runner else "stopped"
        counts = " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        return f"<CallbackReceiver {state} trust={self.trust} {counts}>".replace(" >", ">")

    @property
    def secret(self) -> str:
        return self._secret.decode()

    @property
    def local_base(self) -> str:
        """http://HOST:PORT of the bound listener (after start)."""
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def url_for(self, public_base: str | None) -> str:
        """The callback URL to give the provider; the listener's own address by default (only
        sensible on loopback: the simulator, or a tunnel on this machine)."""
        return callback_url(public_base or self.local_base, self.secret)

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body)
        app.router.add_post("/callback/{secret}", self._handle)
        app.router.add_post("/callback/{secret}/{tail:.*}", self._handle)
        app.router.add_post("/callback", self._no_secret)
        app.router.add_post("/callback/", self._no_secret)
        return app

    async def start(self) -> CallbackReceiver:
        runner = web.AppRunner(
            self.build_app(),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=self.shutdown_s,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=1024)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise UsageError(
                f"cannot listen for callbacks on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> CallbackReceiver:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- handlers -------------------------------------------------------------------------

    def _answer(self, status: int, outcome: str, text: str) -> web.Response:
        self.counts[outcome] += 1
        return web.Response(status=status, text=text)

    async def _no_secret(self, request: web.Request) -> web.Response:
        return self._answer(403, "forbidden", "forbidden")

    async def _handle(self, request: web.Request) -> web.Response:
        given = request.match_info.get("secret", "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, self._secret):
            return self._answer(403, "forbidden", "forbidden")
        if request.content_length is not None and request.content_length > self.max_body:
            return self._answer(413, "too_large", "body too large")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._answer(413, "too_large", "body too large")
        return self.decide(raw, request.charset, request.match_info.get("tail", ""))

    def job_key(self, job_id: str) -> str:
        """The last segment of a job's callback URL: unguessable without the secret, so a
        callback there was sent for that job's submit (engine/adopt.py)."""
        digest = hmac.new(self._secret, b"job\0" + job_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")

    def decide(self, raw: bytes, charset: str | None = None, tail: str = "") -> web.Response:
        """Everything after the secret check; synchronous, so the answer goes out at once.

        The body is read as liberally as a status answer (the reference says it is the same
        envelope): any Content-Type or charset, `data` as a JSON string, or the data fields
        sent without the envelope. That costs nothing in safety: the body only names a task
        to wake, and (unless trusted) the engine confirms its claim with a status request."""
        try:
            envelope = decode_answer(raw, charset)
        except ValueError:
            return self._answer(400, "bad", "not JSON")
        data = envelope_data(envelope)
        if not isinstance(data, dict):
            return self._answer(400, "bad", "no data object")
        task_id = task_id_or_none(_first(data, "taskId", "task_id", "id"))  # the submit's rule
        if task_id is None:
            return self._answer(400, "bad", "no task id")
        if not self.engine.knows_task(task_id):
            # A task we never recorded, at a job's own URL: an ambiguous job's submit made it
            # (the engine confirms it with a status request before taking it on).
            if tail and self.engine.adopt(tail, task_id):
                return self._answer(200, "adopting", "ok")
            return self._answer(404, "unknown_task", "unknown task")
        # Whatever the body says (an end, `processing`, a word we do not know) is news: the
        # engine confirms it, at most once per task per guard window.
        status: TaskStatus | None = None
        if self.trust:
            try:
                status = parse_status(data, task_id)
            except BadAnswer:
                # Nothing to hand over, but the task named is ours and has news: wake it to
                # confirm with one status request, as an untrusted callback would (a 400 would
                # only make the provider retry the same body).
                status = None
        claimed = normalize_state(str(_first(data, "state", "status") or ""))
        ended = claimed in ("success", "failed")
        running = claimed in ("pending", "processing")
        if self.engine.notify(task_id, status, claims_end=ended, still_running=running):
            return self._answer(200, "accepted", "ok")
        return self._answer(200, "duplicate", "ok")  # known, but already finished


# -- wiring into a run ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def receiving(
    engine: Engine,
    store: st.Store,
    opts: RunOptions,
    on_receiver: Callable[[CallbackReceiver], None] | None = None,
) -> AsyncIterator[CallbackReceiver | None]:
    """Start the receiver (when asked) and point the engine's submits at it; stop it after.
    `on_receiver` sees it once it listens (tests, benchmarks)."""
    if opts.callbacks.callback_listen is None:
        yield None
        return
    host, port = opts.callbacks.callback_listen
    if opts.callbacks.callback_public_url is None and not is_loopback_host(host):
        raise UsageError(
            "--callback-listen on a non-loopback address needs --callback-url: the public "
            "https base that your reverse proxy or tunnel forwards to this listener"
        )
    receiver = CallbackReceiver(
        engine,
        state_secret(store),
        host=host,
        port=port,
        trust=opts.callbacks.trust_callbacks,
        shutdown_s=opts.timing.drain_s,
    )
    async with receiver:
        engine.receive_callbacks_at(
            receiver.url_for(opts.callbacks.callback_public_url), receiver.job_key
        )
        if on_receiver is not None:
            on_receiver(receiver)
        log.info("receiving callbacks on %s:%d", receiver.host, receiver.port)
        yield receiver
