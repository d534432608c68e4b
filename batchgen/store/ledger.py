"""The spend ledger in the state file: one row per submit that may have created a task.

A row is written in the same transaction as the job's intent (`reserve`), before the POST
leaves, with the price reserved for it; it is deleted only when the answer proves that no task
was made (`release`). Whatever happens in between (a crash, a lost answer, an ambiguous job),
the row stays and its price counts as spent. The rows are also each job's attempts history,
shown by report and gallery. Readers of a state file older than the ledger see no rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from batchgen.core.usd import usd
from batchgen.states import JobState
from batchgen.store.sqlite import Conn

PENDING = JobState.PENDING
SENT = "sent"  # on the wire or in flight: may have made a task, counts as spent
SUCCEEDED = "succeeded"
FAILED = "failed"
RESUBMITTED = "resubmitted"  # failed with a transient code, and the job was sent again


@dataclass(frozen=True, slots=True)
class Attempt:
    n: int
    price_key: str
    price_micros: int
    outcome: str
    refunded: bool
    task_id: str | None
    fail_code: str | None
    fail_msg: str | None


BUDGET_NOTE = "not submitted: "
EARLIER = " | earlier: "


def shown(rows: list[Attempt]) -> list[dict[str, object]]:
    """A job's attempts as report records: each task, its outcome and fail code, its price."""
    return [
        {
            "n": a.n,
            "task_id": a.task_id,
            "outcome": a.outcome,
            "fail_code": a.fail_code,
            "price_usd": usd(a.price_micros),
            "refunded": a.refunded,
        }
        for a in rows
    ]


