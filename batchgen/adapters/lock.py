"""One run per state file, enforced by an OS lock the kernel drops when the holder dies.

flock on `<state>.lock` rather than a pid file: a SIGKILLed holder can never leave the lock
stuck. The holder's pid is written inside only to name it in the message of the loser.

Re-entrant within one process: `batchgen run` takes the lock before it validates the manifest
and writes jobs into the state file, and `runner.execute` takes it again around the engine. A
second flock on a new descriptor of the same file would conflict with our own first one (flock
locks belong to open file descriptions), so nested holders share the first descriptor.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from batchgen.errors import StateError, StateLocked

# lock path -> [fd, depth], for the locks this process holds
_HELD: dict[str, list[int]] = {}


class StateLock:
    def __init__(self, state_path: Path | str) -> None:
        self.path = Path(str(state_path) + ".lock")
        self._key = os.path.abspath(self.path)
        self._entered = False

    def __repr__(self) -> str:
        held = _HELD.get(self._key)
        return f"<StateLock {self.path} held={bool(held)} depth={held[1] if held else 0}>"

    def __enter__(self) -> StateLock:
        held = _HELD.get(self._key)
        if held is not None:
            held[1] += 1
            self._entered = True
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StateError(f"cannot create the lock file {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise StateLocked(
                f"{who} is already running on this state file ({self.path.name}); "
                "wait for it to finish or stop it first (kill -TERM stops it cleanly)"
            ) from None
        except OSError as exc:  # e.g. a file system without flock
            os.close(fd)
            raise StateError(f"cannot lock {self.path}: {exc.strerror}") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _HELD[self._key] = [fd, 1]
        self._entered = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._entered:
            return
        self._entered = False
        held = _HELD.get(self._key)
        if held is None:
            return
        held[1] -= 1
        if held[1] == 0:
            del _HELD[self._key]
            os.close(held[0])  # closing releases the flock


def holder_of(state_path: Path | str) -> int | None:
    """The pid of the process running on this state file, or None when nobody holds it.

    Probes with a shared non-blocking flock that is dropped at once; never waits."""
    path = Path(str(state_path) + ".lock")
    if os.path.abspath(path) in _HELD:
        return os.getpid()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    listed = _holder_from_proc_locks(fd)
    if listed is not None:
        os.close(fd)
        return listed or None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = _read_holder(fd)
            return int(text) if text else -1
        except OSError:
            return None
        return None
    finally:
        os.close(fd)  # also drops the probe's shared lock


def _holder_from_proc_locks(fd: int) -> int | None:
    """Linux: read the lock table instead of probing, so `status` can never make a run that
    starts in the same instant fail with exit 4. Returns the holder's pid, 0 for "nobody",
    or None where /proc/locks cannot tell (then the caller probes)."""
    try:
        info = os.fstat(fd)
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            table = f.read()
    except OSError:
        return None
    wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"
        if (
            len(fields) >= 6
            and fields[1] == "FLOCK"  # a blocked waiter's line has "->" there instead
            and fields[5] == wanted
            and fields[4].isdigit()
        ):
            return int(fields[4])
    return 0


def _read_holder(fd: int) -> str | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return text if text.isdigit() else None
