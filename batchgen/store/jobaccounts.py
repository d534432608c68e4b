"""Which account made each task (state schema 5): `jobs.account` is the account of the job's
current submit, `attempts.account` of each submit that may have made a task. Written with the
intent, in its transaction (`store.moves.mark_submitting`), so a task, even one whose answer was
lost, is always polled and its price counted under the account that created it.

NULL means the run's one key (a run without `--accounts`). A file of an earlier version opened
read-only has no such column: every job reads as the run's one key."""

from __future__ import annotations

import sqlite3

from batchgen.states import JobState
from batchgen.store.sqlite import Conn

NEEDS_ITS_KEY = (JobState.SUBMITTING, JobState.IN_FLIGHT, JobState.AMBIGUOUS)
"""States whose task (made, or maybe made) only its account's key may poll."""


def has_account_column(db: sqlite3.Connection) -> bool:
    return any(row[1] == "account" for row in db.execute("PRAGMA table_info(jobs)"))


def add_account_columns(db: sqlite3.Connection) -> None:
    """Schema 4 -> 5: old rows get NULL, the run's one key (which is what made them)."""
    if not has_account_column(db):
        db.execute("ALTER TABLE jobs ADD COLUMN account TEXT")
    if not any(row[1] == "account" for row in db.execute("PRAGMA table_info(attempts)")):
        db.execute("ALTER TABLE attempts ADD COLUMN account TEXT")


class JobAccounts:
    """Which account made each task (`store.accounts`), on the Store's connection."""

    def __init__(self, conn: Conn) -> None:
        self.db = conn.db

    def _has_column(self) -> bool:
        return has_account_column(self.db)

    def of(self, seq: int) -> str | None:
        """The account of the job's current submit (None: the run's one key)."""
        if not self._has_column():
            return None
        row = self.db.execute("SELECT account FROM jobs WHERE seq=?", (seq,)).fetchone()
        return row[0] if row else None

    def needed(self) -> dict[str, int]:
        """Accounts whose key this state file still needs (a task in flight, or a submit whose
        fate is unknown), with how many jobs each."""
        if not self._has_column():
            return {}
        marks = ",".join("?" * len(NEEDS_ITS_KEY))
        rows = self.db.execute(
            f"SELECT account, COUNT(*) FROM jobs WHERE account IS NOT NULL AND state IN ({marks})"
            " GROUP BY account",
            tuple(str(s) for s in NEEDS_ITS_KEY),
        )
        return {str(name): int(n) for name, n in rows}

    def of_the_one_key(self) -> int:
        """Jobs whose task (made, or maybe made) only the run's one key may poll: a run
        without `--accounts` sent them."""
        if not self._has_column():
            return 0
        marks = ",".join("?" * len(NEEDS_ITS_KEY))
        row = self.db.execute(
            f"SELECT COUNT(*) FROM jobs WHERE account IS NULL AND state IN ({marks})",
            tuple(str(s) for s in NEEDS_ITS_KEY),
        ).fetchone()
        return int(row[0])

    def jobs_by_account(self) -> dict[str | None, int]:
        """Jobs per account of their latest submit (None: the run's one key, or never sent)."""
        if not self._has_column():
            return {}
        rows = self.db.execute("SELECT account, COUNT(*) FROM jobs GROUP BY 1")
        return {name: int(n) for name, n in rows}

    def spent_by(self, account: str) -> int:
        """Micro-dollars the account spent or reserved in this state file, all runs, less refunds
        seen: the ledger's rows of its submits (money/spending.py counts the total the same way)."""
        row = self.db.execute(
            "SELECT COALESCE(SUM(price_micros), 0) FROM attempts WHERE refunded=0 AND account=?",
            (account,),
        ).fetchone()
        return int(row[0])

    def in_flight(self) -> dict[str, int]:
        """Tasks in flight per account (what each account's cap starts counted with)."""
        if not self._has_column():
            return {}
        rows = self.db.execute(
            "SELECT account, COUNT(*) FROM jobs WHERE account IS NOT NULL AND state=? GROUP BY 1",
            (str(JobState.IN_FLIGHT),),
        )
        return {str(name): int(n) for name, n in rows}

    def overview(self) -> list[dict[str, object]]:
        """Per account that sent a job of this batch: its jobs (by their latest submit), tasks in
        flight, and micro-dollars spent (`batchgen status`). Empty for a batch of one key."""
        if not self._has_column():
            return []
        rows = self.db.execute(
            "SELECT account, COUNT(*), SUM(state=?) FROM jobs WHERE account IS NOT NULL"
            " GROUP BY account ORDER BY account",
            (str(JobState.IN_FLIGHT),),
        ).fetchall()
        return [
            {
                "name": name,
                "jobs": int(n),
                "in_flight": int(live or 0),
                "spent_micros": self.spent_by(name),
            }
            for name, n, live in rows
        ]
