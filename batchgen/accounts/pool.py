"""Several accounts in one run (`--accounts FILE`): which account takes a job, and which key
polls a task. The engine asks through engine/chooser.py; this module owns the answer.

Each account has its own client (its key, its own rate window) and its own in-flight cap
(with the account database on, the SharedLimiter and SharedCap of accounts/shared.py, so other
runs of that account are counted too). A submit goes to the live account with the most room
(the lowest share of its cap taken; ties: the one picked least), holding that account's slot
until the task is made (then the task holds it until it ends) or the submit made none.

A task is polled with the key of the account that made it: the pool maps task ids to accounts
as they are made, and reads the state file's record (store/jobaccounts.py) for tasks of
earlier runs. An account stopped (a revoked key, no balance, its own max_spend) takes no more
jobs; the others go on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal

from batchgen import store as st
from batchgen.accounts.accountsfile import AccountSpec
from batchgen.adapters.client import ApiClient
from batchgen.clock import Clock
from batchgen.engine.inflight import InFlightCap

log = logging.getLogger("batchgen.accounts")

RECHECK_S = 0.25
"""With every account's cap full, look again this often even if no task of this run ended:
another run of the account (the account database) may have freed a slot."""


@dataclass(eq=False)
class PooledAccount:
    """One account of the run: its name and limits (never its key), its client and cap."""

    spec: AccountSpec
    client: ApiClient
    cap: InFlightCap
    store: st.Store
    stopped: str | None = None  # why it takes no more jobs
    picks: int = 0  # submits it was given (a refused one too)
    made: int = 0  # tasks it made in this run
    tasks: set[str] = field(default_factory=set)  # this run's view of its tasks in flight

    @property
    def name(self) -> str:
        return self.spec.name

    def fits(self, price_micros: int) -> bool:
        """Whether a submit at this price stays under the account's own max_spend (what the
        state file's ledger says it spent, all runs, less refunds seen)."""
        cap = self.spec.max_spend_micros
        if cap is None:
            return True
        return self.store.accounts.spent_by(self.name) + price_micros <= cap

    def room(self) -> float:
        """The share of its cap taken: the pool gives a job to the account with the least."""
        return self.cap.in_flight / max(1, self.cap.limit)

    def __repr__(self) -> str:
        return (
            f"<PooledAccount {self.name} in_flight={self.cap.in_flight}/{self.cap.limit} "
            f"picks={self.picks} stopped={self.stopped!r}>"
        )


