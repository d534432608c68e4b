"""The SQLite connection details of the state file: opening it for reading without leaving
-wal files behind, one write transaction, and SQLite's failures as batchgen's errors (a full
disk is its own error: the run stops cleanly and a later run continues)."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batchgen.errors import StateDiskFull, StateError

__all__ = ["Conn", "Tx", "open_for_reading", "write_error"]


def state_file(path: str | Path) -> Path:
    """The state file a user means: `batchgen status output/demo` names the run's folder, whose
    batchgen.db the run printed. Resolved before a lock is taken, so both lock one file."""
    path = Path(path)
    if path.is_dir():
        inside = path / "batchgen.db"
        if not inside.is_file():
            raise StateError(f"{path} is a folder with no state file (batchgen.db) in it")
        return inside
    return path


def open_for_reading(path: Path) -> sqlite3.Connection:
    """A connection that cannot change the file (query_only), opened read-write when the file
    allows it: SQLite then removes the -wal and -shm files when the last connection closes,
    where a mode=ro connection (status, report, gallery after a run) would leave them behind.
    A file the user may not write is opened mode=ro."""
    resolved = path.resolve()
    where = f"file:{urllib.parse.quote(str(resolved))}"  # a '?' or '#' in a folder name
    if os.access(resolved, os.W_OK) and os.access(resolved.parent, os.W_OK):
        db = sqlite3.connect(f"{where}?mode=rw", uri=True, isolation_level=None)
        db.execute("PRAGMA query_only=ON")
        return db
    return sqlite3.connect(f"{where}?mode=ro", uri=True, isolation_level=None)


def write_error(exc: sqlite3.Error | OSError) -> StateError:
    text = str(exc)
    full = getattr(exc, "sqlite_errorcode", None) == 13 or (  # SQLITE_FULL
        isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    )
    if full or "full" in text.lower():
        return StateDiskFull(
            f"the disk under the state file is full ({text}); free space and "
            "run again: nothing recorded so far is lost"
        )
    return StateError(f"cannot write the state file: {text}")


class Tx:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error; translates SQLite failures."""

    __slots__ = ("db",)

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise write_error(exc) from exc
        return self.db

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            try:
                self.db.execute("COMMIT")
            except sqlite3.OperationalError as err:
                self.db.execute("ROLLBACK")
                raise write_error(err) from err
        else:
            # the failed statement may already have ended the transaction
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise write_error(exc) from exc


class Conn:
    """The one connection and wall clock the Store's parts share, and the one way they write
    together: `transaction()` (BEGIN IMMEDIATE ... COMMIT). Parts hold this, never the Store,
    so no part imports the Store that composes it."""

    __slots__ = ("_tables", "db", "now")

    def __init__(self, db: sqlite3.Connection, now: Callable[[], float]) -> None:
        self.db = db
        self.now = now  # the wall clock of every time recorded; injected by tests
        self._tables: set[str] = set()  # tables known to exist (has_table)

    def transaction(self) -> Tx:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT)."""
        return Tx(self.db)

    def has_table(self, name: str) -> bool:
        """Whether the file has this table (an older file opened read-only may not). A table,
        once there, stays: remembered, so the per-job callers pay one lookup per run."""
        if name in self._tables:
            return True
        query = "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?"
        if self.db.execute(query, (name,)).fetchone() is None:
            return False
        self._tables.add(name)
        return True
