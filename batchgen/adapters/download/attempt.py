"""One result file from a CDN URL to its place: the download boundary.

`Downloader.fetch` asks for the bytes and hands them to a result sink (batchgen/adapters/sinks/:
the local disk by default, where they stream to `<dest>.part` and a sidecar lets another
process resume). It keeps what it has across cuts and across processes, resumes with `Range` +
`If-Range`, checks the length, and publishes only a body of which every byte the server
announced has arrived. The engine owns retries across runs and the state file; this module
owns the attempts of one download and translates aiohttp's failures into `batchgen.errors`.

What is kept must be a video (video.py): a document Content-Type or first bytes without a
video container's signature fail the attempt with DownloadRejected before more of the body is
read, and an ISO-BMFF file whose top-level boxes overrun it is refused at the end. A body
compressed against `Accept-Encoding: identity` is decoded (codings.py), never resumed. Result
URLs and redirect targets are requested byte for byte (core/urls.exact_url).

What an answer's head means is decided in head.py, its body is read into the sink in
stream.py; this module holds the requests, the redirects and the attempts with their backoff.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import yarl

from batchgen.adapters.download.head import (
    Restart,
    ShortRange,
    answer_range,
    check_status,
    check_type,
    content_coding,
    request_headers,
    transient,
)
from batchgen.adapters.download.stream import Body, Reading, Tally
from batchgen.adapters.netguard import check_fetchable
from batchgen.adapters.proxies import Proxies
from batchgen.adapters.sinks.base import DownloadResult, ResultSink, Sinks, Version
from batchgen.core.policy import Backoff, backoff_delay
from batchgen.core.urls import describe_error, describe_url, exact_url
from batchgen.errors import (
    DownloadError,
    DownloadExpired,
    DownloadRejected,
    DownloadTooLarge,
    DownloadTransient,
    UnsafeUrl,
)
from batchgen.settings import DOWNLOAD_CONCURRENCY, DOWNLOAD_STALL_S, MAX_FILE_BYTES

__all__ = ["DownloadResult", "Downloader"]

MAX_REDIRECTS = 5
WRITE_BUFFER = 2 * 1024 * 1024  # bytes gathered before one sink call (a threaded write on disk)
PROGRESS_RESET = 64 * 1024  # an attempt that saved this much resets the failure count
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class Downloader:
    """Downloads result files with bounded concurrency, separate from the API's rate limit."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        concurrency: int = DOWNLOAD_CONCURRENCY,
        max_bytes: int = MAX_FILE_BYTES,
        chunk_size: int = 1024 * 1024,
        backoff: tuple[float, float] = (0.5, 30.0),
        max_attempts: int = 6,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        read_timeout: float = DOWNLOAD_STALL_S,
        public_only: bool = False,
        proxies: Proxies | None = None,
        sinks: Sinks,
    ) -> None:
        if concurrency < 1 or max_attempts < 1 or chunk_size < 1 or max_bytes < 0:
            raise ValueError("concurrency, max_attempts and chunk_size must be >= 1")
        self._session = session
        self._sinks: Sinks = sinks  # the only way to a file or an object (adapters/sinks/)
        self._concurrency = concurrency
        self._sem = asyncio.Semaphore(concurrency)
        self._max_bytes = max_bytes
        # chunk_size is aiohttp's read_bufsize: below ~1 MiB the reader pauses and resumes the
        # socket every few reads. A 2 MiB write buffer halves the thread hand-offs of 1 MiB
        # while a chunk written then hashed still fits the worker core's cache.
        self._chunk = chunk_size
        # No sock_read: the answer's head is bounded by asyncio.timeout in _get, its body by
        # _StallWatch (aiohttp would re-arm a timer on every read).
        self._reading = Reading(
            batch=max(WRITE_BUFFER, chunk_size), max_bytes=max_bytes, stall=read_timeout
        )
        self._backoff = Backoff(*backoff)  # the run's one backoff (core/policy.py), a bit quicker
        self._max_attempts = max_attempts
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=read_timeout)
        self._read_timeout = read_timeout
        self._active = 0
        self._waiting = 0
        # Refuse result hosts off the public internet (the session's resolver does the same
        # for names; see batchgen.adapters.netguard).
        self._public_only = public_only
        self._proxies = proxies or Proxies(enabled=False)

    def __repr__(self) -> str:
        return (
            f"<Downloader active={self._active}/{self._concurrency} waiting={self._waiting} "
            f"max_bytes={self._max_bytes}>"
        )

    # ---- public ---------------------------------------------------------------------------

    async def fetch(self, url: str, dest: Path) -> DownloadResult:
        """Download `url` to `dest` (see the module docstring). Raises DownloadExpired,
        DownloadTooLarge, DiskFull, UnsafeUrl, DownloadTransient (after `max_attempts`
        failures in a row without progress) or DownloadError (a permanent protocol problem)."""
        await self._check(url)
        dest = Path(dest)
        self._waiting += 1
        try:
            await self._sem.acquire()
        finally:
            self._waiting -= 1
        self._active += 1
        try:
            return await self._fetch(url, dest)
        finally:
            self._active -= 1
            self._sem.release()

    @property
    def sinks(self) -> Sinks:
        """Where this downloader's results land: the engine records and audits through it."""
        return self._sinks

    # ---- one fetch: attempts and backoff --------------------------------------------------

    async def _fetch(self, url: str, dest: Path) -> DownloadResult:
        sink = await self._sinks.open(url, dest)
        published = await sink.ready()
        if published is not None:
            return published
        meta = sink.recorded
        tally = Tally()
        failures = restarts = 0
        while True:
            saved_before = sink.saved
            try:
                return await self._attempt(url, sink, meta, tally)
            except Restart:
                meta = None
                restarts += 1
                if restarts > self._max_attempts:
                    raise DownloadTransient(
                        f"{describe_url(url)}: the server keeps answering ranges inconsistently"
                    ) from None
                continue
            except ShortRange as short:
                meta = short.args[0]
                if sink.saved - saved_before >= PROGRESS_RESET:
                    failures = 0
                    continue
                failures += 1
                if failures >= self._max_attempts:
                    raise DownloadTransient(
                        f"{describe_url(url)}: the server sends ranges too small to progress"
                    ) from None
                retry_after = None
            except DownloadRejected as exc:
                # Not a video, whatever arrived: counts as a failure even after much progress.
                meta = getattr(exc, "meta", None)
                if meta is None:
                    await sink.discard()
                failures += 1
                if failures >= self._max_attempts:
                    raise
                retry_after = None
            except DownloadTransient as exc:
                meta = getattr(exc, "meta", meta)
                if sink.saved - saved_before >= PROGRESS_RESET:
                    failures = 1
                else:
                    failures += 1
                if failures >= self._max_attempts:
                    raise
                retry_after = getattr(exc, "retry_after", None)
            delay = backoff_delay(max(0, failures - 1), self._backoff, self._rng)
            if retry_after is not None:
                delay = min(self._backoff.cap, max(delay, retry_after))
            await self._sleep(delay)

    # ---- one HTTP exchange ----------------------------------------------------------------

    async def _attempt(
        self, url: str, sink: ResultSink, meta: Version | None, tally: Tally
    ) -> DownloadResult:
        offset = 0
        if meta is not None and meta.validator:
            offset = await sink.held()
            if meta.total is not None and offset > meta.total:
                offset = 0
        try:
            resp = await self._get(url, request_headers(offset, meta))
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transient(url, f"request failed: {describe_error(exc)}", meta) from exc
        async with resp:
            try:
                check_status(url, resp, offset, meta)
            except DownloadExpired:
                await sink.discard()
                raise
            await check_type(url, resp, offset, meta, self._read_timeout)
            body = Body(url, resp, sink, self._reading, tally)
            coding = content_coding(url, resp, offset, meta)
            if coding:
                return await body.save_decoded(coding)
            try:
                new, offset, end = answer_range(url, resp, offset, meta, self._max_bytes)
            except DownloadTooLarge:
                await sink.discard()
                raise
            return await body.save(new, offset, end)

    # ---- helpers -------------------------------------------------------------------------

    async def _check(self, url: str) -> str:
        return await check_fetchable(url, public_only=self._public_only, proxies=self._proxies)

    async def _get(self, url: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
        """GET following at most MAX_REDIRECTS redirects, each target checked by check_url."""
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            exact = exact_url(current)  # sent byte for byte: a CDN may sign the exact query
            async with asyncio.timeout(self._read_timeout):  # until the head has arrived
                resp = await self._session.get(
                    exact,
                    allow_redirects=False,
                    **self._proxies.request_kwargs(exact, headers),
                    timeout=self._timeout,
                    read_bufsize=max(self._chunk, 2**16),
                    auto_decompress=False,
                )
            if resp.status not in _REDIRECTS:
                return resp
            location = resp.headers.get("Location")
            resp.release()
            if not location:
                raise DownloadError(f"{describe_url(current)} redirected without a Location")
            try:
                # Both read as sent: a signed target must reach the CDN byte for byte.
                target = exact.join(yarl.URL(location, encoded=True))
            except (ValueError, UnsafeUrl) as exc:
                raise DownloadError(f"{describe_url(current)} sent a bad redirect") from exc
            current = await self._check(str(target))
        raise DownloadError(f"{describe_url(url)}: more than {MAX_REDIRECTS} redirects")
