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

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from batchgen.adapters.durability import GroupSync, fsync_path
from batchgen.errors import StateError
from batchgen.states import STATES, UNSUCCESSFUL, JobState
from batchgen.store import migrations
from batchgen.store.jobaccounts import add_account_columns
from batchgen.store.jobmeta import JobMeta, add_meta_column
from batchgen.store.links import JobLinks, add_parent_column
from batchgen.store.moves import JobMoves
from batchgen.store.rows import (
    _JOB_COLS,
    POLL_ERRORS,
    FileRow,
    JobRow,
    SyncResult,
    body_sha,
    retry_keeps_task,
)
from batchgen.store.schema import SCHEMA, SCHEMA_VERSION
from batchgen.store.sqlite import Tx, open_for_reading, state_file, write_error

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


class Store(JobMoves, JobMeta, JobLinks):
    """All reads and writes of the state file. Not thread-safe: one event loop owns it."""

    def __init__(
        self, path: str | Path, *, readonly: bool = False, wall: Callable[[], float] = time.time
    ) -> None:
        self.path = state_file(path)
        self._now = wall  # the wall clock of every time recorded; injected by tests
        self._wal = False
        self._group_sync = GroupSync(self._fsync_log)
        self._tables: set[str] = set()  # tables known to exist (has_table)
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
            self._migrate(readonly)
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{self.path}: not a usable batchgen state file ({exc})") from exc
        except OSError as exc:
            raise StateError(f"{self.path}: cannot open the state file ({exc})") from exc

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

    def models(self) -> dict[str, int]:
        """Jobs per model."""
        return dict(self.db.execute("SELECT model, COUNT(*) FROM jobs GROUP BY model"))

    def has_table(self, name: str) -> bool:
        """Whether the file has this table (an older file opened read-only may not). A table,
        once there, stays: remembered, so the per-job callers pay one lookup per run."""
        known = self._tables
        if name in known:
            return True
        query = "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?"
        if self.db.execute(query, (name,)).fetchone() is None:
            return False
        known.add(name)
        return True

    def transaction(self) -> Tx:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT)."""
        return Tx(self.db)

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

    # -- loading a manifest -----------------------------------------------------------------

    def sync_jobs(
        self, jobs: Iterable[tuple[str, str, dict[str, Any]]], *, resubmit_changed: bool = False
    ) -> SyncResult:
        """Add (id, model, body) jobs idempotently: new ids are appended, known ids are left alone.

        A known id whose body changed is reported, and replaced only with `resubmit_changed`
        (which means paying for it again if it already ran)."""
        added = unchanged = 0
        changed: list[str] = []
        resubmitted: list[str] = []
        now = self._now()
        with self.transaction():
            next_seq = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM jobs").fetchone()[0]
            for job_id, model, body in jobs:
                sha = body_sha(body)
                row = self.db.execute(
                    "SELECT seq, body_sha, state, model FROM jobs WHERE id=?", (job_id,)
                ).fetchone()
                text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
                inp = body.get("input") if isinstance(body.get("input"), dict) else {}
                if row is None:
                    next_seq += 1
                    self.db.execute(
                        "INSERT INTO jobs (seq, id, model, body, body_sha, mode, duration, state,"
                        " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            next_seq,
                            job_id,
                            model,
                            text,
                            sha,
                            inp.get("mode"),
                            inp.get("duration"),
                            PENDING,
                            now,
                        ),
                    )
                    added += 1
                elif row[1] == sha and row[3] == model:
                    unchanged += 1
                elif resubmit_changed and row[2] not in (SUBMITTING,):
                    mode, duration = inp.get("mode"), inp.get("duration")
                    self.db.execute("DELETE FROM files WHERE job_seq=?", (row[0],))
                    self.db.execute(
                        "UPDATE jobs SET model=?, body=?, body_sha=?, mode=?, duration=?,"
                        " state=?, task_id=NULL, submitted_at=NULL, completed_at=NULL,"
                        " create_time_ms=NULL, complete_time_ms=NULL, cost_time_ms=NULL,"
                        " fail_code=NULL, fail_msg=NULL, expires_at=NULL, changed_body=NULL,"
                        " note=NULL, updated_at=? WHERE seq=?",
                        (model, text, sha, mode, duration, PENDING, now, row[0]),
                    )
                    resubmitted.append(job_id)
                else:
                    self.db.execute("UPDATE jobs SET changed_body=? WHERE seq=?", (text, row[0]))
                    changed.append(job_id)
        return SyncResult(added, unchanged, changed, resubmitted)

    # -- recovery ---------------------------------------------------------------------------

    def recover_interrupted(self) -> int:
        """A `submitting` job after a restart may or may not have created a task: ambiguous."""
        with self.transaction():
            cur = self.db.execute(
                "UPDATE jobs SET state=?, note=?, updated_at=? WHERE state=?",
                (
                    AMBIGUOUS,
                    "the run stopped while its submit was on the wire",
                    self._now(),
                    SUBMITTING,
                ),
            )
        return cur.rowcount

    def requeue_ambiguous(self) -> int:
        """--resubmit-ambiguous: the user accepts that these may be paid twice."""
        with self.transaction():
            cur = self.db.execute(
                "UPDATE jobs SET state=?, note=NULL, updated_at=? WHERE state=?",
                (PENDING, self._now(), AMBIGUOUS),
            )
        return cur.rowcount

    # -- queries ----------------------------------------------------------------------------

    def pending_after(self, seq: int, limit: int) -> list[JobRow]:
        rows = self.db.execute(
            f"SELECT {_JOB_COLS} FROM jobs WHERE state=? AND seq>? ORDER BY seq LIMIT ?",
            (PENDING, seq, limit),
        ).fetchall()
        return [JobRow(*r) for r in rows]

    def jobs_in_state(self, state: str) -> Iterator[JobRow]:
        cur = self.db.execute(f"SELECT {_JOB_COLS} FROM jobs WHERE state=? ORDER BY seq", (state,))
        for row in cur:
            yield JobRow(*row)

    def known_task(self) -> JobRow | None:
        """A job whose task the provider has certainly made (in flight first, else the latest
        finished): asking its status is a safe way to hear from the API
        (batchgen/engine/gate.py)."""
        row = self.db.execute(
            f"SELECT {_JOB_COLS} FROM jobs WHERE task_id IS NOT NULL AND state IN (?, ?, ?)"
            " ORDER BY state = ? DESC, updated_at DESC LIMIT 1",
            (IN_FLIGHT, SUCCEEDED, DONE, IN_FLIGHT),
        ).fetchone()
        return JobRow(*row) if row else None

    def job(self, job_id: str) -> JobRow | None:
        row = self.db.execute(f"SELECT {_JOB_COLS} FROM jobs WHERE id=?", (job_id,)).fetchone()
        return JobRow(*row) if row else None

    def job_by_seq(self, seq: int) -> JobRow | None:
        row = self.db.execute(f"SELECT {_JOB_COLS} FROM jobs WHERE seq=?", (seq,)).fetchone()
        return JobRow(*row) if row else None

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for state, n in self.db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
            out[state] = n
        return out

    def files_of(self, seq: int) -> list[FileRow]:
        rows = self.db.execute(
            "SELECT job_seq, idx, url, path, bytes, sha256, mtime_ns, done_at FROM files"
            " WHERE job_seq=? ORDER BY idx",
            (seq,),
        ).fetchall()
        return [FileRow(*r) for r in rows]

    def expires_at(self, seq: int) -> float | None:
        row = self.db.execute("SELECT expires_at FROM jobs WHERE seq=?", (seq,)).fetchone()
        return row[0] if row else None

    # -- runs -------------------------------------------------------------------------------

    def start_run(self, pid: int) -> int:
        with self.transaction():
            cur = self.db.execute(
                "INSERT INTO runs (pid, started_at) VALUES (?, ?)", (pid, self._now())
            )
        return int(cur.lastrowid or 0)

    def end_run(self, run_id: int, exit_code: int, how: str) -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE runs SET ended_at=?, exit_code=?, how=? WHERE id=?",
                (self._now(), exit_code, how, run_id),
            )
