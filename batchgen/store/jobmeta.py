"""Each job's `meta` (a flat map; a matrix job's variables) in the state file: kept beside the
body, never part of it, so editing meta never makes a job "changed" or pays for it again.

Stored as a JSON object in `jobs.meta` (state schema 4). A state file of an earlier version
opened read-only (`status`, `report`) has no such column: it reads as "no meta"."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from batchgen.store.sqlite import Conn


def has_meta_column(db: sqlite3.Connection) -> bool:
    return any(row[1] == "meta" for row in db.execute("PRAGMA table_info(jobs)"))


def add_meta_column(db: sqlite3.Connection) -> None:
    """Schema 3 -> 4: old rows get NULL, which means no meta."""
    if not has_meta_column(db):
        db.execute("ALTER TABLE jobs ADD COLUMN meta TEXT")


def _text(meta: Mapping[str, Any] | None) -> str | None:
    return json.dumps(dict(meta), ensure_ascii=False, separators=(",", ":")) if meta else None


def _parse(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class JobMeta:
    """Each job's meta (`store.job_meta`), on the Store's connection."""

    def __init__(self, conn: Conn) -> None:
        self.db = conn.db
        self.transaction = conn.transaction

    def record(self, items: Iterable[tuple[str, Mapping[str, Any] | None]]) -> int:
        """Set each (job id, meta) as the manifest now says; returns the rows changed. A
        batch without any meta, in a file without any, costs one query."""
        rows = [(_text(meta), job_id) for job_id, meta in items]
        if not any(text for text, _ in rows):
            query = "SELECT 1 FROM jobs WHERE meta IS NOT NULL LIMIT 1"
            if self.db.execute(query).fetchone() is None:
                return 0
        with self.transaction():
            before = self.db.total_changes
            self.db.executemany(
                "UPDATE jobs SET meta=? WHERE id=? AND meta IS NOT ?",
                [(text, job_id, text) for text, job_id in rows],
            )
            return self.db.total_changes - before

    def of(self, seq: int) -> dict[str, Any]:
        row = self.db.execute("SELECT meta FROM jobs WHERE seq=?", (seq,)).fetchone()
        return _parse(row[0]) if row else {}


def meta_between(db: sqlite3.Connection, first: int, last: int) -> dict[int, dict[str, Any]]:
    """seq -> meta of the jobs with meta between two seqs (a report's page)."""
    if not has_meta_column(db):
        return {}
    rows = db.execute(
        "SELECT seq, meta FROM jobs WHERE seq BETWEEN ? AND ? AND meta IS NOT NULL", (first, last)
    )
    return {seq: _parse(text) for seq, text in rows}


def meta_keys(db: sqlite3.Connection) -> list[str]:
    """Every meta key of the state file, in the order jobs first use them (report columns)."""
    if not has_meta_column(db):
        return []
    keys: dict[str, None] = {}
    for (text,) in db.execute("SELECT meta FROM jobs WHERE meta IS NOT NULL ORDER BY seq"):
        keys.update(dict.fromkeys(_parse(text)))
    return list(keys)
