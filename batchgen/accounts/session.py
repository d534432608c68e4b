"""One run's link to its account database: open it, register the run and its tasks, build the
shared limiter and cap, say why submits stop when it cannot be reached, leave at the end.

With the database off (`--account-db none`, the sandbox) `join` returns None and the runner
builds the run's own limiter and cap as before."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable

from batchgen import store as st
from batchgen.accounts.admission import Limits
from batchgen.accounts.asyncdb import AsyncAccountDb
from batchgen.accounts.db import AccountDb, AccountDbError, RunInfo
from batchgen.accounts.identity import account_of, db_location, is_postgres
from batchgen.accounts.keeper import Keeper, Status
from batchgen.accounts.shared import SharedCap, SharedLimiter
from batchgen.adapters.client import ApiClient
from batchgen.adapters.limits import SlidingWindowLimiter
from batchgen.engine.context import RunContext
from batchgen.engine.inflight import InFlightCap
from batchgen.engine.stops import StopReason
from batchgen.errors import AccountError
from batchgen.settings import STUCK_PER_POLL_AFTER, Pace, RunOptions

log = logging.getLogger("batchgen.accounts")


def connect(
    location: str, *, clock_offset_s: float = 0.0, stale_s: float = 60.0, hold_s: float = 600.0
) -> AccountDb:
    """The database at `location`: a postgresql:// URL or an SQLite file. A run whose
    heartbeat is `stale_s` old is dead (on another machine); a dead run's unanswered submit
    holds its slot `hold_s` (its task, if any, has ended by then)."""
    if is_postgres(location):
        from batchgen.accounts.postgres import PostgresAccountDb  # optional: psycopg

        return PostgresAccountDb(
            location, clock_offset_s=clock_offset_s, stale_s=stale_s, hold_s=hold_s
        )
    from batchgen.accounts.sqlite import SqliteAccountDb

    return SqliteAccountDb(
        location, now=lambda: time.time() + clock_offset_s, stale_s=stale_s, hold_s=hold_s
    )


class AccountLink:
    """The run's account: `limiter` and `cap` to build the engine with, `keeper` to run
    beside it. `down` holds why submits may not go (the database cannot be reached)."""

    def __init__(self, account: AsyncAccountDb | None, down: str | None, opts: RunOptions):
        self.account = account
        self.down = down
        self.opts = opts
        self._stop_submits: Callable[[str], None] = lambda why: None
        self._account_stop: Callable[[str], None] = lambda why: None
        self.cap: SharedCap | None = None

    def __repr__(self) -> str:
        return f"<AccountLink {self.account!r} down={self.down!r}>"

    def limiter(self, period: float, margin: float) -> SlidingWindowLimiter:
        if self.account is None:
            return SlidingWindowLimiter(self.opts.limits.rate_limit, period, margin=margin)
        return SharedLimiter(
            self.opts.limits.rate_limit,
            period,
            margin=margin,
            account=self.account,
            on_unreachable=self.unreachable,
        )

    def make_cap(self, recovered: int) -> InFlightCap | None:
        if self.account is None:
            return None
        self.cap = SharedCap(
            self.opts.limits.max_in_flight,
            account=self.account,
            recovered=recovered,
            slow_start=not self.opts.timing.no_wait,
            recheck_s=self._every() / 4,
            on_unreachable=self.unreachable,
            on_stop=self.stopped_elsewhere,
        )
        self.cap.key_errors_shared = self.opts.accounts.account_name is None
        return self.cap

    def attach(self, run: RunContext, client: ApiClient) -> Keeper | None:
        """Bind the engine's acts (no submits without the account's word: exit 75; an
        account stopped by another run: exit 3) and return the keeper to run beside it."""

        def fail_closed(why: str) -> None:
            first = not run.stops.stopped_by(StopReason.ACCOUNT_DB)
            run.stops.stop_submitting(StopReason.ACCOUNT_DB, why)
            if first:
                log.error("%s", why)

        async def ended(task_id: str, model: str) -> bool:
            """Polled, never resubmitted: has this task of a dead run ended?"""
            return (await client.status(task_id, model=model or None)).terminal

        self.bind(fail_closed, lambda why: run.account_stop(AccountError(402, why)))
        return self.keeper(ended)

    def bind(
        self, stop_submits: Callable[[str], None], account_stop: Callable[[str], None]
    ) -> None:
        """The engine's acts: stop submitting (exit 75), stop for the account (exit 3)."""
        self._stop_submits = stop_submits
        self._account_stop = account_stop
        if self.down is not None:
            self.unreachable(self.down)

    def unreachable(self, why: str) -> None:
        """Fail closed: no submit without the account's word; polls and downloads go on."""
        self.down = why
        self._stop_submits(
            f"the account database cannot be reached ({why}): no new submits "
            "(tasks in flight are still polled and downloaded); run again"
        )

    def stopped_elsewhere(self, why: str) -> None:
        if self.cap is not None:
            self.cap.key_errors_shared = False  # heard, not seen: nothing to tell the others
        self._account_stop(f"another run of this account stopped: {why}")

    def _every(self) -> float:
        return heartbeat_every(self.opts)

    def keeper(self, ended: Status) -> Keeper | None:
        if self.account is None:
            return None
        return Keeper(
            self.account,
            ended,
            every_s=self._every(),
            poll_s=max(0.05, self.opts.timing.poll_every_s),
            on_unreachable=self.unreachable,
        )

    async def leave(self) -> None:
        if self.account is None:
            return
        try:
            await self.account.call(AccountDb.end_run)
        except AccountDbError as exc:
            log.warning("account database: could not record the run's end: %s", exc)
        self.account.close()


