"""What the head of one answer means for a result download: its status, the range it covers
against the bytes already held, its validator, its type and its coding. Each check returns what
to do next or raises: batchgen.errors for the caller, `Restart` (ask again from byte 0) or
`ShortRange` (ask for the rest). Nothing here touches a file; the only I/O is reading the first
bytes of a body that is refused anyway, for the message."""

from __future__ import annotations

import asyncio
import re

import aiohttp

from batchgen.adapters.download.codings import DECODABLE
from batchgen.adapters.download.video import (
    SNIFF_BYTES,
    describe_body,
    non_video_type,
    page_type,
    query_secrets,
    video_container,
)
from batchgen.adapters.sinks.base import Version
from batchgen.core.urls import describe_url
from batchgen.errors import (
    DownloadError,
    DownloadExpired,
    DownloadRejected,
    DownloadTooLarge,
    DownloadTransient,
)

_EXPIRED = frozenset({403, 404, 410})
_TRANSIENT = frozenset({408, 425, 429})
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


class Restart(Exception):
    """Throw the held bytes away and ask again without Range (the server ignored or mangled
    it)."""


class ShortRange(Exception):
    """A clean 206 that covered less than the rest of the file: ask for the next range
    (args[0]: the version, to resume)."""


def request_headers(offset: int, meta: Version | None) -> dict[str, str]:
    headers = {"Accept-Encoding": "identity"}
    if offset > 0:
        assert meta is not None and meta.validator is not None
        headers["Range"] = f"bytes={offset}-"
        headers["If-Range"] = meta.validator
    return headers


def check_status(url: str, resp: aiohttp.ClientResponse, offset: int, meta: Version | None) -> None:
    """Raise unless the answer is a 200 or a 206 (DownloadExpired: the caller drops what it
    holds)."""
    status = resp.status
    if status in _EXPIRED:
        reason = f" {resp.reason}" if resp.reason else ""
        raise DownloadExpired(
            f"{describe_url(url)} answered {status}{reason}: the result is gone "
            "(result URLs live 15 days after the task completes)"
        )
    if status == 416 and offset > 0:
        raise Restart()
    if status in _TRANSIENT or status >= 500:
        exc = transient(url, f"HTTP {status}", meta)
        exc.retry_after = _retry_after(resp)  # type: ignore[attr-defined]
        raise exc
    if status not in (200, 206):
        raise DownloadError(f"{describe_url(url)} answered unexpected HTTP {status}")


async def check_type(
    url: str, resp: aiohttp.ClientResponse, offset: int, meta: Version | None, within: float
) -> None:
    """A resumed answer labelled as no video: a page is refused (what is held is kept), the
    whole video mislabelled is taken from zero. At offset 0 the first bytes decide instead
    (CDNs mislabel videos as text/plain)."""
    content_type = resp.headers.get("Content-Type")
    if offset == 0 or not non_video_type(content_type):
        return
    if resp.status == 206 and not page_type(content_type):
        return  # a mislabelled range of a checked video: the final check judges it
    head = await _preview(resp, within)
    if resp.status == 200 and video_container(head) is not None:
        raise Restart()  # the whole video, mislabelled: take it from zero
    raise rejected(url, content_type, head, meta)  # a page: keep the part


def content_coding(
    url: str, resp: aiohttp.ClientResponse, offset: int, meta: Version | None
) -> str:
    """The body's content coding ("" for none), if batchgen can decode it."""
    codings = resp.headers.get("Content-Encoding", "").lower().split(",")
    encoding = ", ".join(c.strip() for c in codings if c.strip() not in ("", "identity"))
    if not encoding:
        return ""
    if resp.status == 206:
        raise Restart()  # a range of a compressed body means nothing: from zero
    if encoding not in DECODABLE:
        exc = DownloadRejected(
            f"{describe_url(url)} sent a {encoding[:40]!a}-encoded body, "
            f"which batchgen cannot decode (it decodes {', '.join(DECODABLE)})",
            code="UNDECODABLE_BODY",
        )
        exc.meta = meta if offset > 0 else None  # type: ignore[attr-defined]
        raise exc
    return encoding


def answer_range(
    url: str, resp: aiohttp.ClientResponse, offset: int, meta: Version | None, max_bytes: int
) -> tuple[Version, int, int | None]:
    """The version this answer's body belongs to, the offset it starts at, and the exclusive
    end of its bytes when known. DownloadTooLarge: the caller drops what it holds."""
    new = Version(
        url=url,
        etag=resp.headers.get("ETag"),
        last_modified=resp.headers.get("Last-Modified"),
        total=None,
    )
    length = _header_int(resp.headers.get("Content-Length"))
    end: int | None = None
    if resp.status == 206:
        cr = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
        if cr is None or int(cr.group(1)) != offset:
            raise Restart()
        if resp.headers.get("Content-Type", "").lower().startswith("multipart/"):
            raise Restart()
        first, last = int(cr.group(1)), int(cr.group(2))
        if last < first or (length is not None and length != last - first + 1):
            raise Restart()
        if meta is not None and offset > 0 and new.validator != meta.validator:
            if new.validator is not None:
                raise Restart()  # If-Range ignored: different file behind the URL
            new.etag, new.last_modified = meta.etag, meta.last_modified
        end = last + 1
        new.total = int(cr.group(3)) if cr.group(3) != "*" else None
        if new.total is not None and end > new.total:
            raise Restart()
    else:
        offset = 0  # a 200 is the whole file, whatever was asked
        new.total = length
        end = length
    if new.total is not None and new.total > max_bytes:
        raise DownloadTooLarge(
            f"{describe_url(url)} is {new.total} bytes, over the size cap of {max_bytes} bytes"
        )
    if offset > 0 and meta is not None and meta.total not in (None, new.total):
        raise Restart()  # same validator, another length: trust neither
    return new, offset, end


# ---- the errors an answer's body can end in ---------------------------------------------------


def transient(url: str, what: str, meta: Version | None) -> DownloadTransient:
    """Worth another attempt; `meta` (the version of what is held) resumes it."""
    exc = DownloadTransient(f"{describe_url(url)}: {what}")
    exc.meta = meta  # type: ignore[attr-defined]
    return exc


def rejected(
    url: str, content_type: str | None, head: bytes, meta: Version | None
) -> DownloadRejected:
    exc = DownloadRejected(
        f"{describe_url(url)} sent no video "
        f"({describe_body(content_type, head, hide=query_secrets(url))})",
        code="NOT_A_VIDEO",
    )
    exc.meta = meta  # type: ignore[attr-defined]
    return exc


def require_video(url: str, content_type: str | None, head: bytes) -> None:
    """Raise DownloadRejected unless `head` (a body's first bytes) opens a video."""
    if video_container(head) is None:
        raise rejected(url, content_type, head, None)


def cut_video(url: str, why: str) -> DownloadRejected:
    return DownloadRejected(
        f"{describe_url(url)} sent a video cut short although its transfer looked complete: {why}",
        code="VIDEO_TRUNCATED",
    )


async def _preview(resp: aiohttp.ClientResponse, within: float) -> bytes:
    """Up to SNIFF_BYTES of a body that is refused anyway, for the message; never more, and
    for no longer than `within` seconds."""
    try:
        async with asyncio.timeout(within):
            return await resp.content.read(SNIFF_BYTES)
    except (TimeoutError, aiohttp.ClientError):
        return b""


def _header_int(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


def _retry_after(resp: aiohttp.ClientResponse) -> float | None:
    value = _header_int(resp.headers.get("Retry-After"))
    return float(value) if value is not None else None
