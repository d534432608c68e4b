"""One answer's body into a result sink (batchgen/adapters/sinks/): read from the socket in
aiohttp's own chunks, checked as it arrives (a video's first bytes, the size cap, the length
announced), handed to the sink a batch at a time, then committed or kept for a resume.

A small body (its whole length known to fit one batch, or it ends before the first batch
fills) is gathered in memory and handed over whole, in one sink call (`finish`); if it breaks
off, what arrived is kept (`keep`) and the next attempt resumes it, as for a large one. A body
compressed against `Accept-Encoding: identity` is decoded and never resumed."""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass

import aiohttp

from batchgen.adapters.download.codings import BadCoding, Decoder
from batchgen.adapters.download.head import Restart, ShortRange, cut_video, require_video, transient
from batchgen.adapters.download.video import SNIFF_BYTES, bmff_cut, chunks_reader, head_of
from batchgen.adapters.sinks.base import DownloadResult, ResultSink, Version, VideoCut
from batchgen.core.urls import describe_error, describe_url
from batchgen.errors import DownloadRejected, DownloadTooLarge


@dataclass(frozen=True)
class Reading:
    """How a Downloader reads bodies: its batch (bytes per sink call), size cap and stall
    limit (seconds without a byte)."""

    batch: int
    max_bytes: int
    stall: float


class Tally:
    """Carried across the attempts of one fetch: body bytes received over the network."""

    __slots__ = ("fetched",)

    def __init__(self) -> None:
        self.fetched = 0