async def join(
    opts: RunOptions,
    store: st.Store,
    window_s: float,
    *,
    pace: Pace,
    tasks_of: str | None = None,
) -> AccountLink:
    """Register this run with its account's database, or say why it cannot (fail closed).
    `pace`: the run's durations, resolved once (a task is held as long as it may be stuck).
    `tasks_of`: with several accounts (accounts/pool.py), the one whose tasks these are."""
    location = db_location(opts.accounts.account_db)
    if location is None:
        return AccountLink(None, None, opts)
    info = run_info(opts, window_s)
    try:
        every = heartbeat_every(opts)
        db = connect(
            location,
            clock_offset_s=opts.accounts.account_clock_offset_s,
            stale_s=max(10 * every, 2.0),
            # a task's longest life, scaled with the run's times even when --stuck-after 0
            hold_s=pace.stuck_after_s or STUCK_PER_POLL_AFTER * pace.poll_after_s,
        )
    except AccountDbError as exc:
        log.error("%s", exc)
        return AccountLink(None, str(exc), opts)
    account = AsyncAccountDb(db, info)
    tasks = [
        (row.task_id, row.model, row.submitted_at or time.time())
        for row in store.jobs.in_state(st.IN_FLIGHT)
        if row.task_id and (tasks_of is None or store.accounts.of(row.seq) == tasks_of)
    ]
    try:
        await account.call(AccountDb.register)
        await account.call(AccountDb.own_tasks, tasks)
    except AccountDbError as exc:
        log.error("%s", exc)
        account.close()
        return AccountLink(None, str(exc), opts)
    log.info("account %s: sharing its limits through %s", info.label, _shown(location))
    return AccountLink(account, None, opts)


def heartbeat_every(opts: RunOptions) -> float:
    """How often a run says it lives and looks for dead runs' tasks: twice per poll interval,
    at most every 5 s."""
    if opts.accounts.account_every_s is not None:
        return opts.accounts.account_every_s
    return max(0.05, min(5.0, opts.timing.poll_every_s / 2))


def run_info(opts: RunOptions, window_s: float) -> RunInfo:
    """This run as the database knows it: never the key, only the account it makes."""
    acct = account_of(opts.api.base_url, opts.api.api_key, opts.accounts.account_name)
    return RunInfo(
        run=uuid.uuid4().hex[:16],
        account=acct.key,
        label=acct.label,
        pid=os.getpid(),
        host=socket.gethostname(),
        state_path=os.path.abspath(opts.files.state_path),
        limits=Limits(opts.limits.rate_limit, window_s, opts.limits.max_in_flight),
    )


def _shown(location: str) -> str:
    """A PostgreSQL URL without its password."""
    if is_postgres(location) and "@" in location:
        scheme, _, rest = location.partition("://")
        return f"{scheme}://…@{rest.rsplit('@', 1)[1]}"
    return location
