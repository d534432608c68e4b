"""The seam through which a run uses several accounts (`--accounts`): what the engine asks of
the pool that owns them (batchgen/accounts/pool.py), and nothing of how it decides.

- a submit `take`s a lease on an account with free capacity (its in-flight slot held), sends
  through the lease's client, and tells the pool how it went: `created` (the task is the
  account's until it `ended`), or `give_back` (no task, or one whose fate is unknown);
- a poll, a probe or a confirmation asks `client_for` the task's own account's client;
- an account-level answer (401/403/402) or its own spend cap stops that account only.

Without `--accounts` the run has no pool (`RunContext.pool` is None) and nothing changes."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from batchgen.adapters.client import ApiClient
    from batchgen.clock import Clock


class Lease(Protocol):
    """One submit's account: its name, its client, and whether a price fits its own cap."""

    name: str
    client: ApiClient

    def fits(self, price_micros: int) -> bool: ...


class AccountChooser(Protocol):
    """Which account takes a job, and which polls a task."""

    async def take(self, stop: asyncio.Event, clock: Clock, wait: bool = True) -> Lease | None:
        """An account with a free in-flight slot, waiting for one (unless not `wait`: a cron
        run); None once `stop` is set or every account has stopped."""
        ...

    def give_back(self, lease: Lease) -> None: ...

    def created(self, lease: Lease, task_id: str, model: str | None) -> None: ...

    def ended(self, task_id: str) -> None: ...

    def adopted(self, seq: int, task_id: str, model: str | None) -> None:
        """An ambiguous job's task, shown by its callback, is its account's (engine/adopt.py)."""
        ...

    def saturated(self, lease: Lease, now: float) -> None:
        """The account's cap is full at the provider (a concurrency 429)."""
        ...

    def client_for(self, seq: int, task_id: str | None) -> ApiClient:
        """The client of the account that made the job's task (KeyError: unknown account)."""
        ...

    def stop(self, name: str, why: str, status: int = 0) -> bool:
        """No more submits for account `name`; True the first time."""
        ...

    def all_stopped(self) -> bool: ...

    def alive_answers(self) -> int:
        """Answers in the API's own words over every account's client (the submit gate)."""
        ...
