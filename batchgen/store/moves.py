"""Every change of a job's state: one short transaction each, guarded by the table of moves
(batchgen/states.py). A move the table does not hold raises IllegalTransition and leaves the
row as it was; a legal move this caller did not expect (the job moved on) returns False."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from batchgen.errors import IllegalTransition
from batchgen.states import FINISHED, RETRYABLE, JobState, allowed
from batchgen.store.rows import retry_keeps_task
from batchgen.store.sqlite import Conn, write_error

PENDING = JobState.PENDING
SUBMITTING = JobState.SUBMITTING
IN_FLIGHT = JobState.IN_FLIGHT
SUCCEEDED = JobState.SUCCEEDED
DONE = JobState.DONE
FAILED = JobState.FAILED
AMBIGUOUS = JobState.AMBIGUOUS
ORPHANED = JobState.ORPHANED
EXPIRED = JobState.EXPIRED
CANCELLED = JobState.CANCELLED


class JobMoves:
    """The writes to `jobs` and `files` (`store.moves`), on the Store's connection."""

    def __init__(self, conn: Conn) -> None:
        self.db = conn.db
        self._now = conn.now
        self.transaction = conn.transaction
        self.on_finished: Callable[[int], None] | None = None
        """Called with a job's seq once a move has committed it to a finished state (done,
        failed, ambiguous, orphaned, expired, cancelled): the Python API's on_result."""

    # -- after a restart, and what the user accepts ---------------------------------------------

    def recover_interrupted(self) -> int:
        """A `submitting` job after a restart may or may not have created a task: ambiguous."""
        note = "the run stopped while its submit was on the wire"
        with self.transaction():
            cur = self.db.execute(
                "UPDATE jobs SET state=?, note=?, updated_at=? WHERE state=?",
                (AMBIGUOUS, note, self._now(), SUBMITTING),
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

    # -- transitions: each one transaction, committed before the caller goes on -------------

    def _move(self, seq: int, dst: JobState, expect: tuple[str, ...], **fields: Any) -> bool:
        """One job from one of `expect` to `dst`, setting `fields` too (one statement)."""
        fields["updated_at"] = self._now()
        sets = ", ".join(f"{k}=?" for k in fields)
        marks = ", ".join("?" * len(expect))
        sql = f"UPDATE jobs SET state=?, {sets} WHERE seq=? AND state IN ({marks})"
        args = (dst, *fields.values(), seq, *expect)
        if self._write_one(sql, args).rowcount == 1:
            self._finished(seq, dst)
            return True
        return self._refused(seq, dst)

    def _finished(self, seq: int, dst: JobState) -> None:
        if self.on_finished is not None and dst in FINISHED:
            self.on_finished(seq)

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
            raise write_error(exc) from exc

    def mark_submitting(
        self, seq: int, attempt: tuple[int, str, int] | None = None, account: str | None = None
    ) -> bool:
        """The intent, committed before the POST (await `synced()` before sending): if we die
        now, the job becomes ambiguous. `attempt` (n, price key, micro-dollars) is the spend
        ledger's row for it (batchgen/store/ledger.py), written in the same transaction, and
        both name the `account` that sends it (None: the run's one key; jobaccounts.py)."""
        sql = (
            "UPDATE jobs SET state=?, submit_attempts=submit_attempts+1, updated_at=?, account=?"
            " WHERE seq=? AND state=?"
        )
        now = self._now()
        if attempt is None:
            done = self._write_one(sql, (SUBMITTING, now, account, seq, PENDING)).rowcount == 1
            return done or self._refused(seq, SUBMITTING)
        with self.transaction() as db:
            if db.execute(sql, (SUBMITTING, now, account, seq, PENDING)).rowcount != 1:
                return self._refused(seq, SUBMITTING)
            db.execute(
                "INSERT INTO attempts (job_seq, n, price_key, price_micros, outcome, started_at,"
                " account) VALUES (?, ?, ?, ?, 'sent', ?, ?)",
                (seq, *attempt, now, account),
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

    def adopt_task(self, seq: int, task_id: str, note: str) -> bool:
        """An ambiguous job's task, shown to exist by a callback posted to the job's own
        unguessable URL and confirmed by a status request: it becomes the job's task. Its
        submit time is when the job turned ambiguous (the submit was then). Refused, like a
        submit's answer, when another job holds the id."""
        now = self._now()
        cur = self._write_one(
            "UPDATE jobs SET state=?, task_id=?, submitted_at=COALESCE(submitted_at, updated_at),"
            " note=?, updated_at=? WHERE seq=? AND state=?"
            " AND NOT EXISTS (SELECT 1 FROM jobs WHERE task_id=? AND seq<>?)",
            (IN_FLIGHT, task_id, note, now, seq, AMBIGUOUS, task_id, seq),
        )
        return cur.rowcount == 1 or self._refused(seq, IN_FLIGHT)

    def annotate(self, seq: int, state: JobState, note: str) -> bool:
        """Say more about a job without moving it (only while it is in `state`). The time of
        its last move stays (an ambiguous job's is when its submit was sent)."""
        cur = self._write_one("UPDATE jobs SET note=? WHERE seq=? AND state=?", (note, seq, state))
        return cur.rowcount == 1

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
        self._finished(seq, DONE)
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
        self,
        seq: int,
        note: str,
        *,
        task_id: str | None = None,
        code: str = "",
        message: str = "",
    ) -> bool:
        """A transient provider failure taken again under the spend policy (batchgen/money/):
        the job goes back to pending without its task, and its last spend-ledger attempt ends
        `resubmitted` with the task's fail code, in the same transaction."""
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
            db.execute(
                "UPDATE attempts SET outcome='resubmitted', task_id=COALESCE(?, task_id),"
                " fail_code=?, fail_msg=?, ended_at=? WHERE job_seq=?"
                " AND n=(SELECT MAX(n) FROM attempts WHERE job_seq=?)",
                (task_id, code, message, self._now(), seq, seq),
            )
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
