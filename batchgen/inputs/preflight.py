"""Check a remote image before paying for a task that uses it.

The provider fetches each image itself after the submit, and a bad one (unreachable, an HTML
error page answered with 200, a 12 MB PNG, a GIF) fails the paid task a minute later. So before
the first submit that uses a URL, batchgen fetches its first bytes once: a ranged GET (HEAD only
to learn a size a 206 did not state), redirects followed under the same network-safety rules as
result downloads (`netguard.check_fetchable`, the run's `cdn` session and proxies), short
timeouts from the run's options, bounded concurrency, transient errors (5xx, 429, resets,
timeouts) retried with backoff first. Each distinct URL is checked once per run; a passed check
is kept in the state file (`records.ImageRecords`), so a resumed run does not fetch again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import yarl

from batchgen.adapters.netguard import check_fetchable
from batchgen.adapters.proxies import Proxies
from batchgen.core.imagecheck import ImageCheck as ImageCheck  # its callers name it here
from batchgen.core.policy import Backoff, backoff_delay, parse_retry_after
from batchgen.core.urls import describe_url, exact_url
from batchgen.errors import UnsafeUrl
from batchgen.inputs.sniff import (
    HEAD_BYTES,
    MAX_IMAGE_BYTES,
    content_range_total,
    size_warnings,
    sniff,
)

log = logging.getLogger("batchgen.images")

MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
FAIL_CODE = "IMAGE_PREFLIGHT"


@dataclass
class PreflightStats:
    """What the checks cost (bench/preflight.py reads these)."""

    requests: int = 0
    body_bytes: int = 0
    fetched: int = 0  # distinct URLs fetched in this run
    cached: int = 0  # distinct URLs answered from the state file


class _Transient(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class _Refused(Exception):
    pass


@dataclass
class Preflight:
    session: aiohttp.ClientSession
    timeout_s: float = 10.0  # per step: the answer's head, then each read of the body
    backoff: Backoff = field(default_factory=lambda: Backoff(base=1.0, cap=30.0))
    max_attempts: int = 4
    concurrency: int = 8
    public_only: bool = True
    proxies: Proxies | None = None
    max_bytes: int = MAX_IMAGE_BYTES
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
    lookup: Callable[[str], ImageCheck | None] | None = None  # the state file's cache
    save: Callable[[ImageCheck], None] | None = None
    stats: PreflightStats = field(default_factory=PreflightStats)

    def __post_init__(self) -> None:
        self._sem = asyncio.Semaphore(self.concurrency)
        self._checks: dict[str, asyncio.Future[ImageCheck]] = {}

    def __repr__(self) -> str:
        return f"<Preflight urls={len(self._checks)} requests={self.stats.requests}>"

    async def check(self, url: str) -> ImageCheck:
        """The verdict on `url`, fetched at most once per run (concurrent askers share it)."""
        future = self._checks.get(url)
        if future is None:
            cached = self.lookup(url) if self.lookup is not None else None
            if cached is not None:
                self.stats.cached += 1
                future = asyncio.get_running_loop().create_future()
                future.set_result(cached)
                self._checks[url] = future
                return cached
            future = self._checks[url] = asyncio.ensure_future(self._check_once(url))
        return await asyncio.shield(future)

    async def _check_once(self, url: str) -> ImageCheck:
        async with self._sem:
            self.stats.fetched += 1
            result = await self._with_retries(url)
        if result.error is None:
            for warning in result.warnings:
                log.warning("image %s: %s", describe_url(url), warning)
            if self.save is not None:
                self.save(result)
        return result

    async def _with_retries(self, url: str) -> ImageCheck:
        failures = 0
        while True:
            try:
                return await self._attempt(url)
            except _Refused as exc:
                return ImageCheck(url, error=str(exc))
            except UnsafeUrl as exc:
                return ImageCheck(url, error=f"refused: {exc}")
            except _Transient as exc:
                failures += 1
                if failures >= self.max_attempts:
                    return ImageCheck(url, error=f"unreachable after {failures} tries: {exc}")
                delay = backoff_delay(failures - 1, self.backoff, self.rng)
                if exc.retry_after is not None:
                    delay = min(max(delay, exc.retry_after), self.backoff.cap)
                await self.sleep(delay)

    async def _attempt(self, url: str) -> ImageCheck:
        try:
            resp, final = await self._get(url, {"Range": f"bytes=0-{HEAD_BYTES - 1}"})
            try:
                if resp.status == 416:  # an empty file, or a server that dislikes our range
                    resp.release()
                    resp, final = await self._get(final, {})
                return await self._judge(url, final, resp)
            finally:
                resp.close()  # never read the rest of an image we only sniff
        except (TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            what = "timed out" if isinstance(exc, TimeoutError) else exc.__class__.__name__
            raise _Transient(what) from None
        except OSError as exc:  # the public-only resolver refusing a name
            raise _Refused(f"refused: {exc}") from None

    async def _judge(self, url: str, final: str, resp: aiohttp.ClientResponse) -> ImageCheck:
        status = resp.status
        if status == 429 or status >= 500:
            wait = parse_retry_after(resp.headers.get("Retry-After"), time.time())
            raise _Transient(f"HTTP {status}", wait)
        if status not in (200, 206):
            raise _Refused(f"HTTP {status} from {describe_url(final)}")
        if status == 206:
            total = content_range_total(resp.headers.get("Content-Range"))
        else:
            total = _int(resp.headers.get("Content-Length"))
        if total is not None and total > self.max_bytes:
            raise _Refused(_too_big(total, self.max_bytes))
        head = await self._read(resp, HEAD_BYTES)
        found = sniff(head)
        if found.kind is None:
            raise _Refused(f"not a JPG, PNG or WebP image: {found.what}")
        if total is None and status == 200:
            total = len(head) + await self._count(resp, self.max_bytes - len(head))
        elif total is None:
            total = await self._size_otherwise(final)
        if total is not None and total > self.max_bytes:
            raise _Refused(_too_big(total, self.max_bytes))
        warnings = tuple(size_warnings(found.width, found.height))
        return ImageCheck(url, found.kind, total, found.width, found.height, warnings)

    async def _size_otherwise(self, url: str) -> int | None:
        """A 206 without a total: HEAD for Content-Length, else count a plain GET's body."""
        resp, _ = await self._get(url, {}, method="HEAD")
        with resp:
            size = _int(resp.headers.get("Content-Length")) if resp.status == 200 else None
        if size is not None:
            return size
        resp, _ = await self._get(url, {})
        with resp:
            if resp.status != 200:
                return None
            return await self._count(resp, self.max_bytes)

    async def _read(self, resp: aiohttp.ClientResponse, limit: int) -> bytes:
        chunks: list[bytes] = []
        got = 0
        while got < limit:
            async with asyncio.timeout(self.timeout_s):
                chunk = await resp.content.read(limit - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        self.stats.body_bytes += got
        return b"".join(chunks)

    async def _count(self, resp: aiohttp.ClientResponse, budget: int) -> int:
        """Bytes left in the body, read and dropped; stops one byte past `budget`."""
        got = 0
        while got <= budget:
            async with asyncio.timeout(self.timeout_s):
                chunk = await resp.content.read(min(1 << 16, budget + 1 - got))
            if not chunk:
                break
            got += len(chunk)
        self.stats.body_bytes += got
        return got

    async def _get(
        self, url: str, headers: dict[str, str], *, method: str = "GET"
    ) -> tuple[aiohttp.ClientResponse, str]:
        """A request following at most MAX_REDIRECTS redirects, each target checked."""
        current = await self._safe(url)
        headers = {**headers, "Accept-Encoding": "identity"}
        for _ in range(MAX_REDIRECTS + 1):
            exact = exact_url(current, "image URL")
            self.stats.requests += 1
            async with asyncio.timeout(self.timeout_s):
                resp = await self.session.request(
                    method,
                    exact,
                    allow_redirects=False,
                    auto_decompress=False,
                    **self._proxy_kwargs(exact, headers),
                )
            if resp.status not in _REDIRECTS:
                return resp, current
            location = resp.headers.get("Location")
            resp.release()
            if not location:
                raise _Refused(f"{describe_url(current)} redirected without a Location")
            try:
                target = exact.join(yarl.URL(location, encoded=True))
            except ValueError:
                raise _Refused(f"{describe_url(current)} sent a bad redirect") from None
            current = await self._safe(str(target))
        raise _Refused(f"more than {MAX_REDIRECTS} redirects")

    async def _safe(self, url: str) -> str:
        return await check_fetchable(
            url, public_only=self.public_only, proxies=self.proxies, what="image URL"
        )

    def _proxy_kwargs(self, target: yarl.URL, headers: dict[str, str]) -> dict:  # type: ignore[type-arg]
        if self.proxies is None:
            return {"headers": headers}
        return self.proxies.request_kwargs(target, headers)


def _int(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() else None


def _too_big(size: int, limit: int) -> str:
    return f"{size / 1e6:.1f} MB is over the limit of {limit / 1e6:g} MB"
