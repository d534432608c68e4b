"""Which job continues which (`extends`, batchgen/core/chains.py) in the state file: the
`parent` column of `jobs` (state schema 5) holds the parent's job id. Kept beside the body
(whose placeholder names the parent too) so a run, and a `resume` without the manifest,
finds every child's parent with one query; the parent's task id is read from its row right
before the child's submit, whatever run recorded it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import NamedTuple

from batchgen.store.sqlite import Conn


class Parent(NamedTuple):
    id: str  # the parent's job id, as the manifest names it
    seq: int | None  # None: no such job in this state file
    state: str | None
    task_id: str | None
    fail_code: str | None


def has_parent_column(db: sqlite3.Connection) -> bool:
    return any(row[1] == "parent" for row in db.execute("PRAGMA table_info(jobs)"))


def add_parent_column(db: sqlite3.Connection) -> None:
    """Schema 5 -> 6: old rows get NULL, which means no parent."""
    if not has_parent_column(db):
        db.execute("ALTER TABLE jobs ADD COLUMN parent TEXT")


class JobLinks:
    """Each job's parent (`store.links`), on the Store's connection."""

    def __init__(self, conn: Conn) -> None:
        self.db = conn.db
        self.transaction = conn.transaction

    def record(self, items: Iterable[tuple[str, str | None]]) -> int:
        """Set each (job id, parent id or None) as the manifest now says; returns the rows
        changed. A batch without links, in a file without any, costs one query."""
        rows = list(items)
        if not any(parent for _, parent in rows):
            query = "SELECT 1 FROM jobs WHERE parent IS NOT NULL LIMIT 1"
            if self.db.execute(query).fetchone() is None:
                return 0
        with self.transaction():
            before = self.db.total_changes
            self.db.executemany(
                "UPDATE jobs SET parent=? WHERE id=? AND parent IS NOT ?",
                [(parent, job_id, parent) for job_id, parent in rows],
            )
            return self.db.total_changes - before

    def children(self) -> dict[int, str]:
        """child seq -> its parent's job id, for every job that continues another."""
        if not has_parent_column(self.db):
            return {}
        rows = self.db.execute("SELECT seq, parent FROM jobs WHERE parent IS NOT NULL")
        return dict(rows.fetchall())

    def parent(self, parent_id: str) -> Parent:
        """The parent's row as a child needs it (its state and task id, now)."""
        row = self.db.execute(
            "SELECT seq, state, task_id, fail_code FROM jobs WHERE id=?", (parent_id,)
        ).fetchone()
        return Parent(parent_id, *row) if row else Parent(parent_id, None, None, None, None)
