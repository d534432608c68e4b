"""The account database on one machine: an SQLite file (WAL) that every batchgen process of
the user opens. Each admission is one BEGIN IMMEDIATE transaction, so two processes never both
take the last slot. Time is this machine's wall clock (injected for tests)."""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from batchgen.accounts import window
from batchgen.accounts.db import AccountDbError
from batchgen.accounts.sqlbase import SqlAccountDb

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    account TEXT PRIMARY KEY, label TEXT NOT NULL,
    paused_until REAL NOT NULL DEFAULT 0, pause_why TEXT,
    stopped_at REAL, stopped_why TEXT, learned_cap INTEGER, learned_at REAL);
CREATE TABLE IF NOT EXISTS runs (
    run TEXT PRIMARY KEY, account TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL,
    state_path TEXT NOT NULL, started REAL NOT NULL, heartbeat REAL NOT NULL, ended REAL,
    rate_limit INTEGER NOT NULL, window_s REAL NOT NULL, max_in_flight INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS requests (account TEXT NOT NULL, t REAL NOT NULL);
CREATE INDEX IF NOT EXISTS requests_at ON requests (account, t);
CREATE TABLE IF NOT EXISTS slots (
    id INTEGER PRIMARY KEY, account TEXT NOT NULL, run TEXT NOT NULL, task_id TEXT,
    model TEXT, reserved_at REAL NOT NULL, created REAL, poller TEXT);
CREATE INDEX IF NOT EXISTS slots_of ON slots (account, task_id);
"""
SCHEMA += window.SCHEMA.format(real="REAL")



class SqliteAccountDb(SqlAccountDb):
    """`AccountDb` on an SQLite file. Not thread-safe: one thread uses it (AsyncAccountDb)."""

    def __init__(
        self,
        path: str | Path,
        *,
        now: Callable[[], float] = time.time,
        stale_s: float = 120.0,
        hold_s: float = 600.0,
        host: str | None = None,
    ) -> None:
        self.path = Path(path)
        self._clock = now
        self.stale_s = stale_s
        self.hold_s = hold_s
        self.host = host or socket.gethostname()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise AccountDbError(f"cannot open the account database {self.path}: {exc}") from exc
        with suppress(OSError):  # other users need not read who runs what
            os.chmod(self.path, 0o600)

    def __repr__(self) -> str:
        return f"<SqliteAccountDb {self.path}>"

    @contextmanager
    def _tx(self, account: str | None = None) -> Iterator[sqlite3.Connection]:
        """One BEGIN IMMEDIATE transaction: every admission of the machine waits its turn
        (all accounts at once: SQLite has one writer), then reads the time."""
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise AccountDbError(f"account database {self.path}: {exc}") from exc
        self._t = self._clock()
        try:
            yield db
        except sqlite3.Error as exc:
            db.execute("ROLLBACK")
            raise AccountDbError(f"account database {self.path}: {exc}") from exc
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            try:
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise AccountDbError(f"account database {self.path}: {exc}") from exc

    def close(self) -> None:
        self._db.close()