class Ledger:
    """The spend ledger's rows and the learned prices, on the Store's connection
    (`store.ledger`): the one home of the SQL money reads and writes."""

    def __init__(self, conn: Conn) -> None:
        self._c = conn

    def spent(self) -> int:
        """Micro-dollars spent or reserved by this state file across all its runs, less
        refunds."""
        if not self._c.has_table("attempts"):
            return 0
        row = self._c.db.execute(
            "SELECT COALESCE(SUM(price_micros), 0) FROM attempts WHERE refunded=0"
        ).fetchone()
        return int(row[0])

    def next_n(self, seq: int) -> int:
        row = self._c.db.execute(
            "SELECT COALESCE(MAX(n), 0) + 1 FROM attempts WHERE job_seq=?", (seq,)
        ).fetchone()
        return int(row[0])

    def release(self, seq: int, n: int) -> None:
        """The answer proved no task was made: the reservation goes."""
        self._c.db.execute(
            "DELETE FROM attempts WHERE job_seq=? AND n=? AND outcome=?", (seq, n, SENT)
        )

    def finish(
        self,
        seq: int,
        task_id: str | None,
        outcome: str,
        fail_code: str | None = None,
        fail_msg: str | None = None,
    ) -> None:
        """The job's latest attempt ended (its task succeeded or failed)."""
        if not self._c.has_table("attempts"):
            return
        self._c.db.execute(
            "UPDATE attempts SET outcome=?, task_id=COALESCE(?, task_id), fail_code=?, fail_msg=?,"
            " ended_at=? WHERE job_seq=? AND n=(SELECT MAX(n) FROM attempts WHERE job_seq=?)",
            (outcome, task_id, fail_code, fail_msg, self._c.now(), seq, seq),
        )

    def reprice(self, seq: int, n: int, micros: int) -> None:
        """The attempt's real price, learned from the balance around it."""
        self._c.db.execute(
            "UPDATE attempts SET price_micros=? WHERE job_seq=? AND n=?", (micros, seq, n)
        )

    def attempts(self, seq: int) -> list[Attempt]:
        if not self._c.has_table("attempts"):
            return []
        rows = self._c.db.execute(
            "SELECT n, price_key, price_micros, outcome, refunded, task_id, fail_code, fail_msg"
            " FROM attempts WHERE job_seq=? ORDER BY n",
            (seq,),
        ).fetchall()
        return [Attempt(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6], r[7]) for r in rows]

    def all_attempts(self, first: int = 0, last: int = 1 << 62) -> dict[int, list[Attempt]]:
        """The attempts of the jobs with seq in [first, last], for reports: one query."""
        out: dict[int, list[Attempt]] = {}
        if not self._c.has_table("attempts"):
            return out
        for r in self._c.db.execute(
            "SELECT job_seq, n, price_key, price_micros, outcome, refunded, task_id, fail_code,"
            " fail_msg FROM attempts WHERE job_seq BETWEEN ? AND ? ORDER BY job_seq, n",
            (first, last),
        ):
            out.setdefault(r[0], []).append(Attempt(r[1], r[2], r[3], r[4], bool(r[5]), *r[6:]))
        return out

    def trailing_resubmits(self, seq: int) -> int:
        """How many times in a row, up to now, this job was resubmitted after a transient
        failure."""
        rows = self.attempts(seq)
        if rows and rows[-1].outcome == SENT:
            rows.pop()  # the attempt whose end is being decided
        n = 0
        for a in reversed(rows):
            if a.outcome != RESUBMITTED:
                break
            n += 1
        return n

    def refundable(self, since: float = 0.0) -> list[tuple[int, int, int]]:
        """(job_seq, n, price) of attempts that failed since `since` and were not yet seen
        refunded, oldest first."""
        if not self._c.has_table("attempts"):
            return []
        return self._c.db.execute(
            "SELECT job_seq, n, price_micros FROM attempts WHERE refunded=0 AND outcome IN (?, ?)"
            " AND ended_at >= ? ORDER BY ended_at, job_seq, n",
            (FAILED, RESUBMITTED, since),
        ).fetchall()

    def prices_of(self, which: set[tuple[int, int]], since: float) -> int:
        """The sum of the prices of these attempts (all started since `since`)."""
        total = 0
        for seq, n, price in self._c.db.execute(
            "SELECT job_seq, n, price_micros FROM attempts WHERE started_at >= ?", (since,)
        ):
            if (seq, n) in which:
                total += price
        return total

    def mark_refunded(self, which: list[tuple[int, int]]) -> None:
        with self._c.transaction() as db:
            db.executemany("UPDATE attempts SET refunded=1 WHERE job_seq=? AND n=?", which)

    def learned_prices(self) -> dict[str, int]:
        if not self._c.has_table("prices"):
            return {}
        return {k: int(v) for k, v in self._c.db.execute("SELECT key, micros FROM prices")}

    def save_learned(self, key: str, micros: int) -> None:
        self._c.db.execute(
            "INSERT INTO prices (key, micros, learned_at) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET micros=excluded.micros,"
            " learned_at=excluded.learned_at",
            (key, micros, self._c.now()),
        )

    def note_pending(self, note: str, seq: int | None = None) -> int:
        """Say why jobs still pending were not submitted (the budget), first; a note they held
        (a transient resubmit's) is kept after it, and given back when the budget note goes.
        `seq`: that job only (one the spend cap left), else every pending job."""
        only = "" if seq is None else f" AND seq={int(seq)}"
        with self._c.transaction() as db:
            db.execute(
                "UPDATE jobs SET note=? WHERE state=? AND (note IS NULL OR note='')" + only,
                (BUDGET_NOTE + note, PENDING),
            )
            db.execute(  # a budget note of an earlier moment: replaced, keeping what it kept
                "UPDATE jobs SET note=? || CASE WHEN instr(note, ?) > 0"
                " THEN substr(note, instr(note, ?)) ELSE '' END WHERE state=? AND note LIKE ?"
                " AND note <> ?" + only,
                (
                    BUDGET_NOTE + note,
                    EARLIER,
                    EARLIER,
                    PENDING,
                    BUDGET_NOTE + "%",
                    BUDGET_NOTE + note,
                ),
            )
            cur = db.execute(
                "UPDATE jobs SET note=? || ? || note WHERE state=? AND note NOT LIKE ?" + only,
                (BUDGET_NOTE + note, EARLIER, PENDING, BUDGET_NOTE + "%"),
            )
        return cur.rowcount

    def budget_noted(self) -> int:
        """Pending jobs the money left (a note of `note_pending`): a cap, or the balance."""
        row = self._c.db.execute(
            "SELECT COUNT(*) FROM jobs WHERE state=? AND note LIKE ?", (PENDING, BUDGET_NOTE + "%")
        ).fetchone()
        return int(row[0])

    def clear_budget_notes(self) -> None:
        """A new run: the budget decides again; a note the budget's covered comes back."""
        self._c.db.execute(
            "UPDATE jobs SET note=CASE WHEN instr(note, ?) > 0"
            " THEN substr(note, instr(note, ?) + ?) ELSE NULL END WHERE state=? AND note LIKE ?",
            (EARLIER, EARLIER, len(EARLIER), PENDING, BUDGET_NOTE + "%"),
        )
