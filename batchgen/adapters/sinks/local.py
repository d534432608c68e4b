"""The local disk as a result sink: `<dest>.part` written off the event loop and hashed as it
is written, a sidecar (`<dest>.part.json`) that lets another process resume, and the final
fsync, rename and folder sync. Nothing here speaks HTTP (batchgen/adapters/download/ does);
the blocking file work is in localfs.py."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiofiles

from batchgen.adapters.download.video import file_cut, file_head, part_is_video
from batchgen.adapters.durability import GroupSync, fsync_folder
from batchgen.adapters.sinks.base import DownloadResult, Version, VideoCut
from batchgen.adapters.sinks.localfs import (
    _disk,
    _file_size,
    _hash_prefix,
    _hashed,
    _Misfit,
    _nofollow_opener,
    _promote,
    _save_prefix,
    _sidecar_json,
    _write_small,
    load_sidecar,
    part_path,
    sidecar_path,
    verify_existing,
)
from batchgen.core.urls import describe_url
from batchgen.errors import DownloadTransient

__all__ = ["LocalSink", "LocalSinks"]


class LocalSinks:
    """Results as files on the local disk, the default. One per Downloader: it makes each
    output folder once, and finished small files in one folder share its fsync."""

    def __init__(self) -> None:
        self._folders: set[Path] = set()  # folders made or found
        self._folder_syncs: dict[Path, GroupSync] = {}

    def __repr__(self) -> str:
        return f"<LocalSinks folders={len(self._folders)}>"

    async def open(self, url: str, dest: Path) -> LocalSink:
        folder = dest.parent
        if folder not in self._folders:
            with _disk(folder):
                folder.mkdir(parents=True, exist_ok=True)
            self._folders.add(folder)
        return LocalSink(url, dest, self._folder_synced)

    async def stamp(self, result: DownloadResult) -> int | None:
        with _disk(result.path):
            return os.stat(result.path).st_mtime_ns

    async def intact(
        self, files: list[tuple[Path, int | None, str | None, int | None]]
    ) -> list[bool]:
        """Size and mtime first; a hash only when the mtime moved, so a resume does not
        reread gigabytes. One thread hop for the whole page."""
        return await asyncio.to_thread(lambda: [_file_intact(*f) for f in files])

    async def _folder_synced(self, folder: Path) -> None:
        """fsync of a folder shared by every file renamed into it meanwhile (group commit):
        with many small results finishing at once, one fsync covers them all."""
        group = self._folder_syncs.get(folder)
        if group is None:
            if len(self._folder_syncs) >= 256:  # templates with many folders: stay bounded
                self._folder_syncs.clear()
            group = self._folder_syncs[folder] = GroupSync(functools.partial(fsync_folder, folder))
        await group.sync()


class LocalSink:
    """One result file: its `.part`, its sidecar and the hash of the bytes in the .part.

    A batch is written (through aiofiles) and hashed in one worker-thread call while the event
    loop goes on reading the socket. One batch in flight at most, so memory stays bounded and
    the bytes land in order; `_hashed_upto` moves only once a batch is both written and hashed.
    In that thread each chunk is hashed right after it is written, while the write has just
    pulled it into that core's cache (sha256 of a chunk read cold from another core runs at
    about 60% of the speed), and after each batch the kernel is asked to start writing the new
    bytes back, so the final fsync waits for a few MB instead of the whole file."""

    def __init__(
        self, url: str, dest: Path, folder_synced: Callable[[Path], Awaitable[None]]
    ) -> None:
        self._url = url
        self.dest = dest
        self.part = part_path(dest)
        self.side = sidecar_path(dest)
        self._folder_synced = folder_synced
        # False only when the sidecar is known absent: saves a useless unlink
        self.recorded, self._side_on_disk = load_sidecar(url, self.side)
        self.saved = 0
        self._hasher: hashlib._Hash | None = None  # kept across attempts: a resume reuses it
        self._hashed_upto = 0  # the hasher covers exactly part[0:_hashed_upto]
        self._f: Any = None  # the open .part (aiofiles) between begin and commit or settle
        self._fd = -1
        self._pending: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<LocalSink {self.part.name} hashed={self._hashed_upto} open={self._f is not None}>"

    # ---- what is held ---------------------------------------------------------------------

    async def ready(self) -> DownloadResult | None:
        return None  # a whole file on disk is already published: the audit judges it

    async def held(self) -> int:
        with _disk(self.part):
            size = _file_size(self.part)
        if size > 0 and not await asyncio.to_thread(part_is_video, self.part, size):
            return 0  # something else left a non-video there: start over
        return size

    async def head(self, n: int) -> bytes:
        with _disk(self.part):
            return await asyncio.to_thread(file_head, self.part, n)

    # ---- streaming ------------------------------------------------------------------------

    async def begin(self, version: Version | None, offset: int) -> bool:
        # Order matters for a crash at any point: truncate first, then record the validator
        # of this body, then append. A sidecar never describes bytes from another version.
        if version is None:
            self._drop_sidecar()
        with _disk(self.part):
            if offset == 0:
                self._hasher, self._hashed_upto = hashlib.sha256(), 0
            mode = "ab" if offset > 0 else "wb"
            self._f = await aiofiles.open(self.part, mode, opener=_nofollow_opener)
        self._fd = self._f.fileno()
        if version is not None:
            with _disk(self.side):
                self._write_sidecar(self.side, version)
            self._side_on_disk = True
        if self._hasher is None or self._hashed_upto != offset:
            with _disk(self.part):
                self._hasher = await asyncio.to_thread(_hash_prefix, self.part, offset)
            self._hashed_upto = offset
            if self._hasher is None:
                return False
        return True

    async def put(self, chunks: list[bytes]) -> None:
        await self.drain()
        if chunks:
            self._pending = asyncio.ensure_future(self._write(chunks))

    async def _write(self, chunks: list[bytes]) -> None:
        hasher = self._hasher
        assert hasher is not None and self._f is not None
        chunks_hashed = _hashed(hasher, chunks, self._fd, self._hashed_upto)
        try:
            with _disk(self.part):
                await self._f.writelines(chunks_hashed)  # the generator runs in the thread
        except BaseException:
            # the hasher may now cover bytes that never reached the file: never reuse it
            self._hasher = None
            raise
        n = sum(map(len, chunks))
        self._hashed_upto += n
        self.saved += n

    async def drain(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            await pending

    async def settle(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and not pending.done():
            await asyncio.wait([pending])  # let the thread finish before the file closes
        if pending is not None and not pending.cancelled():
            pending.exception()  # consumed: the error that matters is already propagating
        await self._close()

    async def commit(self, size: int, etag: str | None, fetched: int) -> DownloadResult:
        f, hasher = self._f, self._hasher
        assert f is not None and hasher is not None and self._pending is None
        with _disk(self.part):
            await f.flush()
            await asyncio.to_thread(os.fsync, self._fd)
            cut = await asyncio.to_thread(file_cut, self.part, size)
        if cut is not None:
            raise VideoCut(cut)
        await self._close()
        with _disk(self.dest):
            on_disk = await asyncio.to_thread(_promote, self.part, self.dest, self.side, size)
        if on_disk != size:
            raise DownloadTransient(
                f"{describe_url(self._url)}: {self.part} holds {on_disk} bytes, expected {size}"
            )
        self._side_on_disk = False
        return DownloadResult(
            path=self.dest, bytes=size, sha256=hasher.hexdigest(), etag=etag, fetched_bytes=fetched
        )

    # ---- small bodies: one thread call each ------------------------------------------------

    async def keep(self, version: Version, chunks: list[bytes]) -> None:
        self._hasher = await asyncio.to_thread(_save_prefix, self.part, self.side, version, chunks)
        n = sum(map(len, chunks))
        self._hashed_upto = n
        self.saved += n
        self._side_on_disk = True

    async def finish(
        self, chunks: list[bytes], size: int, etag: str | None, fetched: int
    ) -> DownloadResult:
        part, dest, side = self.part, self.dest, self.side
        try:
            digest = await asyncio.to_thread(
                _write_small, part, dest, side, chunks, size, self._side_on_disk
            )
        except _Misfit as misfit:
            raise DownloadTransient(
                f"{describe_url(self._url)}: {part} holds {misfit.args[0]} bytes, expected {size}"
            ) from None
        self._side_on_disk = False
        with _disk(dest):
            await self._folder_synced(dest.parent)  # the rename survives a power cut
        return DownloadResult(
            path=dest, bytes=size, sha256=digest, etag=etag, fetched_bytes=fetched
        )

    # ---- letting go -----------------------------------------------------------------------

    async def discard(self) -> None:
        await self.settle()
        self._hasher, self._hashed_upto = None, 0
        for p in (self.part, self.side):
            with contextlib.suppress(OSError):
                p.unlink()
        self._side_on_disk = False

    async def _close(self) -> None:
        f, self._f = self._f, None
        if f is not None:
            with _disk(self.part):
                await f.close()

    def _drop_sidecar(self) -> None:
        if self._side_on_disk:
            with contextlib.suppress(OSError):
                self.side.unlink()
            self._side_on_disk = False

    @staticmethod
    def _write_sidecar(side: Path, version: Version) -> None:
        side.write_text(_sidecar_json(version), encoding="utf-8")


def _file_intact(path: Path, size: int | None, sha256: str | None, mtime_ns: int | None) -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return False
    if size is not None and info.st_size != size:
        return False
    if mtime_ns is not None and info.st_mtime_ns == mtime_ns:
        return True
    return sha256 is None or verify_existing(path, sha256, info.st_size)
