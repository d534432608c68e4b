"""One run per state file, enforced by an OS lock the kernel drops when the holder dies.

flock on `<state>.lock` rather than a pid file: a SIGKILLed holder can never leave the lock
stuck. The holder's pid is written inside only to name it in the message of the loser.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from batchgen.errors import StateError, StateLocked


class StateLock:
    def __init__(self, state_path: Path) -> None:
        self.path = Path(str(state_path) + ".lock")
        self._fd: int | None = None

    def __enter__(self) -> StateLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
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
                "wait for it to finish or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None


def _read_holder(fd: int) -> str | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return text if text.isdigit() else None
