"""The local disk as a result sink: `<dest>.part` written off the event loop and hashed as it
is written, a sidecar (`<dest>.part.json`) that lets another process resume, and the final
fsync, rename and folder sync. Nothing here speaks HTTP (batchgen/adapters/download.py does)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from batchgen.adapters.durability import fsync_folder
from batchgen.adapters.paths import describe_url
from batchgen.errors import (
    DiskFull,
    DownloadError,
    DownloadTransient,
)


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    bytes: int
    sha256: str
    etag: str | None
    fetched_bytes: int  # body bytes received over the network by this call, all attempts


HASH_BLOCK = 1024 * 1024
SIDECAR_VERSION = 1
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def sidecar_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part.json")


@dataclass
class _Meta:
    """What the sidecar records: enough for another process to resume safely."""

    url: str
    etag: str | None
    last_modified: str | None
    total: int | None

    @property
    def validator(self) -> str | None:
        # If-Range needs a strong validator: a weak ETag (W/"...") cannot be used.
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified


@dataclass
class _Progress:
    """Carried across the attempts of one fetch call."""

    fetched: int = 0
    hasher: hashlib._Hash | None = None
    hashed_upto: int = 0  # the hasher covers exactly part[0:hashed_upto]
    saved_this_attempt: int = 0
    sidecar_on_disk: bool = True  # False only when known absent: saves a useless unlink


class _Sink:
    """Writes (through aiofiles) and hashes each buffer in one worker-thread call while the
    event loop goes on reading the socket. One buffer in flight at most, so memory stays bounded
    and the bytes land in order; `progress.hashed_upto` moves only once a buffer is both written
    and hashed.

    In that thread each chunk is hashed right after it is written, while the write has just
    pulled it into that core's cache (sha256 of a chunk read cold from another core runs at
    about 60% of the speed), and after each buffer the kernel is asked to start writing the new
    bytes back, so the final fsync waits for a few MB instead of the whole file."""

    def __init__(self, f: Any, part: Path, progress: _Progress) -> None:
        self._f = f
        self._part = part
        self._progress = progress
        self._pending: asyncio.Future[None] | None = None
        self._fd: int = f.fileno()

    async def put(self, chunks: list[bytes]) -> None:
        await self.drain()
        if chunks:
            self._pending = asyncio.ensure_future(self._write(chunks))

    async def _write(self, chunks: list[bytes]) -> None:
        hasher = self._progress.hasher
        assert hasher is not None
        chunks_hashed = _hashed(hasher, chunks, self._fd, self._progress.hashed_upto)
        try:
            with _disk(self._part):
                await self._f.writelines(chunks_hashed)  # the generator runs in the thread
        except BaseException:
            # the hasher may now cover bytes that never reached the file: never reuse it
            self._progress.hasher = None
            raise
        n = sum(map(len, chunks))
        self._progress.hashed_upto += n
        self._progress.saved_this_attempt += n

    async def drain(self) -> None:
        """Wait for the buffer in flight; its disk error, if any, is raised here."""
        pending, self._pending = self._pending, None
        if pending is not None:
            await pending

    async def settle(self) -> None:
        """On the way out, whatever happened: let the thread finish before the file closes."""
        pending, self._pending = self._pending, None
        if pending is not None and not pending.done():
            await asyncio.wait([pending])
        if pending is not None and not pending.cancelled():
            pending.exception()  # consumed: the error that matters is already propagating


def _disk_error(exc: OSError, path: Path) -> DownloadError:
    if exc.errno in _DISK_ERRNOS:
        return DiskFull(
            f"cannot write {path}: {exc.strerror or exc}. Free some space or make the output "
            "folder writable, then run again: finished files are kept and partial downloads "
            "resume."
        )
    return DownloadError(f"cannot write {path}: {exc}")


@contextlib.contextmanager
def _disk(path: Path) -> Iterator[None]:
    """Translate OSError from file operations (never from the network) at this boundary."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, aiohttp.ClientError):
            raise
        raise _disk_error(exc, path) from exc


def _nofollow_opener(path: str, flags: int) -> int:
    flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(path, flags, 0o644)
    except FileNotFoundError:
        # The folder is made once per Downloader; if it vanished since, make it again.
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return os.open(path, flags, 0o644)


_PART_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)


def _write_all(fd: int, chunks: list[bytes]) -> None:
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]


def _sidecar_json(meta: _Meta) -> str:
    return json.dumps(
        {
            "version": SIDECAR_VERSION,
            "url": meta.url,
            "etag": meta.etag,
            "last_modified": meta.last_modified,
            "total": meta.total,
        }
    )


