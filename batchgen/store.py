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

import contextlib
import errno
import hashlib
import json
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchgen.durability import GroupSync, fsync_path
from batchgen.errors import IllegalTransition, StateDiskFull, StateError
from batchgen.states import RETRYABLE, STATES, UNSUCCESSFUL, JobState, allowed  # noqa: F401 (re-exported)

SCHEMA_VERSION = 3
"""2: every job's `model` is its own (one batch may mix models); files of version 1 held one
model for the whole batch (meta `model`) and are migrated on open (`_migrate_1_to_2`).
3: the spend ledger (`attempts`) and learned `prices` (`_migrate_2_to_3`)."""

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

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    seq              INTEGER PRIMARY KEY,      -- manifest order
    id               TEXT NOT NULL UNIQUE,
    model            TEXT NOT NULL,
    body             TEXT NOT NULL,            -- the exact JSON body to POST
    body_sha         TEXT NOT NULL,
    mode             TEXT,
    duration         INTEGER,
    state            TEXT NOT NULL,
    task_id          TEXT,
    submit_attempts  INTEGER NOT NULL DEFAULT 0,  -- POSTs that may have reached the provider
    submitted_at     REAL,                     -- Unix seconds
    completed_at     REAL,
    create_time_ms   INTEGER,                  -- as the provider reported them
    complete_time_ms INTEGER,
    cost_time_ms     INTEGER,
    fail_code        TEXT,
    fail_msg         TEXT,
    expires_at       REAL,                     -- Unix seconds: when the result URLs die
    changed_body     TEXT,                     -- a newer manifest body under this id, not applied
    note             TEXT,                     -- why the job is ambiguous/expired, for people
    updated_at       REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, seq);
CREATE INDEX IF NOT EXISTS jobs_by_task ON jobs (task_id);
CREATE TABLE IF NOT EXISTS files (
    job_seq   INTEGER NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
    idx       INTEGER NOT NULL,
    url       TEXT NOT NULL,
    path      TEXT,                            -- relative to the output folder
    bytes     INTEGER,
    sha256    TEXT,
    mtime_ns  INTEGER,
    done_at   REAL,
    PRIMARY KEY (job_seq, idx)
);
CREATE TABLE IF NOT EXISTS attempts (
    job_seq      INTEGER NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
    n            INTEGER NOT NULL,             -- the job's 1st, 2nd... submit that made a task
    price_key    TEXT NOT NULL,                -- model/mode/duration (batchgen/prices.py)
    price_micros INTEGER NOT NULL,             -- reserved with the intent, spent unless refunded
    outcome      TEXT NOT NULL,                -- sent, succeeded, failed, resubmitted
    refunded     INTEGER NOT NULL DEFAULT 0,   -- a refund of it was seen in the balance
    task_id      TEXT,
    fail_code    TEXT,
    fail_msg     TEXT,
    started_at   REAL NOT NULL,
    ended_at     REAL,
    PRIMARY KEY (job_seq, n)
);
CREATE TABLE IF NOT EXISTS prices (
    key          TEXT PRIMARY KEY,             -- model/mode/duration
    micros       INTEGER NOT NULL,             -- learned from the balance around one submit
    learned_at   REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY,
    pid         INTEGER NOT NULL,
    started_at  REAL NOT NULL,
    ended_at    REAL,
    exit_code   INTEGER,
    how         TEXT
);
"""


POLL_ERRORS = "POLL_ERRORS"
"""The fail code earlier versions gave a task whose status stayed unreadable (today such a
task stays in flight): never the provider's word, so `retry` polls such a task again."""


def retry_keeps_task(
    *,
    state: str,
    task_id: str | None,
    fail_code: str | None,
    has_results: bool,
    expires_at: float | None,
    now: float,
) -> bool:
    """`batchgen retry`: poll this job's task again (True) or submit a new one (False)?

    A task that exists is paid for; a new one is paid again. So a job keeps its task id
    unless the task cannot deliver any more:
    - no task id (never created, or the submit's answer was lost), or orphaned (its id
      cannot be sent back, so it cannot be polled): new task;
    - expired, or results past their lifetime: whatever it made is gone, new task;
    - failed after the provider said success (its results are recorded: a download or file
      check failed) or with POLL_ERRORS (the status was unreadable): poll it again;
    - failed otherwise: the provider said so (its failCode, or it does not know the task,
      TASK_NOT_FOUND), or the submit was refused: new task;
    - any other state with a task id (ambiguous, cancelled): poll it again."""
    if task_id is None or state in (EXPIRED, ORPHANED):
        return False
    if expires_at is not None and now >= expires_at:
        return False
    if state == FAILED:
        return has_results or fail_code == POLL_ERRORS
    return True


