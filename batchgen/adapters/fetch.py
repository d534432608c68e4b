"""The network side of a result download: a body that stalls is cut (and its bytes kept), what
was read but not yet handed out is salvaged, and the headers that steer a retry are read."""

from __future__ import annotations

import asyncio
import collections

import aiohttp


class _StallWatch:
    """Fails a body that received nothing for `seconds`, the way aiohttp's sock_read timeout
    does (ServerTimeoutError into the stream, so the cut-body path keeps what arrived). aiohttp
    re-arms its timer on every socket read, a cancel and a heap push per 256 KiB (about 3 % of
    one-at-a-time download speed here, bench/downloads.py A/B); this one looks a few times per
    `seconds`, and the read loop only stores its byte count in `received`."""

    __slots__ = ("_handle", "_last_change", "_loop", "_seconds", "_seen", "_stream", "received")

    def __init__(self, stream: aiohttp.StreamReader, seconds: float) -> None:
        self._stream = stream
        self._seconds = seconds
        self._loop = asyncio.get_running_loop()
        self.received = 0
        self._seen = 0
        self._last_change = self._loop.time()
        self._handle: asyncio.TimerHandle | None = None

    def __enter__(self) -> _StallWatch:
        self._handle = self._loop.call_later(self._seconds / 4, self._look)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _look(self) -> None:
        now = self._loop.time()
        if self.received != self._seen:
            self._seen, self._last_change = self.received, now
        elif now - self._last_change >= self._seconds:
            self._handle = None
            self._stream.set_exception(
                aiohttp.ServerTimeoutError(f"no body bytes for {self._seconds:g} s")
            )
            return
        self._handle = self._loop.call_later(self._seconds / 4, self._look)


def _salvage(content: aiohttp.StreamReader, consumed: int) -> bytes:
    """The body bytes aiohttp received but will not hand out once the connection has failed
    (its read() raises before returning buffered data, so a cut would waste up to a read
    buffer per attempt). This reads private fields, so the result is checked against the
    public `total_bytes`; on any doubt nothing is salvaged: only efficiency is lost."""
    buffer = getattr(content, "_buffer", None)
    skip = getattr(content, "_buffer_offset", None)
    if not isinstance(buffer, collections.deque) or not isinstance(skip, int) or skip < 0:
        return b""
    try:
        data = b"".join(buffer)[skip:]
    except TypeError:
        return b""
    if consumed + len(data) != content.total_bytes:
        return b""
    return data


def _header_int(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


def _retry_after(resp: aiohttp.ClientResponse) -> float | None:
    value = _header_int(resp.headers.get("Retry-After"))
    return float(value) if value is not None else None
