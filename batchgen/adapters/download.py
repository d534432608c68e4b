"""One result file from a CDN URL to a finished file on disk: the download boundary.

`Downloader.fetch` streams to `<dest>.part`, keeps what it has across cuts and across processes
(the validator and URL live in `<dest>.part.json`), resumes with `Range` + `If-Range`, checks the
length, hashes as it writes, then fsyncs and renames. A `.part` never becomes the final name
unless every byte the server announced has arrived. The engine owns retries across runs and the
state file; this module owns the bytes of one download and translates aiohttp and OSError into
`batchgen.errors`.

What is kept must be a video (batchgen.adapters.containers): a document Content-Type or first bytes
without a video container's signature fail the attempt with DownloadRejected before more of the
body is read, and an ISO-BMFF file whose top-level boxes overrun it is refused at the end. A
body compressed against `Accept-Encoding: identity` is decoded (batchgen.adapters.codings), never
resumed. Result URLs and redirect targets are requested byte for byte (paths.exact_url).

A small body (its whole length known to fit one write batch, or it ends before the first batch
fills) is gathered in memory and finished in one worker-thread call: write, hash, fsync, close,
rename, folder fsync. It gets no sidecar unless the transfer breaks off; then what arrived is
kept with a sidecar, as for a large file, and the next attempt resumes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import os
import random
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiofiles
import aiohttp
import yarl

from batchgen.adapters.codings import DECODABLE, BadCoding, Decoder
from batchgen.adapters.containers import (
    SNIFF_BYTES,
    bmff_cut,
    chunks_reader,
    describe_body,
    file_cut,
    file_head,
    head_of,
    non_video_type,
    page_type,
    part_is_video,
    query_secrets,
    video_container,
)
from batchgen.adapters.durability import GroupSync, fsync_folder
from batchgen.adapters.fetch import (
    _header_int,
    _retry_after,
    _salvage,
    _StallWatch,
)
from batchgen.adapters.netguard import check_fetchable
from batchgen.adapters.paths import describe_error, describe_url, exact_url
from batchgen.adapters.proxies import Proxies
from batchgen.adapters.sinks.local import (
    HASH_BLOCK,
    SIDECAR_VERSION,
    DownloadResult,
    _disk,
    _file_size,
    _hash_prefix,
    _Meta,
    _Misfit,
    _nofollow_opener,
    _Progress,
    _promoted,
    _save_prefix,
    _sidecar_json,
    _Sink,
    _write_small,
    part_path,
    sidecar_path,
)
from batchgen.core.policy import Backoff, backoff_delay
from batchgen.errors import (
    DownloadError,
    DownloadExpired,
    DownloadRejected,
    DownloadTooLarge,
    DownloadTransient,
    UnsafeUrl,
)

__all__ = ["DownloadResult", "Downloader", "part_path", "sidecar_path"]

MAX_REDIRECTS = 5
WRITE_BUFFER = 2 * 1024 * 1024  # bytes gathered before one (threaded) aiofiles write
PROGRESS_RESET = 64 * 1024  # an attempt that saved this much resets the failure count
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_EXPIRED = frozenset({403, 404, 410})
_TRANSIENT = frozenset({408, 425, 429})
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


class _Restart(Exception):
    """Throw the .part away and ask again without Range (the server ignored or mangled it)."""


class _ShortRange(Exception):
    """A clean 206 that covered less than the rest of the file: ask for the next range."""


class Downloader:
    """Downloads result files with bounded concurrency, separate from the API's rate limit."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        concurrency: int = 8,
        max_bytes: int = 2 * 1024**3,
        chunk_size: int = 1024 * 1024,
        backoff: tuple[float, float] = (0.5, 30.0),
        max_attempts: int = 6,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        read_timeout: float = 60.0,
        public_only: bool = False,
        proxies: Proxies | None = None,
    ) -> None:
        if concurrency < 1 or max_attempts < 1 or chunk_size < 1 or max_bytes < 0:
            raise ValueError("concurrency, max_attempts and chunk_size must be >= 1")
        self._session = session
        self._folder_syncs: dict[Path, GroupSync] = {}
        self._concurrency = concurrency
        self._sem = asyncio.Semaphore(concurrency)
        self._max_bytes = max_bytes
        # chunk_size is aiohttp's read_bufsize: below ~1 MiB the reader pauses and resumes the
        # socket every few reads. A 2 MiB write buffer halves the thread hand-offs of 1 MiB
        # while a chunk written then hashed still fits the worker core's cache.
        self._chunk = chunk_size
        self._batch = max(WRITE_BUFFER, chunk_size)
        self._backoff = Backoff(*backoff)  # the run's one backoff (core/policy.py), a bit quicker
        self._max_attempts = max_attempts
        self._rng = rng or random.Random()
        self._sleep = sleep
        # No sock_read: the answer's head is bounded by asyncio.timeout in _get, its body by
        # _StallWatch (aiohttp would re-arm a timer on every read).
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=read_timeout)
        self._read_timeout = read_timeout
        self._active = 0
        self._waiting = 0
        self._folders: set[Path] = set()  # folders this Downloader has made or found
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

    @staticmethod
    def verify_existing(dest: Path, sha256: str, size: int) -> bool:
        """True if `dest` is a regular file (not a symlink) of `size` bytes whose sha256 is
        `sha256`. Reads the whole file: call it through `asyncio.to_thread` from async code."""
        try:
            st = os.lstat(dest)
            if not os.path.isfile(dest) or os.path.islink(dest) or st.st_size != size:
                return False
            h = hashlib.sha256()
            with open(dest, "rb") as f:
                while block := f.read(HASH_BLOCK):
                    h.update(block)
        except OSError:
            return False
        return h.hexdigest() == sha256.lower()

    # ---- one fetch: attempts and backoff --------------------------------------------------

    async def _fetch(self, url: str, dest: Path) -> DownloadResult:
        part, side = part_path(dest), sidecar_path(dest)
        folder = dest.parent
        if folder not in self._folders:
            with _disk(folder):
                folder.mkdir(parents=True, exist_ok=True)
            self._folders.add(folder)
        meta, present = self._load_sidecar(url, side)
        progress = _Progress(sidecar_on_disk=present)
        failures = restarts = 0
        while True:
            progress.saved_this_attempt = 0
            try:
                return await self._attempt(url, dest, part, side, meta, progress)
            except _Restart:
                meta = None
                restarts += 1
                if restarts > self._max_attempts:
                    raise DownloadTransient(
                        f"{describe_url(url)}: the server keeps answering ranges inconsistently"
                    ) from None
                continue
            except _ShortRange as short:
                meta = short.args[0]
                if progress.saved_this_attempt >= PROGRESS_RESET:
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
                    await self._discard(part, side)
                    progress.sidecar_on_disk = False
                failures += 1
                if failures >= self._max_attempts:
                    raise
                retry_after = None
            except DownloadTransient as exc:
                meta = getattr(exc, "meta", meta)
                if progress.saved_this_attempt >= PROGRESS_RESET:
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
        self,
        url: str,
        dest: Path,
        part: Path,
        side: Path,
        meta: _Meta | None,
        progress: _Progress,
    ) -> DownloadResult:
        offset = 0
        if meta is not None and meta.validator:
            with _disk(part):
                offset = _file_size(part)
            if meta.total is not None and offset > meta.total:
                offset = 0
            if offset > 0 and not await asyncio.to_thread(part_is_video, part, offset):
                offset = 0  # something else left a non-video there: start over
        headers = {"Accept-Encoding": "identity"}
        if offset > 0:
            assert meta is not None and meta.validator is not None
            headers["Range"] = f"bytes={offset}-"
            headers["If-Range"] = meta.validator

        try:
            resp = await self._get(url, headers)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._transient(url, f"request failed: {describe_error(exc)}", exc, meta) from exc
        async with resp:
            status = resp.status
            if status in _EXPIRED:
                await self._discard(part, side)
                progress.sidecar_on_disk = False
                reason = f" {resp.reason}" if resp.reason else ""
                raise DownloadExpired(
                    f"{describe_url(url)} answered {status}{reason}: the result is gone "
                    "(result URLs live 15 days after the task completes)"
                )
            if status == 416 and offset > 0:
                raise _Restart()
            if status in _TRANSIENT or status >= 500:
                exc = self._transient(url, f"HTTP {status}", None, meta)
                exc.retry_after = _retry_after(resp)  # type: ignore[attr-defined]
                raise exc
            if status not in (200, 206):
                raise DownloadError(f"{describe_url(url)} answered unexpected HTTP {status}")
            content_type = resp.headers.get("Content-Type")
            # At offset 0 the first bytes decide (below): CDNs mislabel videos as text/plain.
            if offset > 0 and non_video_type(content_type):
                if status == 206 and not page_type(content_type):
                    pass  # a mislabelled range of a checked video: the final check judges it
                else:
                    head = await self._preview(resp)
                    if status == 200 and video_container(head) is not None:
                        raise _Restart()  # the whole video, mislabelled: take it from zero
                    raise self._rejected(url, content_type, head, meta)  # a page: keep the part
            codings = resp.headers.get("Content-Encoding", "").lower().split(",")
            encoding = ", ".join(c.strip() for c in codings if c.strip() not in ("", "identity"))
            if encoding:
                if status == 206:
                    raise _Restart()  # a range of a compressed body means nothing: from zero
                if encoding not in DECODABLE:
                    exc = DownloadRejected(
                        f"{describe_url(url)} sent a {encoding[:40]!a}-encoded body, "
                        f"which batchgen cannot decode (it decodes {', '.join(DECODABLE)})",
                        code="UNDECODABLE_BODY",
                    )
                    exc.meta = meta if offset > 0 else None  # type: ignore[attr-defined]
                    raise exc
                return await self._stream_decoded(url, dest, part, side, resp, encoding, progress)

            new = _Meta(
                url=url,
                etag=resp.headers.get("ETag"),
                last_modified=resp.headers.get("Last-Modified"),
                total=None,
            )
            length = _header_int(resp.headers.get("Content-Length"))
            end: int | None = None  # exclusive end of this response's bytes, when known
            if status == 206:
                cr = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
                if cr is None or int(cr.group(1)) != offset:
                    raise _Restart()
                if resp.headers.get("Content-Type", "").lower().startswith("multipart/"):
                    raise _Restart()
                first, last = int(cr.group(1)), int(cr.group(2))
                if last < first or (length is not None and length != last - first + 1):
                    raise _Restart()
                if meta is not None and offset > 0 and new.validator != meta.validator:
                    if new.validator is not None:
                        raise _Restart()  # If-Range ignored: different file behind the URL
                    new.etag, new.last_modified = meta.etag, meta.last_modified
                end = last + 1
                new.total = int(cr.group(3)) if cr.group(3) != "*" else None
                if new.total is not None and end > new.total:
                    raise _Restart()
            else:
                offset = 0  # a 200 is the whole file, whatever was asked
                new.total = length
                end = length
            if new.total is not None and new.total > self._max_bytes:
                await self._discard(part, side)
                progress.sidecar_on_disk = False
                raise DownloadTooLarge(
                    f"{describe_url(url)} is {new.total} bytes, over the size cap of "
                    f"{self._max_bytes} bytes"
                )
            if offset > 0 and meta is not None and meta.total not in (None, new.total):
                raise _Restart()  # same validator, another length: trust neither
            return await self._stream(url, dest, part, side, resp, new, offset, end, progress)

    async def _stream(
        self,
        url: str,
        dest: Path,
        part: Path,
        side: Path,
        resp: aiohttp.ClientResponse,
        meta: _Meta,
        offset: int,
        end: int | None,
        progress: _Progress,
    ) -> DownloadResult:
        opening: list[bytes] = []
        received = 0
        small = self._batch
        if offset == 0 and (end or 0) <= small and (meta.total or 0) <= small:
            opening, received, finished = await self._read_small(
                url, part, side, resp, meta, progress
            )
            if finished:
                return await self._finish_small(
                    url, dest, part, side, meta, end, progress, opening, received
                )
            # longer than one batch after all (no Content-Length): stream it like a large one
        # Order matters for a crash at any point: truncate first, then record the validator of
        # this body, then append. A sidecar never describes bytes from another version.
        mode = "ab" if offset > 0 else "wb"
        with _disk(part):
            if offset == 0:
                progress.hasher, progress.hashed_upto = hashlib.sha256(), 0
            f = await aiofiles.open(part, mode, opener=_nofollow_opener)
        try:
            with _disk(side):
                self._write_sidecar(side, meta)
            progress.sidecar_on_disk = True
            if progress.hasher is None or progress.hashed_upto != offset:
                with _disk(part):
                    progress.hasher = await asyncio.to_thread(_hash_prefix, part, offset)
                progress.hashed_upto = offset
                if progress.hasher is None:
                    raise _Restart()
            hasher = progress.hasher
            sink = _Sink(f, part, progress)
            batch = opening  # chunks as aiohttp hands them out: no copy until the disk
            batched = received
            limit = self._max_bytes - offset
            content_type = resp.headers.get("Content-Type")
            # The opening bytes are checked once SNIFF_BYTES have come (with the .part's own
            # when a short one is resumed); a longer .part was checked before the request.
            prefix = b""
            if 0 < offset < SNIFF_BYTES:
                with _disk(part):
                    prefix = await asyncio.to_thread(file_head, part, offset)
            sniffed = offset >= SNIFF_BYTES or received >= SNIFF_BYTES
            try:
                try:
                    with _StallWatch(resp.content, self._read_timeout) as watch:
                        # readchunk() returns aiohttp's own buffers without joining them
                        async for chunk, _ in resp.content.iter_chunks():
                            received += len(chunk)
                            watch.received = received
                            if received > limit:
                                raise _TooLarge()
                            batch.append(chunk)
                            if not sniffed and offset + received >= SNIFF_BYTES:
                                self._require_video(url, content_type, head_of([prefix, *batch]))
                                sniffed = True
                            batched += len(chunk)
                            if batched >= self._batch:
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
                    raise self._transient(
                        url,
                        f"connection lost after {offset + received} bytes: {describe_error(exc)}",
                        exc,
                        meta,
                    ) from exc
                finally:
                    progress.fetched += max(received, resp.content.total_bytes)
                if not sniffed:
                    self._require_video(url, content_type, head_of([prefix, *batch]))
                await sink.put(batch)
                await sink.drain()
            finally:
                await sink.settle()
            size = offset + received
            if end is not None and size < end:
                raise self._transient(url, f"body ended early: {size} of {end} bytes", None, meta)
            if meta.total is not None and size < meta.total:
                raise _ShortRange(meta)
            if meta.total is not None and size != meta.total:
                raise _Restart()
            with _disk(part):
                await f.flush()
                await asyncio.to_thread(os.fsync, f.fileno())
                cut = await asyncio.to_thread(file_cut, part, size)
            if cut is not None:
                raise self._cut_video(url, cut)
        except _TooLarge:
            await f.close()
            await self._discard(part, side)
            progress.sidecar_on_disk = False
            raise DownloadTooLarge(
                f"{describe_url(url)} sent more than the size cap of {self._max_bytes} bytes"
            ) from None
        finally:
            if not f.closed:
                with _disk(part):
                    await f.close()

        return await _promoted(url, part, dest, side, size, hasher.hexdigest(), meta.etag, progress)

    # ---- a body in a content coding (gzip, deflate) ----------------------------------------

    async def _stream_decoded(
        self,
        url: str,
        dest: Path,
        part: Path,
        side: Path,
        resp: aiohttp.ClientResponse,
        coding: str,
        progress: _Progress,
    ) -> DownloadResult:
        """Decode a compressed body into the .part from byte 0. No sidecar: a range of the
        compressed body means nothing, so a cut starts over. The coding's own checksum (gzip,
        zlib), the video's signature and its box sizes check the decoded bytes; the sha256 is
        that of the decoded file."""
        await self._discard(part, side)
        progress.sidecar_on_disk = False
        progress.hasher = None  # the .part is rewritten from zero
        content_type = resp.headers.get("Content-Type")
        decoder = Decoder(coding)
        hasher = hashlib.sha256()
        head = b""
        size = received = 0
        pending: list[bytes] = []
        with _disk(part):
            f = await aiofiles.open(part, "wb", opener=_nofollow_opener)
        try:
            try:
                with _StallWatch(resp.content, self._read_timeout) as watch:
                    async for chunk, _ in resp.content.iter_chunks():
                        received += len(chunk)
                        watch.received = received
                        for piece in decoder.feed(chunk):
                            size += len(piece)
                            if size > self._max_bytes:
                                raise DownloadTooLarge(
                                    f"{describe_url(url)} decodes to more than the size cap "
                                    f"of {self._max_bytes} bytes"
                                )
                            if len(head) < SNIFF_BYTES:
                                head += piece[: SNIFF_BYTES - len(head)]
                                if len(head) >= SNIFF_BYTES:
                                    self._require_video(url, content_type, head)
                            hasher.update(piece)
                            pending.append(piece)
                            if sum(map(len, pending)) >= self._batch:
                                with _disk(part):
                                    await f.writelines(pending)
                                pending = []
                last = decoder.finish()
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise self._transient(
                    url,
                    f"connection lost after {received} {coding} bytes: {describe_error(exc)}",
                    exc,
                    None,
                ) from exc
            except BadCoding as exc:
                raise DownloadRejected(
                    f"{describe_url(url)}: {exc}", code="UNDECODABLE_BODY"
                ) from None
            finally:
                progress.fetched += max(received, resp.content.total_bytes)
            size += len(last)
            if size > self._max_bytes:
                raise DownloadTooLarge(
                    f"{describe_url(url)} decodes to more than the size cap of "
                    f"{self._max_bytes} bytes"
                )
            head += last[: SNIFF_BYTES - len(head)]
            self._require_video(url, content_type, head)
            hasher.update(last)
            pending.append(last)
            with _disk(part):
                await f.writelines(pending)
                await f.flush()
                await asyncio.to_thread(os.fsync, f.fileno())
                cut = await asyncio.to_thread(file_cut, part, size)
            if cut is not None:
                raise self._cut_video(url, cut)
        except BaseException:
            await f.close()
            await self._discard(part, side)
            raise
        finally:
            if not f.closed:
                with _disk(part):
                    await f.close()
        return await _promoted(url, part, dest, side, size, hasher.hexdigest(), None, progress)

    # ---- small bodies: in memory, then one thread call ------------------------------------

    async def _read_small(
        self,
        url: str,
        part: Path,
        side: Path,
        resp: aiohttp.ClientResponse,
        meta: _Meta,
        progress: _Progress,
    ) -> tuple[list[bytes], int, bool]:
        """Read a body of at most one batch into memory, touching no file. Returns (chunks,
        bytes, finished); not finished means it outgrew the batch (no Content-Length) and the
        caller streams the rest. A cut keeps what arrived, with a sidecar, for a resume."""
        chunks: list[bytes] = []
        received = 0
        content_type = resp.headers.get("Content-Type")
        sniffed = False
        try:
            with _StallWatch(resp.content, self._read_timeout) as watch:
                async for chunk, _ in resp.content.iter_chunks():
                    received += len(chunk)
                    watch.received = received
                    if not sniffed and received >= SNIFF_BYTES:
                        self._require_video(url, content_type, head_of([*chunks, chunk]))
                        sniffed = True
                    if received > self._max_bytes:
                        progress.fetched += max(received, resp.content.total_bytes)
                        await self._discard(part, side)
                        progress.sidecar_on_disk = False
                        raise DownloadTooLarge(
                            f"{describe_url(url)} sent more than the size cap of "
                            f"{self._max_bytes} bytes"
                        )
                    chunks.append(chunk)
                    if received > self._batch:
                        return chunks, received, False
        except (TimeoutError, aiohttp.ClientError) as exc:
            rest = _salvage(resp.content, received)
            if rest and received + len(rest) <= self._max_bytes:
                chunks.append(rest)
                received += len(rest)
            progress.fetched += max(received, resp.content.total_bytes)
            await self._keep_prefix(part, side, meta, chunks, received, progress)
            raise self._transient(
                url, f"connection lost after {received} bytes: {describe_error(exc)}", exc, meta
            ) from exc
        progress.fetched += max(received, resp.content.total_bytes)
        if not sniffed:
            self._require_video(url, content_type, head_of(chunks))
        return chunks, received, True

    async def _finish_small(
        self,
        url: str,
        dest: Path,
        part: Path,
        side: Path,
        meta: _Meta,
        end: int | None,
        progress: _Progress,
        chunks: list[bytes],
        size: int,
    ) -> DownloadResult:
        if end is not None and size < end:
            await self._keep_prefix(part, side, meta, chunks, size, progress)
            raise self._transient(url, f"body ended early: {size} of {end} bytes", None, meta)
        if meta.total is not None and size < meta.total:
            await self._keep_prefix(part, side, meta, chunks, size, progress)
            raise _ShortRange(meta)
        if meta.total is not None and size != meta.total:
            raise _Restart()
        cut = bmff_cut(size, chunks_reader(chunks))
        if cut is not None:
            raise self._cut_video(url, cut)
        try:
            digest = await asyncio.to_thread(
                _write_small, part, dest, side, chunks, size, progress.sidecar_on_disk
            )
        except _Misfit as misfit:
            raise DownloadTransient(
                f"{describe_url(url)}: {part} holds {misfit.args[0]} bytes, expected {size}"
            ) from None
        progress.sidecar_on_disk = False
        with _disk(dest):
            await self._folder_synced(dest.parent)  # the rename survives a power cut
        return DownloadResult(
            path=dest, bytes=size, sha256=digest, etag=meta.etag, fetched_bytes=progress.fetched
        )

    async def _keep_prefix(
        self,
        part: Path,
        side: Path,
        meta: _Meta,
        chunks: list[bytes],
        size: int,
        progress: _Progress,
    ) -> None:
        progress.hasher = await asyncio.to_thread(_save_prefix, part, side, meta, chunks)
        progress.hashed_upto = size
        progress.saved_this_attempt += size
        progress.sidecar_on_disk = True

    async def _folder_synced(self, folder: Path) -> None:
        """fsync of a folder shared by every file renamed into it meanwhile (group commit):
        with many small results finishing at once, one fsync covers them all."""
        group = self._folder_syncs.get(folder)
        if group is None:
            if len(self._folder_syncs) >= 256:  # templates with many folders: stay bounded
                self._folder_syncs.clear()
            group = self._folder_syncs[folder] = GroupSync(functools.partial(fsync_folder, folder))
        await group.sync()

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

    def _require_video(self, url: str, content_type: str | None, head: bytes) -> None:
        """Raise DownloadRejected unless `head` (a body's first bytes) opens a video."""
        if video_container(head) is None:
            raise self._rejected(url, content_type, head, None)

    def _rejected(
        self, url: str, content_type: str | None, head: bytes, meta: _Meta | None
    ) -> DownloadRejected:
        exc = DownloadRejected(
            f"{describe_url(url)} sent no video "
            f"({describe_body(content_type, head, hide=query_secrets(url))})",
            code="NOT_A_VIDEO",
        )
        exc.meta = meta  # type: ignore[attr-defined]
        return exc

    def _cut_video(self, url: str, why: str) -> DownloadRejected:
        return DownloadRejected(
            f"{describe_url(url)} sent a video cut short although its transfer looked "
            f"complete: {why}",
            code="VIDEO_TRUNCATED",
        )

    async def _preview(self, resp: aiohttp.ClientResponse) -> bytes:
        """Up to SNIFF_BYTES of a body that is refused anyway, for the message; never more."""
        try:
            async with asyncio.timeout(self._read_timeout):
                return await resp.content.read(SNIFF_BYTES)
        except (TimeoutError, aiohttp.ClientError):
            return b""

    def _transient(
        self, url: str, what: str, cause: BaseException | None, meta: _Meta | None
    ) -> DownloadTransient:
        exc = DownloadTransient(f"{describe_url(url)}: {what}")
        exc.meta = meta  # type: ignore[attr-defined]
        return exc

    def _load_sidecar(self, url: str, side: Path) -> tuple[_Meta | None, bool]:
        """The sidecar's record if it is usable for `url`, and whether a sidecar file may be
        there at all (False only when it is certainly absent)."""
        try:
            data = json.loads(side.read_text(encoding="utf-8"))
            if data.get("version") != SIDECAR_VERSION or data.get("url") != url:
                return None, True
            total = data.get("total")
            meta = _Meta(
                url=url,
                etag=data.get("etag"),
                last_modified=data.get("last_modified"),
                total=total if isinstance(total, int) else None,
            )
            if not all(isinstance(v, str | None) for v in (meta.etag, meta.last_modified)):
                return None, True
            return meta, True
        except FileNotFoundError:
            return None, False
        except (OSError, ValueError, AttributeError):  # unreadable, not UTF-8, not JSON
            return None, True

    @staticmethod
    def _write_sidecar(side: Path, meta: _Meta) -> None:
        side.write_text(_sidecar_json(meta), encoding="utf-8")

    @staticmethod
    async def _discard(part: Path, side: Path) -> None:
        for p in (part, side):
            with contextlib.suppress(OSError):
                p.unlink()


class _TooLarge(Exception):
    pass