def body_sha(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class JobRow:
    seq: int
    id: str
    body: str
    state: str
    task_id: str | None
    duration: int | None
    mode: str | None
    submitted_at: float | None
    submit_attempts: int
    model: str = "kling-2-1"  # the model whose endpoints this job is sent to and polled at

    def body_dict(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class FileRow:
    job_seq: int
    idx: int
    url: str
    path: str | None
    bytes: int | None
    sha256: str | None
    mtime_ns: int | None
    done_at: float | None


@dataclass(frozen=True, slots=True)
class SyncResult:
    added: int
    unchanged: int
    changed: list[str]  # ids whose body differs from the state file's and was not applied
    resubmitted: list[str]  # ids whose changed body replaced the old one (--resubmit-changed)


_JOB_COLS = "seq, id, body, state, task_id, duration, mode, submitted_at, submit_attempts, model"


class Store:
    """All reads and writes of the state file. Not thread-safe: one event loop owns it."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self._now = time.time
        self._wal = False
        self._group_sync = GroupSync(self._fsync_log)
        self._tables: set[str] = set()  # tables known to exist (has_table)
        try:
            if readonly:
                if not self.path.exists():
                    raise StateError(f"{self.path}: no such state file")
                self.db = _open_for_reading(self.path)
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
                self._migrate_1_to_2()
            if int(version) < 3 and not readonly:
                self._migrate_2_to_3()
            return
        if tables:
            raise StateError(f"{self.path}: an SQLite file, but not a batchgen state file")
        if readonly:
            raise StateError(f"{self.path}: empty state file")
        with self.transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self.db.execute(statement)
            self.set_meta("schema_version", str(SCHEMA_VERSION))

    def _migrate_1_to_2(self) -> None:
        """Version 1 wrote the batch's one model into every row and into meta `model`: make
        sure each row names it (rows are the truth from now on), then mark the file as 2. A
        read-only open (status, report) reads version 1 rows as they are."""
        with self.transaction():
            batch_model = self.get_meta("model") or "kling-2-1"
            self.db.execute(
                "UPDATE jobs SET model=? WHERE model IS NULL OR model=''", (batch_model,)
            )
            self.set_meta("schema_version", "2")

    def models(self) -> dict[str, int]:
        """Jobs per model."""
        return dict(self.db.execute("SELECT model, COUNT(*) FROM jobs GROUP BY model"))

    def _migrate_2_to_3(self) -> None:
        """The spend ledger and learned prices, in one transaction (all or nothing). Each job
        that may have made a task gets its first attempt, priced from the table: the spend
        cap counts what earlier runs spent. A reader (status, report) leaves an older file as
        it is and reads around what it lacks (`has_table`)."""
        from batchgen.prices import PriceBook, price_key

        book = PriceBook()
        with self.transaction() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            rows = db.execute(
                "SELECT seq, model, mode, duration, state, task_id, fail_code, fail_msg,"
                " COALESCE(submitted_at, updated_at), completed_at FROM jobs"
                " WHERE task_id IS NOT NULL OR state IN (?, ?, ?)",
                (AMBIGUOUS, ORPHANED, SUBMITTING),
            ).fetchall()
            for seq, model, mode, duration, state, task_id, code, msg, start, end in rows:
                key = price_key(model, mode, duration)
                outcome = {DONE: "succeeded", SUCCEEDED: "succeeded", FAILED: "failed"}
                db.execute(
                    "INSERT INTO attempts (job_seq, n, price_key, price_micros, outcome,"
                    " task_id, fail_code, fail_msg, started_at, ended_at)"
                    " VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (seq, key, book.price(key), outcome.get(state, "sent"), task_id,
                     code if state == FAILED else None, msg if state == FAILED else None,
                     start, end),
                )  # fmt: skip
            self.set_meta("schema_version", str(SCHEMA_VERSION))

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

    def transaction(self) -> _Tx:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT)."""
        return _Tx(self.db)

    async def synced(self) -> None:
        """Return once every commit made before this call is on disk (survives a power cut)."""
        try:
            await self._group_sync.sync()
        except OSError as exc:
            raise _write_error(exc) from exc

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
        finished): asking its status is a safe way to hear from the API (batchgen/gate.py)."""
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

    # -- transitions: each one transaction, committed before the caller goes on -------------

    def _move(self, seq: int, dst: JobState, expect: tuple[str, ...], **fields: Any) -> bool:
        """One job from one of `expect` to `dst`, setting `fields` too (one statement)."""
        fields["updated_at"] = self._now()
        sets = ", ".join(f"{k}=?" for k in fields)
        marks = ", ".join("?" * len(expect))
        sql = f"UPDATE jobs SET state=?, {sets} WHERE seq=? AND state IN ({marks})"
        args = (dst, *fields.values(), seq, *expect)
        return self._write_one(sql, args).rowcount == 1 or self._refused(seq, dst)

    def _refused(self, seq: int, dst: JobState) -> bool:
        """After a move that changed no row: False when the job is already in `dst`, gone, or
        in a state the table lets move to `dst` (the caller's own narrower condition, e.g. a
        task id held by another job); IllegalTransition when the table forbids the move."""
        row = self.db.execute("SELECT id, state FROM jobs WHERE seq=?", (seq,)).fetchone()
        if row is None or row[1] == dst or allowed(row[1], dst):
            return False
        raise IllegalTransition(f"job {row[0]!r}: {row[1]} -> {dst} is not a move batchgen makes")

    def _write_one(self, sql: str, args: tuple[Any, ...]) -> sqlite3.Cursor:
        """One statement in autocommit mode: SQLite makes it atomic and durable like a
        transaction of its own, without the BEGIN and COMMIT round trips (the connection has
        isolation_level=None). Errors are translated as `_Tx` translates them."""
        try:
            return self.db.execute(sql, args)
        except sqlite3.Error as exc:
            raise _write_error(exc) from exc

    def mark_submitting(self, seq: int, attempt: tuple[int, str, int] | None = None) -> bool:
        """The intent, committed before the POST (await `synced()` before sending): if we die
        now, the job becomes ambiguous. `attempt` (n, price key, micro-dollars) is the spend
        ledger's row for it (batchgen/ledger.py), written in the same transaction."""
        sql = (
            "UPDATE jobs SET state=?, submit_attempts=submit_attempts+1, updated_at=?"
            " WHERE seq=? AND state=?"
        )
        now = self._now()
        if attempt is None:
            done = self._write_one(sql, (SUBMITTING, now, seq, PENDING)).rowcount == 1
            return done or self._refused(seq, SUBMITTING)
        with self.transaction() as db:
            if db.execute(sql, (SUBMITTING, now, seq, PENDING)).rowcount != 1:
                return self._refused(seq, SUBMITTING)
            db.execute(
                "INSERT INTO attempts (job_seq, n, price_key, price_micros, outcome, started_at)"
                " VALUES (?, ?, ?, ?, 'sent', ?)",
                (seq, *attempt, now),
            )
        return True

    def mark_in_flight(self, seq: int, task_id: str) -> bool:
        """The task id, committed the moment it is read (then await `synced()`).

        A task id belongs to one job: when another job of this state file already holds it (a
        server that hands one id to two submits), nothing is recorded and False comes back
        (see `task_owner`). The check and the write are one statement, so nothing can come
        between them."""
        now = self._now()
        cur = self._write_one(
            "UPDATE jobs SET state=?, task_id=?, submitted_at=?, updated_at=?"
            " WHERE seq=? AND state=?"
            " AND NOT EXISTS (SELECT 1 FROM jobs WHERE task_id=? AND seq<>?)",
            (IN_FLIGHT, task_id, now, now, seq, SUBMITTING, task_id, seq),
        )
        return cur.rowcount == 1 or self._refused(seq, IN_FLIGHT)

    def task_owner(self, task_id: str, *, besides: int) -> str | None:
        """The id of the job, other than seq `besides`, that holds `task_id`."""
        row = self.db.execute(
            "SELECT id FROM jobs WHERE task_id=? AND seq<>? ORDER BY seq LIMIT 1",
            (task_id, besides),
        ).fetchone()
        return row[0] if row else None

    def mark_not_submitted(self, seq: int) -> bool:
        """The POST surely created no task (refused, 429, 5xx answer): back to pending."""
        cur = self._write_one(
            "UPDATE jobs SET state=?, submit_attempts=MAX(submit_attempts-1, 0), updated_at=?"
            " WHERE seq=? AND state=?",
            (PENDING, self._now(), seq, SUBMITTING),
        )
        return cur.rowcount == 1 or self._refused(seq, PENDING)

    def mark_ambiguous(self, seq: int, note: str) -> bool:
        return self._move(seq, AMBIGUOUS, (SUBMITTING,), note=note)

    def mark_orphaned(self, seq: int, note: str) -> bool:
        """The submit created a task whose id cannot be used; `note` holds it, escaped."""
        return self._move(seq, ORPHANED, (SUBMITTING,), note=note)

    def mark_failed(self, seq: int, code: str, message: str, **times: Any) -> bool:
        return self._move(
            seq,
            FAILED,
            (SUBMITTING, IN_FLIGHT, PENDING),
            fail_code=code,
            fail_msg=message,
            completed_at=self._now(),
            **times,
        )

    def mark_succeeded(
        self,
        seq: int,
        urls: list[str],
        *,
        expires_at: float,
        create_time_ms: int | None,
        complete_time_ms: int | None,
        cost_time_ms: int | None,
    ) -> bool:
        now = self._now()
        with self.transaction():
            cur = self.db.execute(
                "UPDATE jobs SET state=?, completed_at=?, expires_at=?, create_time_ms=?,"
                " complete_time_ms=?, cost_time_ms=?, updated_at=? WHERE seq=? AND state=?",
                (
                    SUCCEEDED,
                    now,
                    expires_at,
                    create_time_ms,
                    complete_time_ms,
                    cost_time_ms,
                    now,
                    seq,
                    IN_FLIGHT,
                ),
            )
            if cur.rowcount != 1:
                return self._refused(seq, SUCCEEDED)
            self.db.executemany(
                "INSERT OR REPLACE INTO files (job_seq, idx, url) VALUES (?, ?, ?)",
                [(seq, i, url) for i, url in enumerate(urls)],
            )
        return True

    def mark_file_done(
        self,
        seq: int,
        idx: int,
        *,
        path: str,
        size: int,
        sha256: str,
        mtime_ns: int,
        job_done: bool = False,
    ) -> bool:
        """Record one file on disk. `job_done`: it was the job's last missing file, so the job
        becomes `done` in the same transaction (returns whether it did, as `mark_done`)."""
        now = self._now()
        sql = (
            "UPDATE files SET path=?, bytes=?, sha256=?, mtime_ns=?, done_at=?"
            " WHERE job_seq=? AND idx=?"
        )
        args = (path, size, sha256, mtime_ns, now, seq, idx)
        if not job_done:
            self._write_one(sql, args)
            return False
        with self.transaction():
            self.db.execute(sql, args)
            cur = self.db.execute(
                "UPDATE jobs SET state=?, updated_at=? WHERE seq=? AND state=?",
                (DONE, now, seq, SUCCEEDED),
            )
            if cur.rowcount != 1:
                return self._refused(seq, DONE)
        return True

    def mark_file_missing(self, seq: int, idx: int) -> None:
        """The final file vanished or changed on disk: fetch it again while its URL lives."""
        with self.transaction():
            self.db.execute("UPDATE files SET done_at=NULL WHERE job_seq=? AND idx=?", (seq, idx))
            self.db.execute(
                "UPDATE jobs SET state=?, updated_at=? WHERE seq=? AND state=?",
                (SUCCEEDED, self._now(), seq, DONE),
            )

    def mark_done(self, seq: int) -> bool:
        return self._move(seq, DONE, (SUCCEEDED,))

    def mark_expired(self, seq: int, note: str) -> bool:
        """The result is gone: its URL died before the download, or (from in_flight) the
        task's status stayed unreadable past the result's lifetime."""
        return self._move(seq, EXPIRED, (SUCCEEDED, IN_FLIGHT), note=note)

    def mark_download_failed(self, seq: int, code: str, message: str) -> bool:
        """The provider delivered, but what its URL gave was refused (not a video, too large,
        unsafe, no safe file name): the job fails with the download's code."""
        return self._move(seq, FAILED, (SUCCEEDED,), fail_code=code, fail_msg=message)

    def resubmit(
        self, seq: int, note: str, *, ledger_sql: str, ledger_args: tuple[Any, ...]
    ) -> bool:
        """A transient provider failure taken again under the spend policy: the job goes back
        to pending without its task, and its spend-ledger row is closed in the same
        transaction (batchgen/money.py)."""
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE jobs SET state=?, task_id=NULL, submitted_at=NULL, completed_at=NULL,"
                " create_time_ms=NULL, complete_time_ms=NULL, cost_time_ms=NULL,"
                " fail_code=NULL, fail_msg=NULL, expires_at=NULL, note=?, updated_at=?"
                " WHERE seq=? AND state=?",
                (PENDING, note, self._now(), seq, IN_FLIGHT),
            )
            if cur.rowcount != 1:
                return self._refused(seq, PENDING)
            db.execute(ledger_sql, ledger_args)
        return True

    # -- operator commands ------------------------------------------------------------------

    def requeue(self, seqs: Iterable[int]) -> tuple[int, int]:
        """Put failed/ambiguous/orphaned/expired/cancelled jobs back for the next run. A job
        whose task exists and may still deliver (`retry_keeps_task`) goes back in flight with
        its task id, to be polled again; the others go back to pending: a new task, paid
        again. Returns (pending, in_flight)."""
        pending = in_flight = 0
        now = self._now()
        retryable = RETRYABLE
        marks = ", ".join("?" * len(retryable))
        with self.transaction():
            for seq in seqs:
                row = self.db.execute(
                    "SELECT state, task_id, fail_code, expires_at,"
                    " EXISTS (SELECT 1 FROM files WHERE job_seq=jobs.seq)"
                    f" FROM jobs WHERE seq=? AND state IN ({marks})",
                    (seq, *retryable),
                ).fetchone()
                if row is None:
                    continue
                state, task_id, fail_code, expires_at, has_results = row
                keep = retry_keeps_task(
                    state=state,
                    task_id=task_id,
                    fail_code=fail_code,
                    has_results=bool(has_results),
                    expires_at=expires_at,
                    now=now,
                )
                target = IN_FLIGHT if keep else PENDING
                if not allowed(state, target):
                    raise IllegalTransition(f"job seq {seq}: {state} -> {target} on retry")
                self.db.execute("DELETE FROM files WHERE job_seq=?", (seq,))
                if keep:
                    # The next poll records the results again (fresh URLs if they were renewed).
                    self.db.execute(
                        "UPDATE jobs SET state=?, completed_at=NULL, create_time_ms=NULL,"
                        " complete_time_ms=NULL, cost_time_ms=NULL, fail_code=NULL,"
                        " fail_msg=NULL, expires_at=NULL, note=NULL, updated_at=? WHERE seq=?",
                        (IN_FLIGHT, now, seq),
                    )
                    in_flight += 1
                    continue
                self.db.execute(
                    "UPDATE jobs SET state=?, task_id=NULL, submitted_at=NULL, completed_at=NULL,"
                    " create_time_ms=NULL, complete_time_ms=NULL, cost_time_ms=NULL,"
                    " fail_code=NULL, fail_msg=NULL, expires_at=NULL, note=NULL, updated_at=?"
                    " WHERE seq=?",
                    (PENDING, now, seq),
                )
                pending += 1
        return pending, in_flight

    def cancel(self, seqs: Iterable[int]) -> int:
        now = self._now()
        n = 0
        with self.transaction():
            for seq in seqs:
                cur = self.db.execute(
                    "UPDATE jobs SET state=?, updated_at=? WHERE seq=? AND state=?",
                    (CANCELLED, now, seq, PENDING),
                )
                n += cur.rowcount
        return n

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


def _open_for_reading(path: Path) -> sqlite3.Connection:
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


def _write_error(exc: sqlite3.Error | OSError) -> StateError:
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


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error; translates SQLite failures."""

    __slots__ = ("db",)

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise _write_error(exc) from exc
        return self.db

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            try:
                self.db.execute("COMMIT")
            except sqlite3.OperationalError as err:
                self.db.execute("ROLLBACK")
                raise _write_error(err) from err
        else:
            # the failed statement may already have ended the transaction
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise _write_error(exc) from exc