class AccountPool:
    """The run's accounts (engine/chooser.py's AccountChooser)."""

    def __init__(self, accounts: list[PooledAccount], store: st.Store) -> None:
        if not accounts:
            raise ValueError("an account pool needs at least one account")
        self.accounts = {a.name: a for a in accounts}
        self.store = store
        self.task_account: dict[str, str] = {}
        self.recheck_s = RECHECK_S
        self._changed = asyncio.Event()
        for row in store.jobs.in_state(st.IN_FLIGHT):
            name = store.accounts.of(row.seq)
            if row.task_id and name in self.accounts:
                self.task_account[row.task_id] = name
                self.accounts[name].tasks.add(row.task_id)
        for account in accounts:
            account.client.account_name = account.name
            account.client.tasks_in_flight = _tasks_of(account.cap)

    def __repr__(self) -> str:
        return f"<AccountPool {list(self.accounts.values())!r}>"

    @property
    def first_client(self) -> ApiClient:
        return next(iter(self.accounts.values())).client

    @property
    def total_cap(self) -> int:
        return sum(a.cap.cap for a in self.accounts.values())

    # -- submits ------------------------------------------------------------------------------

    async def take(
        self, stop: asyncio.Event, clock: Clock, wait: bool = True
    ) -> PooledAccount | None:
        while not stop.is_set():
            live = sorted(
                (a for a in self.accounts.values() if a.stopped is None),
                key=lambda a: (a.room(), a.picks),
            )
            if not live:
                return None
            for account in live:
                if account.stopped is None and account.cap.try_acquire():
                    account.picks += 1
                    return account
            if not wait:  # a cron run takes what is free now; the next run does the rest
                return None
            self._changed.clear()
            await _first_of(self._changed.wait(), stop.wait(), clock.sleep(self.recheck_s))
        return None

    def give_back(self, lease: PooledAccount) -> None:
        lease.cap.unreserve()
        self._changed.set()

    def created(self, lease: PooledAccount, task_id: str, model: str | None) -> None:
        lease.cap.created(task_id, model)
        lease.made += 1
        lease.tasks.add(task_id)
        self.task_account[task_id] = lease.name

    def ended(self, task_id: str) -> None:
        name = self.task_account.pop(task_id, None)
        account = self.accounts.get(name) if name is not None else None
        if account is None or task_id not in account.tasks:
            return
        account.tasks.discard(task_id)
        account.cap.release(task_id)
        self._changed.set()

    def adopted(self, seq: int, task_id: str, model: str | None) -> None:
        name = self.store.accounts.of(seq)
        account = self.accounts.get(name) if name is not None else None
        if account is not None and task_id not in account.tasks:
            account.cap.adopt(task_id=task_id, model=model)
            account.tasks.add(task_id)
            self.task_account[task_id] = account.name

    def saturated(self, lease: PooledAccount, now: float) -> None:
        lease.cap.saturated(now)

    # -- polls --------------------------------------------------------------------------------

    def client_for(self, seq: int, task_id: str | None) -> ApiClient:
        name = self.task_account.get(task_id) if task_id is not None else None
        if name is None:
            name = self.store.accounts.of(seq)
        if name is None or name not in self.accounts:
            # Checked before the run (missing_accounts): reaching here is a bug, and polling
            # with another account's key would be a wrong answer, not a slow one.
            raise KeyError(f"job {seq}: its task's account {name!r} is not in this run")
        return self.accounts[name].client

    async def balance(self) -> Decimal:
        """The balances of the accounts still taking jobs, together: what the run may still
        spend (each account's own shortfall is its 402, which stops that account only)."""
        live = [a for a in self.accounts.values() if a.stopped is None]
        amounts = await asyncio.gather(*(a.client.balance() for a in live))
        return sum(amounts, Decimal(0))

    def alive_answers(self) -> int:
        return sum(a.client.alive_answers for a in self.accounts.values())

    # -- stopping -----------------------------------------------------------------------------

    def stop(self, name: str, why: str, status: int = 0) -> bool:
        account = self.accounts[name]
        if account.stopped is not None:
            return False
        account.stopped = why
        if status in (401, 402, 403):
            account.cap.account_stopped(status, why)  # other runs of it hear (account DB)
        self._changed.set()
        return True

    def all_stopped(self) -> bool:
        return all(a.stopped is not None for a in self.accounts.values())

    def summary(self) -> list[str]:
        """One line per account for the run's summary: its tasks made, and why it stopped."""
        out = []
        for account in self.accounts.values():
            line = f"account {account.name}: {account.made} task(s) made in this run"
            if account.stopped:
                why = account.stopped.removeprefix(f"account {account.name}: ")
                line += f"; its submits stopped: {why}"
            out.append(line)
        return out


def missing_accounts(store: st.Store, names: set[str] | None) -> list[str]:
    """What a run over `names` (None: the run's one key) lacks to finish this state file:
    sentences naming each missing account (never a key); empty when nothing is missing."""
    needed = store.accounts.needed()
    recorded = [n for n in (store.get_meta("accounts") or "").split(",") if n]
    if names is None:
        if needed or recorded:
            shown = ", ".join(sorted(set(needed) | set(recorded)))
            return [f"this batch ran over accounts {shown}: give the same --accounts FILE"]
        return []
    out = [
        f"account {name} made {n} task(s) this batch still needs its key for, and the accounts "
        "file does not name it"
        for name, n in sorted(needed.items())
        if name not in names
    ]
    one_key = store.accounts.of_the_one_key()
    if one_key:
        out.append(
            f"{one_key} task(s) were made by the batch's one key (a run without --accounts): "
            "finish them with it first (resume without --accounts)"
        )
    return out


def _tasks_of(cap: InFlightCap) -> Callable[[], int]:
    """A 429 naming no limit is read against this account's own tasks (ApiClient)."""
    return lambda: cap.tasks


async def _first_of(*aws: Awaitable[object]) -> None:
    """Wait until the first of `aws` is done; cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
