"""The local sink's file work, blocking and mostly run in worker threads: the `.part` and its
sidecar (`.part.json`) opened without following links, a small body written whole, the
threaded writer's hashing and writeback hint, the final rename, and OSError translated into
batchgen.errors at this boundary. local.py drives these from the event loop."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp

from batchgen.adapters.durability import fsync_folder
from batchgen.adapters.sinks.base import Version
from batchgen.errors import DiskFull, DownloadError

HASH_BLOCK = 1024 * 1024
SIDECAR_VERSION = 1
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def sidecar_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part.json")


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


# ---- the sidecar ------------------------------------------------------------------------------


def _sidecar_json(meta: Version) -> str:
    return json.dumps(
        {
            "version": SIDECAR_VERSION,
            "url": meta.url,
            "etag": meta.etag,
            "last_modified": meta.last_modified,
            "total": meta.total,
        }
    )


def load_sidecar(url: str, side: Path) -> tuple[Version | None, bool]:
    """The sidecar's record if it is usable for `url`, and whether a sidecar file may be
    there at all (False only when it is certainly absent)."""
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
        if data.get("version") != SIDECAR_VERSION or data.get("url") != url:
            return None, True
        total = data.get("total")
        meta = Version(
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


# ---- whole small bodies and kept prefixes (one worker-thread call each) ----------------------


def _write_small(
    part: Path, dest: Path, side: Path, chunks: list[bytes], size: int, drop_sidecar: bool
) -> str:
    """A whole small body to its final name in one worker-thread call; returns its sha256.

    Any stale sidecar goes first (it must never describe the bytes written next), then the
    .part is truncated, written, checked for length, fsynced and closed, and only then renamed
    over `dest`. The caller fsyncs the folder (one fsync for many files: LocalSinks'
    group sync). On a failure before the rename the .part is removed: without a sidecar it
    could not be resumed anyway."""
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


def _save_prefix(part: Path, side: Path, meta: Version, chunks: list[bytes]) -> hashlib._Hash:
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


class _Misfit(Exception):
    """The .part holds another number of bytes than were written (args[0]: what it holds)."""


# ---- hashing as the threaded writer writes -----------------------------------------------------


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
