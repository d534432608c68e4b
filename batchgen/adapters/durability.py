"""Group fsync: many coroutines need "my write is on disk", one fsync in a worker thread
answers all of them.

An fsync takes about a millisecond here and blocks whichever thread calls it. Done on the
event loop, every durable commit and every finished file stalls every job; done once per
caller in a thread, it costs a thread hand-off each. `GroupSync` runs at most one fsync at a
time off the loop: a caller arriving while one runs waits for the next, which starts when the
running one ends and covers every write made before it started. That is the classic group
commit: the number of fsyncs falls as load rises, and each caller still waits for an fsync that
began after its own write.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Callable


class GroupSync:
    """`await sync()` returns once an fsync that started after the call has completed."""

    def __init__(self, flush: Callable[[], None]) -> None:
        self._flush = flush
        self._running: asyncio.Future[None] | None = None
        self._next: asyncio.Future[None] | None = None
        self.flushes = 0  # how many fsyncs ran (for benchmarks and tests)

    async def sync(self) -> None:
        if self._running is None:
            waiter = self._start()
        else:
            if self._next is None:
                self._next = asyncio.get_running_loop().create_future()
            waiter = self._next
        # shield: a cancelled caller must not cancel the fsync others are waiting for
        await asyncio.shield(waiter)

    def _start(self, waiter: asyncio.Future[None] | None = None) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        waiter = waiter if waiter is not None else loop.create_future()
        self._running = waiter
        self.flushes += 1
        work = loop.run_in_executor(None, self._flush)
        work.add_done_callback(lambda done: self._finished(waiter, done))
        return waiter

    def _finished(self, waiter: asyncio.Future[None], done: asyncio.Future[None]) -> None:
        self._running = None
        if done.cancelled():  # the executor shut down under us
            waiter.set_exception(OSError("the fsync did not run"))
        elif (exc := done.exception()) is not None:
            waiter.set_exception(exc)
        else:
            waiter.set_result(None)
        nxt, self._next = self._next, None
        if nxt is not None:
            self._start(nxt)


def fsync_path(path: str | os.PathLike[str]) -> None:
    """fsync a file by name (opened read-only: enough for fsync on Linux)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(path: str | os.PathLike[str]) -> None:
    """fsync a folder, so the renames in it survive a power cut. Where the file system cannot
    (no such folder any more, or fsync of a folder unsupported: EINVAL, ENOTSUP on some network
    and FUSE file systems) there is nothing more to make durable, so that is not an error."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)
