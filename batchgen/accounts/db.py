"""The account database's protocol: what a run asks of it, whatever the engine behind it.

Every method is one short transaction, serialised per account (SQLite: BEGIN IMMEDIATE;
PostgreSQL: an advisory lock). Implementations are synchronous; `asyncdb.AsyncAccountDb` runs
them off the event loop. Any failure to reach the database raises `AccountDbError`: callers
fail closed (no submit), never guess."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from batchgen.accounts.admission import Limits, News


class AccountDbError(Exception):
    """The account database cannot be reached or used: no submit may go."""


@dataclass(frozen=True)
class RunInfo:
    """One run as the database knows it (never the key)."""

    run: str
    account: str
    label: str
    pid: int
    host: str
    state_path: str
    limits: Limits


@dataclass(frozen=True)
class TaskRef:
    """A task at the provider holding one of the account's slots."""

    task_id: str
    model: str
    created: float
    run: str


@dataclass(frozen=True)
class Granted:
    """An admission's answer: `slot` (a reservation's id) when granted, else the seconds to
    wait before asking again (`wait`), or why the account is stopped (`stopped`)."""

    slot: int | None = None
    wait: float = 0.0
    stopped: str | None = None


class AccountDb(Protocol):
    """One account database (SQLite file or PostgreSQL server)."""

    def register(self, run: RunInfo) -> None: ...
    def heartbeat(self, run: RunInfo) -> None: ...
    def end_run(self, run: RunInfo) -> None: ...
    def take_request(self, run: RunInfo) -> Granted: ...
    def reserve_slot(self, run: RunInfo) -> Granted: ...
    def created(self, run: RunInfo, slot: int, task_id: str, model: str) -> None: ...
    def unreserve(self, run: RunInfo, slot: int) -> None: ...
    def ended(self, run: RunInfo, task_id: str) -> None: ...
    def own_tasks(self, run: RunInfo, tasks: list[tuple[str, str, float]]) -> None: ...
    def claim_orphans(self, run: RunInfo) -> list[TaskRef]: ...
    def still_polling(self, run: RunInfo, task_id: str) -> bool: ...
    def post_pause(self, run: RunInfo, seconds: float, why: str) -> None: ...
    def post_stop(self, run: RunInfo, why: str) -> None: ...
    def post_learned(self, run: RunInfo) -> int: ...
    def news(self, run: RunInfo) -> News: ...
    def listing(self) -> list[dict[str, object]]: ...
    def close(self) -> None: ...
