"""Learning prices from the balance, and the few balance reads a run makes.

The first submit of each price class goes out alone (no other submit in flight: `SubmitGate`),
with the balance read right before and right after: the drop is the class's price. Every
other balance read is at the start and the end of a run, and when the room left under a cap
gets small (refunds may have freed some). So a batch costs about two reads per price class
plus a handful, whatever its size.

What it cannot see: another process spending from the same key, or a refund landing, between
the two reads of a learning submit. A drop of zero or less teaches nothing (the table stays).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

from batchgen.money.prices import MICROS, usd
from batchgen.money.spending import Spending

log = logging.getLogger("batchgen.money.pricing")


class SubmitGate:
    """Many submits at once (shared), or one alone (exclusive). A waiting exclusive turn
    holds back new shared ones, so it is not starved."""

    def __init__(self) -> None:
        self.shared_now = 0
        self.exclusive_now = False
        self.wanting = 0
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _until(self, ok: Callable[[], bool]) -> None:
        while not ok():
            await self._changed.wait()

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        await self._until(lambda: not self.exclusive_now and not self.wanting)
        self.shared_now += 1
        try:
            yield
        finally:
            self.shared_now -= 1
            self._notify()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        self.wanting += 1
        try:
            await self._until(lambda: not self.exclusive_now and self.shared_now == 0)
        finally:
            self.wanting -= 1
        self.exclusive_now = True
        try:
            yield
        finally:
            self.exclusive_now = False
            self._notify()


@dataclass
class Ticket:
    key: str
    before: int | None = None  # the balance read right before a learning submit


class Pricing:
    def __init__(
        self, spending: Spending, read_balance: Callable[[], Awaitable[Decimal]], *, learn: bool
    ) -> None:
        self.spending = spending
        self._read = read_balance
        self.learn = learn
        self.gate = SubmitGate()
        self.settled: set[str] = set(spending.book.learned)
        self._locks: dict[str, asyncio.Lock] = {}
        self.reads = 0
        self.last_balance: int | None = None
        self.unreadable: str | None = None  # why the balance could not be read, said once

    async def balance(self) -> int | None:
        """Read the balance (micro-dollars) and remember it in the state file; None when it
        cannot be read (an older server, an error): then the cap and the estimates go by the
        price table, and the run says so once."""
        self.reads += 1
        try:
            amount = await self._read()
        except Exception as exc:
            if self.unreadable is None:
                self.unreadable = str(exc) or type(exc).__name__
                log.warning(
                    "the balance cannot be read (%s): prices are not learned; the spend cap "
                    "and the estimates use the price table",
                    self.unreadable,
                )
            return None
        micros = int((amount * MICROS).to_integral_value())
        self.last_balance = micros
        self.spending.store.set_meta_many(
            {"balance_micros": str(micros), "balance_at": str(self.spending.store.now())}
        )
        return micros

    @contextlib.asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[Ticket | None]:
        """Hold the submit gate for one job's submit: alone, with the balance read before,
        when its class's price is still to be learned (the ticket); shared otherwise (None)."""
        if self.learn and self.unreadable is None and key not in self.settled:
            lock = self._locks.setdefault(key, asyncio.Lock())
            async with lock:
                if key not in self.settled and self.unreadable is None:
                    async with self.gate.exclusive():
                        before = await self.balance()
                        if before is None:
                            yield None
                            return
                        yield Ticket(key, before)
                        return
        async with self.gate.shared():
            yield None

    async def after(self, ticket: Ticket, seq: int) -> None:
        """The learning submit made its task (its id is committed): read the balance again,
        still alone, and learn the class's price from the drop."""
        self.settled.add(ticket.key)
        after = await self.balance()
        if after is None or ticket.before is None:
            return
        drop = ticket.before - after
        if drop <= 0:
            log.warning(
                "the balance did not drop at the first submit of %s (before %s, after %s): "
                "its price is not learned; using %s",
                ticket.key,
                usd(ticket.before),
                usd(after),
                usd(self.spending.book.price(ticket.key)),
            )
            return
        self.spending.learned(ticket.key, drop, seq)