class Body:
    """The body of one answer whose head was accepted, on its way into `sink`."""

    def __init__(
        self,
        url: str,
        resp: aiohttp.ClientResponse,
        sink: ResultSink,
        reading: Reading,
        tally: Tally,
    ) -> None:
        self._url = url
        self._resp = resp
        self._sink = sink
        self._how = reading
        self._tally = tally

    async def save(self, meta: Version, offset: int, end: int | None) -> DownloadResult:
        """The bytes of `meta` from `offset` (to `end`, exclusive, when known)."""
        opening: list[bytes] = []
        received = 0
        small = self._how.batch
        if offset == 0 and (end or 0) <= small and (meta.total or 0) <= small:
            opening, received, finished = await self._read_small(meta)
            if finished:
                return await self._finish_small(meta, end, opening, received)
            # longer than one batch after all (no Content-Length): stream it like a large one
        return await self._stream(meta, offset, end, opening, received)

    # ---- large bodies: a batch at a time ---------------------------------------------------

    async def _stream(
        self, meta: Version, offset: int, end: int | None, batch: list[bytes], received: int
    ) -> DownloadResult:
        url, resp, sink = self._url, self._resp, self._sink
        max_batch = self._how.batch
        limit = self._how.max_bytes - offset
        content_type = resp.headers.get("Content-Type")
        try:
            if not await sink.begin(meta, offset):
                raise Restart()
            batched = received  # `batch`: chunks as aiohttp hands them out, no copy until the sink
            # The opening bytes are checked once SNIFF_BYTES have come (with the sink's own
            # when a short one is resumed); a longer one was checked before the request.
            prefix = await sink.head(offset) if 0 < offset < SNIFF_BYTES else b""
            sniffed = offset >= SNIFF_BYTES or received >= SNIFF_BYTES
            try:
                with _StallWatch(resp.content, self._how.stall) as watch:
                    # readchunk() returns aiohttp's own buffers without joining them
                    async for chunk, _ in resp.content.iter_chunks():
                        received += len(chunk)
                        watch.received = received
                        if received > limit:
                            raise _TooLarge()
                        batch.append(chunk)
                        if not sniffed and offset + received >= SNIFF_BYTES:
                            require_video(url, content_type, head_of([prefix, *batch]))
                            sniffed = True
                        batched += len(chunk)
                        if batched >= max_batch:
                            await sink.put(batch)
                            batch, batched = [], 0
            except (TimeoutError, aiohttp.ClientError) as exc:
                # keep every byte that arrived: the next attempt resumes after it
                rest = _salvage(resp.content, received)
                if rest and received + len(rest) <= limit:
                    batch.append(rest)
                    received += len(rest)
                await sink.put(batch)
                await sink.drain()
                raise transient(
                    url,
                    f"connection lost after {offset + received} bytes: {describe_error(exc)}",
                    meta,
                ) from exc
            finally:
                self._tally.fetched += max(received, resp.content.total_bytes)
            if not sniffed:
                require_video(url, content_type, head_of([prefix, *batch]))
            await sink.put(batch)
            await sink.drain()
            size = offset + received
            if end is not None and size < end:
                raise transient(url, f"body ended early: {size} of {end} bytes", meta)
            if meta.total is not None and size < meta.total:
                raise ShortRange(meta)
            if meta.total is not None and size != meta.total:
                raise Restart()
            try:
                return await sink.commit(size, meta.etag, self._tally.fetched)
            except VideoCut as cut:
                raise cut_video(url, cut.args[0]) from None
        except _TooLarge:
            await sink.discard()
            raise DownloadTooLarge(
                f"{describe_url(url)} sent more than the size cap of {self._how.max_bytes} bytes"
            ) from None
        finally:
            await sink.settle()

    # ---- a body in a content coding (gzip, deflate) ----------------------------------------

    async def save_decoded(self, coding: str) -> DownloadResult:
        """Decode a compressed body into the sink from byte 0, with no record: a range of the
        compressed body means nothing, so a cut starts over. The coding's own checksum (gzip,
        zlib), the video's signature and its box sizes check the decoded bytes; the sha256 is
        that of the decoded file."""
        url, resp, sink = self._url, self._resp, self._sink
        cap = self._how.max_bytes
        too_large = f"{describe_url(url)} decodes to more than the size cap of {cap} bytes"
        content_type = resp.headers.get("Content-Type")
        decoder = Decoder(coding)
        head = b""
        size = received = batched = 0
        pending: list[bytes] = []
        try:
            await sink.begin(None, 0)
            try:
                with _StallWatch(resp.content, self._how.stall) as watch:
                    async for chunk, _ in resp.content.iter_chunks():
                        received += len(chunk)
                        watch.received = received
                        for piece in decoder.feed(chunk):
                            size += len(piece)
                            if size > cap:
                                raise DownloadTooLarge(too_large)
                            if len(head) < SNIFF_BYTES:
                                head += piece[: SNIFF_BYTES - len(head)]
                                if len(head) >= SNIFF_BYTES:
                                    require_video(url, content_type, head)
                            pending.append(piece)
                            batched += len(piece)
                            if batched >= self._how.batch:
                                await sink.put(pending)
                                pending, batched = [], 0
                last = decoder.finish()
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise transient(
                    url,
                    f"connection lost after {received} {coding} bytes: {describe_error(exc)}",
                    None,
                ) from exc
            except BadCoding as exc:
                raise DownloadRejected(
                    f"{describe_url(url)}: {exc}", code="UNDECODABLE_BODY"
                ) from None
            finally:
                self._tally.fetched += max(received, resp.content.total_bytes)
            size += len(last)
            if size > cap:
                raise DownloadTooLarge(too_large)
            head += last[: SNIFF_BYTES - len(head)]
            require_video(url, content_type, head)
            pending.append(last)
            await sink.put(pending)
            await sink.drain()
            try:
                return await sink.commit(size, None, self._tally.fetched)
            except VideoCut as cut:
                raise cut_video(url, cut.args[0]) from None
        except BaseException:
            await sink.discard()
            raise
        finally:
            await sink.settle()

    # ---- small bodies: in memory, then one sink call ---------------------------------------

    async def _read_small(self, meta: Version) -> tuple[list[bytes], int, bool]:
        """Read a body of at most one batch into memory, handing nothing to the sink. Returns
        (chunks, bytes, finished); not finished means it outgrew the batch (no Content-Length)
        and the caller streams the rest. A cut keeps what arrived, for a resume."""
        url, resp, sink = self._url, self._resp, self._sink
        chunks: list[bytes] = []
        received = 0
        content_type = resp.headers.get("Content-Type")
        sniffed = False
        try:
            with _StallWatch(resp.content, self._how.stall) as watch:
                async for chunk, _ in resp.content.iter_chunks():
                    received += len(chunk)
                    watch.received = received
                    if not sniffed and received >= SNIFF_BYTES:
                        require_video(url, content_type, head_of([*chunks, chunk]))
                        sniffed = True
                    if received > self._how.max_bytes:
                        self._tally.fetched += max(received, resp.content.total_bytes)
                        await sink.discard()
                        raise DownloadTooLarge(
                            f"{describe_url(url)} sent more than the size cap of "
                            f"{self._how.max_bytes} bytes"
                        )
                    chunks.append(chunk)
                    if received > self._how.batch:
                        return chunks, received, False
        except (TimeoutError, aiohttp.ClientError) as exc:
            rest = _salvage(resp.content, received)
            if rest and received + len(rest) <= self._how.max_bytes:
                chunks.append(rest)
                received += len(rest)
            self._tally.fetched += max(received, resp.content.total_bytes)
            await sink.keep(meta, chunks)
            raise transient(
                url, f"connection lost after {received} bytes: {describe_error(exc)}", meta
            ) from exc
        self._tally.fetched += max(received, resp.content.total_bytes)
        if not sniffed:
            require_video(url, content_type, head_of(chunks))
        return chunks, received, True

    async def _finish_small(
        self, meta: Version, end: int | None, chunks: list[bytes], size: int
    ) -> DownloadResult:
        url, sink = self._url, self._sink
        if end is not None and size < end:
            await sink.keep(meta, chunks)
            raise transient(url, f"body ended early: {size} of {end} bytes", meta)
        if meta.total is not None and size < meta.total:
            await sink.keep(meta, chunks)
            raise ShortRange(meta)
        if meta.total is not None and size != meta.total:
            raise Restart()
        cut = bmff_cut(size, chunks_reader(chunks))
        if cut is not None:
            raise cut_video(url, cut)
        return await sink.finish(chunks, size, meta.etag, self._tally.fetched)


class _TooLarge(Exception):
    pass


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