def _write_small(
    part: Path, dest: Path, side: Path, chunks: list[bytes], size: int, drop_sidecar: bool
) -> str:
    """A whole small body to its final name in one worker-thread call; returns its sha256.

    Any stale sidecar goes first (it must never describe the bytes written next), then the
    .part is truncated, written, checked for length, fsynced and closed, and only then renamed
    over `dest`. The caller fsyncs the folder (one fsync for many files, see `_folder_synced`).
    On a failure before the rename the .part is removed: without a sidecar it could not be
    resumed anyway."""
    if drop_sidecar:
        with _disk(side), contextlib.suppress(FileNotFoundError):
            os.unlink(side)
    hasher = hashlib.sha256()
    with _disk(part):
        fd = _nofollow_opener(str(part), _PART_FLAGS)
        try:
            try:
                _write_all(fd, chunks)
                _hash_chunks(hasher, chunks)
                on_disk = os.fstat(fd).st_size
                if on_disk != size:
                    raise _Misfit(on_disk)
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(part)
            raise
    with _disk(dest):
        os.replace(part, dest)
    return hasher.hexdigest()


def _save_prefix(part: Path, side: Path, meta: _Meta, chunks: list[bytes]) -> hashlib._Hash:
    """What a broken-off small body delivered, kept for a resume as the streaming path keeps
    it: truncate the .part, record the validator, then write. Returns the hash of the bytes."""
    hasher = hashlib.sha256()
    with _disk(part):
        fd = _nofollow_opener(str(part), _PART_FLAGS)
    try:
        with _disk(side):
            side.write_text(_sidecar_json(meta), encoding="utf-8")
        with _disk(part):
            _write_all(fd, chunks)
        _hash_chunks(hasher, chunks)
    finally:
        with _disk(part):
            os.close(fd)
    return hasher


def _hash_chunks(hasher: hashlib._Hash, chunks: list[bytes]) -> None:
    for chunk in chunks:
        hasher.update(chunk)  # releases the GIL for large chunks


def _hashed(hasher: hashlib._Hash, chunks: list[bytes], fd: int, start: int) -> Iterator[bytes]:
    """Each chunk, hashed as it is handed out to a writer running in a worker thread. Once the
    writer has taken the last one, the kernel is asked to start writing the new bytes back
    (from `start` on), so the final fsync finds little left to wait for."""
    for chunk in chunks:
        yield chunk
        hasher.update(chunk)  # the writer has just read it: it is in this core's cache
    if _sync_file_range is not None:
        _sync_file_range(fd, start, 0, _SYNC_FILE_RANGE_WRITE)  # a hint: fsync checks errors


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux's sync_file_range(2) (asynchronous writeback of a range), or None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_SYNC_FILE_RANGE_WRITE = 2
_sync_file_range = _load_sync_file_range()


def _hash_prefix(path: Path, length: int) -> hashlib._Hash | None:
    """sha256 of the first `length` bytes, or None if the file is shorter."""
    h = hashlib.sha256()
    left = length
    with open(path, "rb") as f:
        while left:
            block = f.read(min(HASH_BLOCK, left))
            if not block:
                return None
            h.update(block)
            left -= len(block)
    return h


def _file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _promote(part: Path, dest: Path, side: Path, size: int) -> int:
    """Rename a complete, fsynced .part to its final name; returns the size found on disk
    (the rename happens only if it equals `size`)."""
    on_disk = os.stat(part).st_size
    if on_disk != size:
        return on_disk
    os.replace(part, dest)
    fsync_folder(dest.parent)
    with contextlib.suppress(OSError):
        os.unlink(side)
    return on_disk


class _Misfit(Exception):
    """The .part holds another number of bytes than were written (args[0]: what it holds)."""


async def _promoted(
    url: str,
    part: Path,
    dest: Path,
    side: Path,
    size: int,
    sha256: str,
    etag: str | None,
    progress: _Progress,
) -> DownloadResult:
    """Rename a finished .part into place (both download paths end here) and check that the
    bytes on disk are the ones counted."""
    with _disk(dest):
        on_disk = await asyncio.to_thread(_promote, part, dest, side, size)
    if on_disk != size:
        raise DownloadTransient(
            f"{describe_url(url)}: {part} holds {on_disk} bytes, expected {size}"
        )
    return DownloadResult(
        path=dest, bytes=size, sha256=sha256, etag=etag, fetched_bytes=progress.fetched
    )
