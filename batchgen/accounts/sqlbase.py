"""The account database's logic in SQL, shared by SQLite (one machine) and PostgreSQL
(several): the tables, one short transaction per call, and the admission rules of
admission.py applied to what the rows say. A subclass gives the transaction (serialised per
account) and its time."""

from __future__ import annotations

import socket
from contextlib import AbstractContextManager
from typing import Any

from batchgen.accounts import admission as adm
from batchgen.accounts import window
from batchgen.accounts.db import Granted, RunInfo, TaskRef
from batchgen.adapters.lock import holder_of

KEEP_REQUESTS_S = 120.0
"""Request times older than this (or than twice a run's window) are pruned."""


FORGET_RUNS_S = 86400.0
"""An ended run holding no slot is forgotten this long after its end."""


class SqlAccountDb:
    """`AccountDb` in SQL. `_tx(account)` opens one transaction serialised per account and
    sets `_t`, the time every row of that transaction is judged and stamped by."""

    stale_s: float = 120.0
    hold_s: float = 600.0
    host: str = socket.gethostname()
    _t: float = 0.0

    def _tx(self, account: str | None) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _now(self) -> float:
        return self._t

    def close(self) -> None:
        raise NotImplementedError

    # -- runs ----------------------------------------------------------------------------

    def register(self, run: RunInfo) -> None:
        lim = run.limits
        with self._tx(run.account) as db:
            now = self._now()
            db.execute(
                "INSERT INTO accounts (account, label) VALUES (?, ?) "
                "ON CONFLICT (account) DO UPDATE SET label = excluded.label",
                (run.account, run.label),
            )
            db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?) ON CONFLICT (run) "
                "DO UPDATE SET heartbeat = excluded.heartbeat, ended = NULL",
                (
                    run.run,
                    run.account,
                    run.pid,
                    run.host,
                    run.state_path,
                    now,
                    now,
                    lim.rate_limit,
                    lim.window_s,
                    lim.max_in_flight,
                ),
            )
            db.execute(  # runs that ended a day ago and hold nothing are history
                "DELETE FROM runs WHERE account = ? AND ended IS NOT NULL AND ended < ? "
                "AND run NOT IN (SELECT run FROM slots WHERE account = ?)",
                (run.account, now - FORGET_RUNS_S, run.account),
            )

    def heartbeat(self, run: RunInfo) -> None:
        with self._tx(run.account) as db:
            db.execute("UPDATE runs SET heartbeat = ? WHERE run = ?", (self._now(), run.run))

    def end_run(self, run: RunInfo) -> None:
        """The run leaves: its reservations go (their submits were answered or never sent);
        its tasks stay counted until they end (another run polls them)."""
        with self._tx(run.account) as db:
            db.execute("UPDATE runs SET ended = ? WHERE run = ?", (self._now(), run.run))
            db.execute("DELETE FROM slots WHERE run = ? AND task_id IS NULL", (run.run,))

    # -- admission -----------------------------------------------------------------------

    def _news(self, db: Any, account: str) -> adm.News:
        row = db.execute(
            "SELECT paused_until, pause_why, stopped_at, stopped_why, learned_cap, learned_at "
            "FROM accounts WHERE account = ?",
            (account,),
        ).fetchone()
        return adm.News(*row) if row else adm.News()

    def _started(self, db: Any, run: RunInfo) -> float:
        row = db.execute("SELECT started FROM runs WHERE run = ?", (run.run,)).fetchone()
        return float(row[0]) if row else 0.0

    def take_request(self, run: RunInfo) -> Granted:
        lim = run.limits
        with self._tx(run.account) as db:
            now = self._now()
            window.prune(db, run.account, now - max(KEEP_REQUESTS_S, 2 * lim.window_s))
            since = now - lim.window_s
            count = window.count(db, run.account, lim.window_s, now)
            frees = None
            if count >= lim.rate_limit:
                frees = db.execute(
                    "SELECT t FROM requests WHERE account = ? AND t > ? ORDER BY t "
                    "LIMIT 1 OFFSET ?",
                    (run.account, since, count - lim.rate_limit),
                ).fetchone()[0]
            wait = adm.request_wait_counted(now, count, frees, lim, self._news(db, run.account))
            if wait > 0:
                return Granted(wait=wait)
            window.taken(db, run.account, now)
            return Granted(slot=0)

    def reserve_slot(self, run: RunInfo) -> Granted:
        with self._tx(run.account) as db:
            now = self._now()
            news = self._news(db, run.account)
            stopped = adm.stopped_for(self._started(db, run), news)
            if stopped is not None:
                return Granted(stopped=stopped)
            self._lapse_reservations(db, run.account, now)
            (taken,) = db.execute(
                "SELECT count(*) FROM slots WHERE account = ?", (run.account,)
            ).fetchone()
            if not adm.slot_free(now, taken, run.limits, news):
                return Granted(wait=-1.0)
            (slot,) = db.execute(
                "INSERT INTO slots (account, run, reserved_at) VALUES (?, ?, ?) RETURNING id",
                (run.account, run.run, now),
            ).fetchone()
            return Granted(slot=int(slot))

    def _lapse_reservations(self, db: Any, account: str, now: float) -> None:
        rows = db.execute(
            "SELECT slots.id, slots.reserved_at, runs.run, runs.pid, runs.host, runs.state_path,"
            " runs.heartbeat, runs.ended FROM slots LEFT JOIN runs ON runs.run = slots.run "
            "WHERE slots.account = ? AND slots.task_id IS NULL AND slots.reserved_at < ?",
            (account, now - self.hold_s),
        ).fetchall()
        for sid, reserved_at, owner, pid, host, state, beat, ended in rows:
            dead = owner is None or self._dead(now, pid, host, state, beat, ended)
            if adm.reservation_lapsed(now, reserved_at, dead, self.hold_s):
                db.execute("DELETE FROM slots WHERE id = ?", (sid,))

    def _dead(
        self, now: float, pid: int, host: str, state: str, beat: float, ended: float | None
    ) -> bool:
        held = None
        if host == self.host:
            held = holder_of(state) == pid
        return adm.run_dead(
            now=now, heartbeat=beat, ended=ended, stale_s=self.stale_s, lock_held=held
        )

    def created(self, run: RunInfo, slot: int, task_id: str, model: str) -> None:
        with self._tx(run.account) as db:
            db.execute(
                "UPDATE slots SET task_id = ?, model = ?, created = ? WHERE id = ?",
                (task_id, model, self._now(), slot),
            )

    def unreserve(self, run: RunInfo, slot: int) -> None:
        with self._tx(run.account) as db:
            db.execute("DELETE FROM slots WHERE id = ? AND task_id IS NULL", (slot,))

    def ended(self, run: RunInfo, task_id: str) -> None:
        with self._tx(run.account) as db:
            db.execute(
                "DELETE FROM slots WHERE account = ? AND task_id = ?", (run.account, task_id)
            )

    # -- tasks of dead runs ----------------------------------------------------------------

    def own_tasks(self, run: RunInfo, tasks: list[tuple[str, str, float]]) -> None:
        """The state file's tasks in flight are this run's: recorded if unknown (made while
        the database was off), taken back from a dead run's row otherwise."""
        with self._tx(run.account) as db:
            now = self._now()
            for task_id, model, created in tasks:
                cur = db.execute(
                    "UPDATE slots SET run = ?, poller = NULL WHERE account = ? AND task_id = ?",
                    (run.run, run.account, task_id),
                )
                if cur.rowcount == 0:
                    db.execute(
                        "INSERT INTO slots (account, run, task_id, model, reserved_at, created)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (run.account, run.run, task_id, model, now, created),
                    )

    def claim_orphans(self, run: RunInfo) -> list[TaskRef]:
        """Tasks of dead runs that no living run polls: this run polls them now (never
        resubmits them; the dead run's state file collects their results)."""
        with self._tx(run.account) as db:
            now = self._now()
            rows = db.execute(
                "SELECT slots.id, slots.task_id, slots.model, slots.created, slots.run, "
                "slots.poller, runs.pid, runs.host, runs.state_path, runs.heartbeat, runs.ended "
                "FROM slots LEFT JOIN runs ON runs.run = slots.run "
                "WHERE slots.account = ? AND slots.task_id IS NOT NULL AND slots.run != ?",
                (run.account, run.run),
            ).fetchall()
            living: dict[str, bool] = {}
            claimed = []
            for sid, task_id, model, created, owner, poller, pid, host, state, beat, ended in rows:
                if owner not in living:
                    living[owner] = pid is not None and not self._dead(
                        now, pid, host, state, beat, ended
                    )
                if living[owner]:
                    continue
                if poller is not None and poller != run.run and self._alive(db, now, poller):
                    continue
                db.execute("UPDATE slots SET poller = ? WHERE id = ?", (run.run, sid))
                claimed.append(TaskRef(task_id, model or "", created or now, owner))
            return claimed

    def _alive(self, db: Any, now: float, run: str) -> bool:
        row = db.execute(
            "SELECT pid, host, state_path, heartbeat, ended FROM runs WHERE run = ?", (run,)
        ).fetchone()
        return row is not None and not self._dead(now, *row)

    def still_polling(self, run: RunInfo, task_id: str) -> bool:
        with self._tx(run.account) as db:
            row = db.execute(
                "SELECT poller FROM slots WHERE account = ? AND task_id = ?",
                (run.account, task_id),
            ).fetchone()
            return row is not None and row[0] == run.run

    # -- shared news -----------------------------------------------------------------------

    def post_pause(self, run: RunInfo, seconds: float, why: str) -> None:
        with self._tx(run.account) as db:
            until = self._now() + max(0.0, seconds)
            db.execute(
                "UPDATE accounts SET paused_until = ?, pause_why = ? "
                "WHERE account = ? AND paused_until < ?",
                (until, why, run.account, until),
            )

    def post_stop(self, run: RunInfo, why: str) -> None:
        with self._tx(run.account) as db:
            db.execute(
                "UPDATE accounts SET stopped_at = ?, stopped_why = ? WHERE account = ?",
                (self._now(), why, run.account),
            )

    def post_learned(self, run: RunInfo) -> int:
        """A concurrency 429: the account's tasks now are its cap, for every run."""
        with self._tx(run.account) as db:
            (tasks,) = db.execute(
                "SELECT count(*) FROM slots WHERE account = ? AND task_id IS NOT NULL",
                (run.account,),
            ).fetchone()
            cap = max(1, int(tasks))
            db.execute(
                "UPDATE accounts SET learned_cap = ?, learned_at = ? WHERE account = ?",
                (cap, self._now(), run.account),
            )
            return cap

    def news(self, run: RunInfo) -> adm.News:
        with self._tx(run.account) as db:
            return self._news(db, run.account)

    def listing(self) -> list[dict[str, object]]:
        """Every account with its runs (living or not), slots and tasks, for `accounts`."""
        with self._tx(None) as db:
            now = self._now()
            out: list[dict[str, object]] = []
            for account, label, paused, why, stopped_why in db.execute(
                "SELECT account, label, paused_until, pause_why, stopped_why FROM accounts "
                "ORDER BY account"
            ).fetchall():
                runs = []
                for r in db.execute(
                    "SELECT run, pid, host, state_path, heartbeat, ended, max_in_flight, "
                    "rate_limit, window_s FROM runs WHERE account = ? ORDER BY started",
                    (account,),
                ).fetchall():
                    dead = self._dead(now, r[1], r[2], r[3], r[4], r[5])
                    if dead and r[5] is not None:
                        continue
                    runs.append(
                        {
                            "run": r[0],
                            "pid": r[1],
                            "host": r[2],
                            "state": r[3],
                            "alive": not dead,
                            "max_in_flight": r[6],
                            "rate": f"{r[7]}/{r[8]:g}s",
                        }
                    )
                tasks = db.execute(
                    "SELECT task_id, model, created, slots.run, poller, runs.state_path "
                    "FROM slots LEFT JOIN runs ON runs.run = slots.run "
                    "WHERE slots.account = ? AND task_id IS NOT NULL ORDER BY created",
                    (account,),
                ).fetchall()
                (reserved,) = db.execute(
                    "SELECT count(*) FROM slots WHERE account = ? AND task_id IS NULL",
                    (account,),
                ).fetchone()
                (recent,) = db.execute(
                    "SELECT count(*) FROM requests WHERE account = ? AND t > ?",
                    (account, now - 60.0),
                ).fetchone()
                out.append(
                    {
                        "account": account,
                        "label": label,
                        "runs": runs,
                        "tasks": [
                            {
                                "task_id": t[0],
                                "model": t[1],
                                "created": t[2],
                                "run": t[3],
                                "poller": t[4],
                                "state": t[5],
                            }
                            for t in tasks
                        ],
                        "reserved": reserved,
                        "requests_last_60s": recent,
                        "paused_for": max(0.0, paused - now),
                        "pause_why": why,
                        "stopped": stopped_why,
                    }
                )
            return out
