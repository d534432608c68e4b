"""Learning prices from the balance, and the few balance reads a run makes.

The first submit of each price class goes out alone (no other submit in flight: `SubmitGate`),
with the balance read right before and right after: the drop is the class's price. Every
other balance read is at the start and the end of a run, and when the room left under a cap
gets small (refunds may have freed some). So a batch costs about two reads per price class
plus a handful, whatever its size.

Another client of the account (a colleague's script, a second run) may spend, or a refund may
land, between the two reads of a learning submit. A drop of zero or less teaches nothing, and
a drop more than PRICE_SANITY times away from the class's listed price is refused with a
warning and tried again on the class's next submit (LEARN_TRIES in all); within that bound a
stranger's charge can still skew a learned price, which the README says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

from batchgen.money.prices import MICROS, usd
from batchgen.money.spending import Spending

log = logging.getLogger("batchgen.money.pricing")


PRICE_SANITY = 3.0
"""A balance drop around a learning submit more than this many times away from the class's
listed price (the table, or the user's --price) is not taken as its price: other clients of
the account spent (or were refunded) between the two reads."""
LEARN_TRIES = 3  # observations of one class refused before learning gives up on it


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
        self.refused: Counter[str] = Counter()  # observations too far from the listed price

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

    def turn_would_wait(self, key: str) -> bool:
        """Whether `turn(key)` would wait now (another submit is learning a price, or one of
        this class is): the engine then gives back the job's in-flight slot while it waits, so
        the learning submit can always get one (issue 33: a learner refused by a 429 waited
        for a slot that the jobs waiting for it held)."""
        if self.learn and self.unreadable is None and key not in self.settled:
            lock = self._locks.get(key)
            if lock is not None and lock.locked():
                return True
            return self.gate.exclusive_now or self.gate.shared_now > 0
        return self.gate.exclusive_now or self.gate.wanting > 0

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
        listed = self.spending.book.listed(ticket.key)
        if listed and not listed / PRICE_SANITY <= drop <= listed * PRICE_SANITY:
            # Another client of the account (a colleague, another run) spent or was refunded
            # between the two reads: the drop is not this submit's price.
            self.refused[ticket.key] += 1
            again = self.refused[ticket.key] < LEARN_TRIES
            if again:
                self.settled.discard(ticket.key)  # the next submit of the class tries again
            if self.refused[ticket.key] == 1 or not again:
                log.warning(
                    "the balance dropped %s around the first submit of %s, more than %g times "
                    "away from its listed price %s: someone else on the account probably spent "
                    "meanwhile; not learned%s",
                    usd(drop),
                    ticket.key,
                    PRICE_SANITY,
                    usd(listed),
                    " (tried again with the next submit of that class)"
                    if again
                    else f" after {LEARN_TRIES} tries: the listed price is used",
                )
            return
        self.spending.learned(ticket.key, drop, seq)
