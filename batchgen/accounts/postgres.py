"""The account database for several machines: a PostgreSQL server (`--account-db
postgresql://...`), with psycopg 3 (`pip install 'batchgen[postgres]'`).

Two things differ from SQLite, both for machines that do not share a clock or a lock: time
is the server's (`clock_timestamp()`, read once the transaction holds its lock), so
machines with skewed clocks judge every window alike; and each transaction takes an advisory
lock per account (`pg_advisory_xact_lock`), so admissions of one account are serialised while
other accounts go on."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from batchgen.accounts import window
from batchgen.accounts.db import AccountDbError
from batchgen.accounts.sqlbase import SqlAccountDb

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    account TEXT PRIMARY KEY, label TEXT NOT NULL,
    paused_until DOUBLE PRECISION NOT NULL DEFAULT 0, pause_why TEXT,
    stopped_at DOUBLE PRECISION, stopped_why TEXT, learned_cap INTEGER,
    learned_at DOUBLE PRECISION);
CREATE TABLE IF NOT EXISTS runs (
    run TEXT PRIMARY KEY, account TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL,
    state_path TEXT NOT NULL, started DOUBLE PRECISION NOT NULL,
    heartbeat DOUBLE PRECISION NOT NULL, ended DOUBLE PRECISION,
    rate_limit INTEGER NOT NULL, window_s DOUBLE PRECISION NOT NULL,
    max_in_flight INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS requests (account TEXT NOT NULL, t DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS requests_at ON requests (account, t);
CREATE TABLE IF NOT EXISTS slots (
    id BIGSERIAL PRIMARY KEY, account TEXT NOT NULL, run TEXT NOT NULL, task_id TEXT,
    model TEXT, reserved_at DOUBLE PRECISION NOT NULL, created DOUBLE PRECISION, poller TEXT);
CREATE INDEX IF NOT EXISTS slots_of ON slots (account, task_id);
"""
SCHEMA += window.SCHEMA.format(real="DOUBLE PRECISION")


SCHEMA_LOCK = 0x62617463  # one advisory lock id while the tables are created


class _Conn:
    """psycopg's connection with SQLite's `?` placeholders (the shared SQL is written so)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> Any:
        return self._conn.execute(sql.replace("?", "%s"), params)


class PostgresAccountDb(SqlAccountDb):
    """`AccountDb` on PostgreSQL. One connection, used by one thread (AsyncAccountDb)."""

    def __init__(
        self,
        url: str,
        *,
        clock_offset_s: float = 0.0,
        stale_s: float = 120.0,
        hold_s: float = 600.0,
        host: str | None = None,
    ) -> None:
        try:
            import psycopg
        except ImportError:
            raise AccountDbError(
                "--account-db postgresql://... needs psycopg: pip install 'batchgen[postgres]'"
            ) from None
        self._errors: tuple[type[BaseException], ...] = (psycopg.Error, OSError)
        self.clock_offset_s = clock_offset_s  # unused for time: the server's clock rules
        self.stale_s = stale_s
        self.hold_s = hold_s
        self.host = host or socket.gethostname()
        self._where = _shown(url)
        try:
            self._pg = psycopg.connect(url, autocommit=True, connect_timeout=10)
            with self._pg.transaction():
                self._pg.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                for statement in filter(str.strip, SCHEMA.split(";")):
                    self._pg.execute(statement)
        except self._errors as exc:
            raise AccountDbError(f"cannot open the account database {self._where}: {exc}") from exc

    def __repr__(self) -> str:
        return f"<PostgresAccountDb {self._where}>"

    @contextmanager
    def _tx(self, account: str | None = None) -> Iterator[_Conn]:
        """One transaction holding the account's advisory lock; its time is the server's,
        read after the lock is held (not now(), the transaction's start, which may be long
        before the lock was granted)."""
        try:
            with self._pg.transaction():
                if account is not None:
                    self._pg.execute(
                        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (account,)
                    )
                row = self._pg.execute(
                    "SELECT extract(epoch FROM clock_timestamp())::double precision"
                ).fetchone()
                self._t = float(row[0])
                yield _Conn(self._pg)
        except self._errors as exc:
            raise AccountDbError(f"account database {self._where}: {exc}") from exc

    def close(self) -> None:
        with suppress(*self._errors):
            self._pg.close()


def _shown(url: str) -> str:
    """The URL without its password."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://…@{rest.rsplit('@', 1)[1]}"
