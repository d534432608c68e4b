"""The state file: SQLite, the only memory batchgen has between runs.

One short transaction per job transition, so a SIGKILL at any instant leaves every job in a
state that says exactly what is known: `submitting` means "a POST may be on the wire" and turns
into `ambiguous` on the next start; a task id is committed the moment it is read.

PRAGMAs, and why:
- journal_mode=WAL: readers (`batchgen status` while a run goes on) never block the writer, and
  a commit is one append to the WAL instead of a rewrite of the database pages.
- synchronous=NORMAL: a commit is a write() to the WAL, safe against a killed process at once.
  The two commits that guard money, the intent before a POST and the task id after it, must
  also survive a power cut (the "never pay twice" promise): the engine awaits `synced()` after
  them, which fsyncs the WAL in a worker thread, one fsync for every commit made before it
  started (group commit, see durability.py). That is what synchronous=FULL would do, without
  blocking the event loop for a millisecond per commit. Every other transition reaches the disk
  with the next fsync (the WAL is one file, synced in order); losing one to a power cut only
  repeats a poll or a download.
- foreign_keys=ON: a file row can never point at a job that does not exist.
- busy_timeout=5000: a reader holding a snapshot at the moment of a checkpoint makes the writer
  wait a little instead of failing.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from batchgen.adapters.durability import GroupSync, fsync_path
from batchgen.errors import StateError
from batchgen.states import STATES, UNSUCCESSFUL, JobState
from batchgen.store import migrations
from batchgen.store.images import ImageRecords
from batchgen.store.jobaccounts import JobAccounts, add_account_columns
from batchgen.store.jobmeta import JobMeta, add_meta_column
from batchgen.store.jobs import Jobs, Runs
from batchgen.store.ledger import Ledger
from batchgen.store.links import JobLinks, add_parent_column
from batchgen.store.moves import JobMoves
from batchgen.store.rows import (
    POLL_ERRORS,
    FileRow,
    JobRow,
    SyncResult,
    body_sha,
    retry_keeps_task,
)
from batchgen.store.schema import SCHEMA, SCHEMA_VERSION
from batchgen.store.sqlite import Conn, Tx, open_for_reading, state_file, write_error

__all__ = [
    "POLL_ERRORS",
    "SCHEMA_VERSION",
    "STATES",
    "UNSUCCESSFUL",
    "FileRow",
    "JobRow",
    "Store",
    "SyncResult",
    "body_sha",
    "retry_keeps_task",
    "state_file",
]

# Job states and their moves live in batchgen/states.py; these names are kept for callers.
PENDING = JobState.PENDING
SUBMITTING = JobState.SUBMITTING
IN_FLIGHT = JobState.IN_FLIGHT
SUCCEEDED = JobState.SUCCEEDED
DONE = JobState.DONE
FAILED = JobState.FAILED
AMBIGUOUS = JobState.AMBIGUOUS
EXPIRED = JobState.EXPIRED
CANCELLED = JobState.CANCELLED
ORPHANED = JobState.ORPHANED


class Store:
    """The state file: its connection, schema, transactions and file meta, and its parts by
    question, all on one connection with one transaction discipline (`Conn`): `jobs` (add and
    read), `moves` (every state change), `job_meta`, `links` (each job's parent, `extends`),
    `accounts` (which account made each task), `ledger` (money), `runs`, `images` (input
    images). Not thread-safe: one event loop owns it."""

    def __init__(
        self, path: str | Path, *, readonly: bool = False, wall: Callable[[], float] = time.time
    ) -> None:
        self.path = state_file(path)
        self._now = wall  # the wall clock of every time recorded; injected by tests
        self._wal = False
        self._group_sync = GroupSync(self._fsync_log)
        try:
            if readonly:
                if not self.path.exists():
                    raise StateError(f"{self.path}: no such state file")
                self.db = open_for_reading(self.path)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(self.path, isolation_level=None)
            self.db.execute("PRAGMA busy_timeout=5000")
            if not readonly:
                mode = self.db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                self._wal = str(mode).lower() == "wal"
                self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._compose()
            self._migrate(readonly)
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{self.path}: not a usable batchgen state file ({exc})") from exc
        except OSError as exc:
            raise StateError(f"{self.path}: cannot open the state file ({exc})") from exc

    def _compose(self) -> None:
        """The parts, each on the one connection and clock (`Conn`)."""
        conn = Conn(self.db, self._now)
        self._conn = conn
        self.jobs = Jobs(conn)
        self.moves = JobMoves(conn)
        self.job_meta = JobMeta(conn)
        self.links = JobLinks(conn)
        self.accounts = JobAccounts(conn)
        self.ledger = Ledger(conn)
        self.runs = Runs(conn)
        self._images: ImageRecords | None = None

    @property
    def images(self) -> ImageRecords:
        """The input images' records; their tables are made on first use (CREATE IF NOT
        EXISTS), which a read-only open cannot do, hence only when asked for."""
        if self._images is None:
            self._images = ImageRecords(self.db)
        return self._images

    def now(self) -> float:
        """The wall-clock seconds this state file records (time.time unless injected)."""
        return self._now()

    # -- schema -----------------------------------------------------------------------------

    def _migrate(self, readonly: bool) -> None:
        query = "SELECT name FROM sqlite_master WHERE type='table'"
        tables = {r[0] for r in self.db.execute(query)}
        if "meta" in tables:
            version = self.get_meta("schema_version")
            if version is None or not version.isdigit():
                raise StateError(f"{self.path}: not a batchgen state file")
            if int(version) > SCHEMA_VERSION:
                raise StateError(
                    f"{self.path}: written by a newer batchgen (state schema {version}); upgrade"
                )
            if int(version) < 2 and not readonly:
                with self.transaction() as db:
                    migrations.one_to_two(db)
            if int(version) < 3 and not readonly:
                with self.transaction() as db:
                    migrations.two_to_three(db)
            if int(version) < SCHEMA_VERSION and not readonly:
                with self.transaction() as db:  # 3 -> 4 -> 5 -> 6: columns each
                    add_meta_column(db)
                    add_account_columns(db)
                    add_parent_column(db)
                    self.set_meta("schema_version", str(SCHEMA_VERSION))
            return
        if tables:
            raise StateError(f"{self.path}: an SQLite file, but not a batchgen state file")
        if readonly:
            raise StateError(f"{self.path}: empty state file")
        with self.transaction():
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self.db.execute(statement)
            self.set_meta("schema_version", str(SCHEMA_VERSION))

    def transaction(self) -> Tx:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT): the parts' own, too."""
        return self._conn.transaction()

    async def synced(self) -> None:
        """Return once every commit made before this call is on disk (survives a power cut)."""
        try:
            await self._group_sync.sync()
        except OSError as exc:
            raise write_error(exc) from exc

    @property
    def fsyncs(self) -> int:
        return self._group_sync.flushes

    def _fsync_log(self) -> None:
        """Runs in a worker thread and touches no connection: fsync of the WAL (where commits
        land in WAL mode) or of the database file itself when SQLite could not use WAL."""
        fsync_path(f"{self.path}-wal" if self._wal else self.path)

    def close(self) -> None:
        self.db.close()

    def integrity_ok(self) -> bool:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # -- meta -------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
            (key, value),
        )

    def set_meta_many(self, values: dict[str, str]) -> None:
        with self.transaction():
            for key, value in values.items():
                self.set_meta(key, value)
