"""What a run does for its account besides admission: a heartbeat (so other machines see it
lives), and polling the tasks of dead runs until they end, which frees their slots.

Those tasks are never resubmitted and their results never taken: the dead run's state file
owns the jobs and collects them when it resumes (then it takes the tasks back and this run
stops polling them)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from batchgen.accounts.asyncdb import AsyncAccountDb
from batchgen.accounts.db import AccountDb, AccountDbError, TaskRef
from batchgen.errors import NotFound

log = logging.getLogger("batchgen.accounts")

Status = Callable[[str, str], Awaitable[bool]]
"""(task id, model) -> whether the task has ended (success or failed)."""

NOT_FOUND_ENDS = 5
"""Answers "not found" in a row that end a task for the account (as the engine's tracker)."""


class Keeper:
    """The heartbeat and the pollers of adopted tasks for one run."""

    def __init__(
        self,
        account: AsyncAccountDb,
        ended: Status,
        *,
        every_s: float,
        poll_s: float,
        on_unreachable: Callable[[str], None],
    ) -> None:
        self.account = account
        self.ended = ended
        self.every_s = every_s
        self.poll_s = poll_s
        self.on_unreachable = on_unreachable
        self.polling: dict[str, asyncio.Task[None]] = {}
        self.adopted: list[str] = []
        """Every task of a dead run this run polled (tests, the summary)."""
        self.freed = 0

    def __repr__(self) -> str:
        return (
            f"<Keeper polling={len(self.polling)} adopted={len(self.adopted)} freed={self.freed}>"
        )

    async def run(self) -> None:
        """Until cancelled: heartbeat, claim the tasks of dead runs, poll each to its end."""
        try:
            while True:
                try:
                    await self.account.call(AccountDb.heartbeat)
                    claimed = await self.account.call(AccountDb.claim_orphans)
                    fresh = [ref for ref in claimed if ref.task_id not in self.polling]
                    if fresh:
                        log.warning(
                            "polling %d task(s) of run(s) %s, which is no longer running, until "
                            "they end: their slots are the account's (never resubmitted; their "
                            "own state file collects the results)",
                            len(fresh),
                            ", ".join(sorted({ref.run for ref in fresh})),
                        )
                    for ref in fresh:
                        self._follow(ref)
                except AccountDbError as exc:
                    self.on_unreachable(str(exc))
                await asyncio.sleep(self.every_s)
        finally:
            for task in self.polling.values():
                task.cancel()
            for task in list(self.polling.values()):
                with contextlib.suppress(BaseException):
                    await task

    def _follow(self, ref: TaskRef) -> None:
        log.debug("polling task %s of run %s until it ends", ref.task_id, ref.run)
        self.adopted.append(ref.task_id)
        task = asyncio.get_running_loop().create_task(self._poll(ref))
        self.polling[ref.task_id] = task
        task.add_done_callback(lambda _: self.polling.pop(ref.task_id, None))

    async def _poll(self, ref: TaskRef) -> None:
        not_found = 0
        while True:
            try:
                if not await self.account.call(AccountDb.still_polling, ref.task_id):
                    return  # its own run took it back
            except AccountDbError:
                return  # the loop above says so
            try:
                ended = await self.ended(ref.task_id, ref.model)
                not_found = 0
            except NotFound as exc:
                not_found += 1
                ended = exc.envelope and not_found >= NOT_FOUND_ENDS
            except Exception as exc:  # unreadable: the task stays counted, asked again later
                log.debug("task %s of a dead run: status unreadable: %s", ref.task_id, exc)
                ended = False
            if ended:
                with contextlib.suppress(AccountDbError):
                    await self.account.call(AccountDb.ended, ref.task_id)
                    self.freed += 1
                return
            await asyncio.sleep(self.poll_s)
