"""The jobs table as a part of the Store (`store.jobs`): loading a manifest's jobs
idempotently and reading them back; the runs table (`store.runs`). State changes are not
here: they are `store.moves`'s, guarded by the table of moves."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from batchgen.states import STATES, JobState
from batchgen.store.rows import _JOB_COLS, FileRow, JobRow, SyncResult, body_sha
from batchgen.store.sqlite import Conn

PENDING = JobState.PENDING
SUBMITTING = JobState.SUBMITTING
IN_FLIGHT = JobState.IN_FLIGHT
SUCCEEDED = JobState.SUCCEEDED
DONE = JobState.DONE


class Jobs:
    """Adding jobs and reading them, on the Store's connection."""

    def __init__(self, conn: Conn) -> None:
        self._c = conn

    # -- loading a manifest -----------------------------------------------------------------

    def sync(
        self, jobs: Iterable[tuple[str, str, dict[str, Any]]], *, resubmit_changed: bool = False
    ) -> SyncResult:
        """Add (id, model, body) jobs idempotently: new ids are appended, known ids are left alone.

        A known id whose body changed is reported, and replaced only with `resubmit_changed`
        (which means paying for it again if it already ran)."""
        added = unchanged = 0
        changed: list[str] = []
        resubmitted: list[str] = []
        now = self._c.now()
        with self._c.transaction():
            next_seq = self._c.db.execute("SELECT COALESCE(MAX(seq), 0) FROM jobs").fetchone()[0]
            for job_id, model, body in jobs:
                sha = body_sha(body)
                row = self._c.db.execute(
                    "SELECT seq, body_sha, state, model FROM jobs WHERE id=?", (job_id,)
                ).fetchone()
                text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
                inp = body.get("input") if isinstance(body.get("input"), dict) else {}
                if row is None:
                    next_seq += 1
                    self._c.db.execute(
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
                    self._c.db.execute("DELETE FROM files WHERE job_seq=?", (row[0],))
                    self._c.db.execute(
                        "UPDATE jobs SET model=?, body=?, body_sha=?, mode=?, duration=?,"
                        " state=?, task_id=NULL, submitted_at=NULL, completed_at=NULL,"
                        " create_time_ms=NULL, complete_time_ms=NULL, cost_time_ms=NULL,"
                        " fail_code=NULL, fail_msg=NULL, expires_at=NULL, changed_body=NULL,"
                        " note=NULL, updated_at=? WHERE seq=?",
                        (model, text, sha, mode, duration, PENDING, now, row[0]),
                    )
                    resubmitted.append(job_id)
                else:
                    self._c.db.execute("UPDATE jobs SET changed_body=? WHERE seq=?", (text, row[0]))
                    changed.append(job_id)
        return SyncResult(added, unchanged, changed, resubmitted)

    # -- queries ----------------------------------------------------------------------------

    def pending_after(self, seq: int, limit: int) -> list[JobRow]:
        rows = self._c.db.execute(
            f"SELECT {_JOB_COLS} FROM jobs WHERE state=? AND seq>? ORDER BY seq LIMIT ?",
            (PENDING, seq, limit),
        ).fetchall()
        return [JobRow(*r) for r in rows]

    def in_state(self, state: str) -> Iterator[JobRow]:
        cur = self._c.db.execute(
            f"SELECT {_JOB_COLS} FROM jobs WHERE state=? ORDER BY seq", (state,)
        )
        for row in cur:
            yield JobRow(*row)

    def known_task(self) -> JobRow | None:
        """A job whose task the provider has certainly made (in flight first, else the latest
        finished): asking its status is a safe way to hear from the API
        (batchgen/engine/gate.py)."""
        row = self._c.db.execute(
            f"SELECT {_JOB_COLS} FROM jobs WHERE task_id IS NOT NULL AND state IN (?, ?, ?)"
            " ORDER BY state = ? DESC, updated_at DESC LIMIT 1",
            (IN_FLIGHT, SUCCEEDED, DONE, IN_FLIGHT),
        ).fetchone()
        return JobRow(*row) if row else None

    def get(self, job_id: str) -> JobRow | None:
        row = self._c.db.execute(f"SELECT {_JOB_COLS} FROM jobs WHERE id=?", (job_id,)).fetchone()
        return JobRow(*row) if row else None

    def by_seq(self, seq: int) -> JobRow | None:
        row = self._c.db.execute(f"SELECT {_JOB_COLS} FROM jobs WHERE seq=?", (seq,)).fetchone()
        return JobRow(*row) if row else None

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for state, n in self._c.db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
            out[state] = n
        return out

    def files_of(self, seq: int) -> list[FileRow]:
        rows = self._c.db.execute(
            "SELECT job_seq, idx, url, path, bytes, sha256, mtime_ns, done_at FROM files"
            " WHERE job_seq=? ORDER BY idx",
            (seq,),
        ).fetchall()
        return [FileRow(*r) for r in rows]

    def expires_at(self, seq: int) -> float | None:
        row = self._c.db.execute("SELECT expires_at FROM jobs WHERE seq=?", (seq,)).fetchone()
        return row[0] if row else None

    def models(self) -> dict[str, int]:
        """Jobs per model."""
        return dict(self._c.db.execute("SELECT model, COUNT(*) FROM jobs GROUP BY model"))


class Runs:
    """Each run's start and end (`store.runs`), for status and the report."""

    def __init__(self, conn: Conn) -> None:
        self._c = conn

    def start(self, pid: int) -> int:
        with self._c.transaction():
            cur = self._c.db.execute(
                "INSERT INTO runs (pid, started_at) VALUES (?, ?)", (pid, self._c.now())
            )
        return int(cur.lastrowid or 0)

    def end(self, run_id: int, exit_code: int, how: str) -> None:
        with self._c.transaction():
            self._c.db.execute(
                "UPDATE runs SET ended_at=?, exit_code=?, how=? WHERE id=?",
                (self._c.now(), exit_code, how, run_id),
            )
