"""An account database used from the event loop: every call runs, in order, on one thread of
its own, so a busy database (another process's transaction) never blocks the run's loop, and
calls a run fires without waiting for them (a task's end, a pause) still happen in order."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from batchgen.accounts.db import AccountDb, AccountDbError, RunInfo

log = logging.getLogger("batchgen.accounts")
T = TypeVar("T")


class AsyncAccountDb:
    """`db` for one run (`info`). `call` waits for the answer; `fire` does not (errors are
    logged once and counted: the next admission finds the database down and fails closed)."""

    def __init__(self, db: AccountDb, info: RunInfo) -> None:
        self.db = db
        self.info = info
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="accounts")
        self.calls = 0
        self.failures = 0

    def __repr__(self) -> str:
        return f"<AsyncAccountDb {self.db!r} run={self.info.run} calls={self.calls}>"

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """`fn` is a method of the protocol (`AccountDb.reserve_slot`): this database's own
        is called, with this run, on the database's thread."""
        self.calls += 1
        return self._pool.submit(getattr(self.db, fn.__name__), self.info, *args)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.wrap_future(self.submit(fn, *args))

    def call_now(self, fn: Callable[..., T], *args: Any) -> T:
        """Blocking, for the few synchronous paths (a cron run's slot check)."""
        return self.submit(fn, *args).result()

    def fire(self, fn: Callable[..., Any], *args: Any) -> None:
        fut = self.submit(fn, *args)
        fut.add_done_callback(self._logged)

    def _logged(self, fut: concurrent.futures.Future[Any]) -> None:
        exc = fut.exception()
        if exc is not None:
            self.failures += 1
            if self.failures == 1:
                log.error("account database: %s", exc)

    def close(self) -> None:
        """Finish what was fired, then close the database."""
        self._pool.submit(self.db.close)
        self._pool.shutdown(wait=True)


__all__ = ["AccountDbError", "AsyncAccountDb"]
