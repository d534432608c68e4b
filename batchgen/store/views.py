"""Read-only views of the state file for people and reports: `status`, `results.jsonl`,
`retry`'s choice of jobs, the engine's callback lookups and the spend estimate. All SQL lives
in this package; callers get plain values."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from batchgen.states import RETRYABLE, UNSUCCESSFUL, JobState

_REPORT_COLS = (
    "seq, id, body, state, task_id, submitted_at, completed_at, cost_time_ms,"
    " fail_code, fail_msg, expires_at, note, model"
)


def report_page(
    db: sqlite3.Connection, after: int, page: int
) -> tuple[list[tuple[Any, ...]], dict[int, list[dict[str, Any]]]]:
    """Up to `page` jobs after seq `after` (the report's columns), and their saved files."""
    rows = db.execute(
        f"SELECT {_REPORT_COLS} FROM jobs WHERE seq>? ORDER BY seq LIMIT ?", (after, page)
    ).fetchall()
    files: dict[int, list[dict[str, Any]]] = {}
    if rows:
        for seq, path, size, sha, url in db.execute(
            "SELECT job_seq, path, bytes, sha256, url FROM files WHERE job_seq BETWEEN ? AND ?"
            " AND done_at IS NOT NULL ORDER BY job_seq, idx",
            (rows[0][0], rows[-1][0]),
        ):
            files.setdefault(seq, []).append(
                {"path": path, "bytes": size, "sha256": sha, "url": url}
            )
    return rows, files


def failures(db: sqlite3.Connection) -> list[tuple[str | None, int, str, str]]:
    """(fail code, jobs, first job's id, its message), most frequent code first."""
    out = []
    for code, n in db.execute(
        "SELECT fail_code, COUNT(*) FROM jobs WHERE state=? GROUP BY fail_code"
        " ORDER BY COUNT(*) DESC, fail_code",
        (JobState.FAILED,),
    ).fetchall():
        job_id, message = db.execute(
            "SELECT id, fail_msg FROM jobs WHERE state=? AND fail_code IS ? ORDER BY seq LIMIT 1",
            (JobState.FAILED, code),
        ).fetchone()
        out.append((code, n, job_id, message or ""))
    return out


def noted(db: sqlite3.Connection, state: JobState, limit: int) -> list[tuple[str, str, int]]:
    """(id, note, submit attempts) of the jobs in `state` (limit -1: all)."""
    return db.execute(
        "SELECT id, COALESCE(note, ''), submit_attempts FROM jobs WHERE state=?"
        " ORDER BY seq LIMIT ?",
        (state, limit),
    ).fetchall()


def unfinished(db: sqlite3.Connection, limit: int) -> tuple[int, list[tuple[str, str, str, str]]]:
    """How many jobs are failed, ambiguous or orphaned, and (id, state, fail code, reason:
    the fail message, else the note) of the first `limit` of them, in manifest order."""
    states = (JobState.FAILED, JobState.AMBIGUOUS, JobState.ORPHANED)
    where = "FROM jobs WHERE state IN (?, ?, ?)"
    total = db.execute(f"SELECT COUNT(*) {where}", states).fetchone()[0]
    rows = db.execute(
        f"SELECT id, state, COALESCE(fail_code, ''), COALESCE(NULLIF(fail_msg, ''), note, '')"
        f" {where} ORDER BY seq LIMIT ?",
        (*states, limit),
    ).fetchall()
    return total, rows


def expiring(db: sqlite3.Connection, before: float, limit: int) -> tuple[int, list[tuple]]:
    """How many downloaded-not-yet results die before `before`, and (id, expires_at) of the
    first `limit` of them (-1: all)."""
    where = "FROM jobs WHERE state=? AND expires_at IS NOT NULL AND expires_at<?"
    total = db.execute(f"SELECT COUNT(*) {where}", (JobState.SUCCEEDED, before)).fetchone()[0]
    rows = db.execute(
        f"SELECT id, expires_at {where} ORDER BY expires_at, seq LIMIT ?",
        (JobState.SUCCEEDED, before, limit),
    ).fetchall()
    return total, rows


def last_runs(db: sqlite3.Connection, n: int) -> list[tuple[Any, ...]]:
    """(id, pid, started_at, ended_at, exit_code, how) of the latest runs, newest first."""
    return db.execute(
        "SELECT id, pid, started_at, ended_at, exit_code, how FROM runs ORDER BY id DESC LIMIT ?",
        (n,),
    ).fetchall()


def retry_candidates(
    db: sqlite3.Connection, states: Iterable[JobState], codes: Iterable[str] = ()
) -> list[tuple[int, str, str]]:
    """(seq, id, state) of the jobs `retry` may take: in one of `states` (failed ones only
    with one of `codes` when codes are given; every retryable state when none is)."""
    chosen = [s for s in states if s in RETRYABLE] or list(RETRYABLE)
    codes = list(codes)
    conds, params = [], []
    for state in chosen:
        if state == JobState.FAILED and codes:
            conds.append(f"(state=? AND fail_code IN ({','.join('?' * len(codes))}))")
            params += [state, *codes]
        else:
            conds.append("state=?")
            params.append(state)
    where = " OR ".join(conds)
    return db.execute(
        f"SELECT seq, id, state FROM jobs WHERE {where} ORDER BY seq", params
    ).fetchall()


def task_known(db: sqlite3.Connection, task_id: str, *, in_flight: bool = False) -> bool:
    """Whether a job of this state file holds `task_id` (and is in flight, if asked)."""
    if in_flight:
        query, args = (
            "SELECT 1 FROM jobs WHERE task_id=? AND state=? LIMIT 1",
            (task_id, JobState.IN_FLIGHT),
        )
    else:
        query, args = "SELECT 1 FROM jobs WHERE task_id=? LIMIT 1", (task_id,)
    return db.execute(query, args).fetchone() is not None


def pending_by_price(
    db: sqlite3.Connection,
) -> list[tuple[str | None, str | None, int | None, int]]:
    """(model, mode, duration, jobs) of the pending jobs: what the spend estimate prices."""
    return db.execute(
        "SELECT model, mode, duration, COUNT(*) FROM jobs WHERE state=?"
        " GROUP BY model, mode, duration",
        (JobState.PENDING,),
    ).fetchall()


def done_files_after(
    db: sqlite3.Connection, after: tuple[int, int], page: int
) -> list[tuple[Any, ...]]:
    """(job seq, idx, path, bytes, sha256, mtime_ns, expires_at, job id) of the files of done
    jobs after (seq, idx) `after`: the start-up audit of finished files, page by page."""
    return db.execute(
        "SELECT f.job_seq, f.idx, f.path, f.bytes, f.sha256, f.mtime_ns, j.expires_at,"
        " j.id FROM files f JOIN jobs j ON j.seq = f.job_seq"
        " WHERE j.state = ? AND (f.job_seq, f.idx) > (?, ?)"
        " ORDER BY f.job_seq, f.idx LIMIT ?",
        (JobState.DONE, *after, page),
    ).fetchall()


def job_bodies(db: sqlite3.Connection) -> list[tuple[str, str]]:
    """(id, body JSON) of every job, in manifest order."""
    return db.execute("SELECT id, body FROM jobs ORDER BY seq").fetchall()


def local_image_files(db: sqlite3.Connection) -> list[tuple[str, str, str]]:
    """(sha256, ext, path) of the local image files the state file knows (none: no table)."""
    try:
        return db.execute("SELECT sha256, ext, path FROM local_images").fetchall()
    except sqlite3.OperationalError:  # a state file from before image files
        return []


def runs_count(db: sqlite3.Connection) -> int:
    return db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


def unsuccessful(db: sqlite3.Connection, limit: int) -> tuple[int, list[tuple[str, str, str]]]:
    """How many jobs ended without a video (failed, expired, ambiguous, orphaned), and the
    first `limit` of them as (id, fail code or state, message), for a run's notifications."""
    states = tuple(UNSUCCESSFUL)
    marks = ",".join("?" * len(states))
    (total,) = db.execute(f"SELECT COUNT(*) FROM jobs WHERE state IN ({marks})", states).fetchone()
    rows = db.execute(
        f"SELECT id, COALESCE(fail_code, UPPER(state)), COALESCE(fail_msg, note, '')"
        f" FROM jobs WHERE state IN ({marks}) ORDER BY seq LIMIT ?",
        (*states, limit),
    ).fetchall()
    return int(total), [(str(a), str(b), str(c)) for a, b, c in rows]
