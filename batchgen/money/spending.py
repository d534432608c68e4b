"""The run's money: prices, the cap, and the ledger rows of submits on the wire.

The engine asks `reserve(row)` inside its intent (right before a POST) and tells the outcome:
`release` (no task was made), `sent` (a task id, or an unknown outcome: the row stays). The
check against the cap and the ledger row are one step on the event loop (no await between
them) and one transaction in the state file, so submits racing each other, or a SIGKILL at
any instant, can never take the total past the cap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from batchgen import store as st
from batchgen.money import budget
from batchgen.money.prices import DEFAULT_MODEL, PriceBook, price_key, usd
from batchgen.store import views

log = logging.getLogger("batchgen.money.spending")

OVER_CAP = -1  # reserve(): the job's price does not fit under the cap
OVER_ACCOUNT = -2  # reserve(): nor under its account's own cap (accounts/pool.py)
Fits = Callable[[int], bool]  # does this price fit under an account's cap?


@dataclass
class Spending:
    store: st.Store
    cap: int | None = None  # micro-dollars; None: no cap
    book: PriceBook = field(default_factory=PriceBook)
    model: str = DEFAULT_MODEL
    total: int = 0  # spent or reserved by this state file, all runs, less refunds seen
    # Set when nothing may go out at all (money.before_spending: the estimate exceeds the
    # balance, no --yes); a job that merely does not fit is `left` instead, and later jobs
    # that fit still go (issue 26: a $2.00 job must not strand the $0.25 ones after it).
    halt: str | None = None
    left: dict[int, tuple[str, int]] = field(default_factory=dict)  # seq -> (job id, price)
    # Called when money under the cap was freed (a released reservation, a refund, a learned
    # price lower than the one counted) while jobs are left: the engine looks at them again.
    on_room: Callable[[], None] | None = None
    _on_wire: dict[int, tuple[int, int]] = field(default_factory=dict)  # seq -> (n, price)
    # The user's cap (--max-spend), as `cap` was given; `cap` may then be lowered to what the
    # balance allows (money.before_spending), and a stop there is not the user's cap's doing.
    user_cap: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.book.learned.update(self.store.ledger.learned_prices())
        self.total = self.store.ledger.spent()
        self.user_cap = self.cap

    @property
    def balance_limits(self) -> bool:
        """True when the balance, not the user's cap, sets how much may be spent."""
        return self.cap is not None and (self.user_cap is None or self.cap < self.user_cap)

    def __repr__(self) -> str:
        cap = usd(self.cap) if self.cap is not None else "none"
        return f"<Spending total={usd(self.total)} cap={cap} on_wire={len(self._on_wire)}>"

    @property
    def stop_message(self) -> str | None:
        """Why jobs stay pending for money: a halt, else the jobs left by the cap (in
        manifest order)."""
        if self.halt is not None or not self.left or self.cap is None:
            return self.halt
        stop = budget.balance_stop_message if self.balance_limits else budget.cap_stop_message
        return stop(self.total, self.cap, [self.left[seq] for seq in sorted(self.left)])

    @stop_message.setter
    def stop_message(self, value: str | None) -> None:
        self.halt = value

    def fits(self, row: st.JobRow) -> bool:
        """Would the job's price fit under the cap now (reservations on the wire counted)?
        When not, the job is recorded as left, with its price, for the run's summary."""
        price = self.price_of(row)
        if self.halt is None and budget.fits(self.total, price, self.cap):
            return True
        self.left[row.seq] = (row.id, price)
        return False

    def left_note(self, seq: int) -> str | None:
        """The note of one job left by the cap: its price against the room left."""
        got = self.left.get(seq)
        if got is None or self.cap is None:
            return None
        room = max(0, self.cap - self.total)
        limit = "the balance allows" if self.balance_limits else "the spend cap leaves"
        return f"costs {usd(got[1])}, {limit} {usd(room)} (of {usd(self.cap)})"

    def _room(self) -> None:
        if self.left and self.on_room is not None:
            self.on_room()

    def key_of(self, row: st.JobRow) -> str:
        return price_key(getattr(row, "model", None) or self.model, row.mode, row.duration)

    def price_of(self, row: st.JobRow) -> int:
        return self.book.price(self.key_of(row))

    def reserve(
        self, row: st.JobRow, account: str | None = None, fits: Fits | None = None
    ) -> int | None:
        """The intent with its reservation, sent by `account` (None: the run's one key). n of
        the attempt; None if the job is no longer pending; OVER_CAP (nothing written) if its
        price does not fit under the cap (the job is then `left`); OVER_ACCOUNT if
        `fits(price)` says it does not fit under the account's own cap (checked here, with no
        await before the write)."""
        price = self.price_of(row)
        if fits is not None and not fits(price):
            return OVER_ACCOUNT
        if not self.fits(row):
            return OVER_CAP
        n = self.store.ledger.next_n(row.seq)
        attempt = (n, self.key_of(row), price)
        named = {"account": account} if account is not None else {}  # the run's key: NULL
        if not self.store.moves.mark_submitting(row.seq, attempt, **named):
            return None
        self.left.pop(row.seq, None)
        self.total += price
        self._on_wire[row.seq] = (n, price)
        return n

    def release(self, seq: int) -> None:
        """The POST surely made no task: its reservation goes (the job is pending again)."""
        got = self._on_wire.pop(seq, None)
        if got is not None:
            self.store.ledger.release(seq, got[0])
            self.total -= got[1]
            self._room()

    def sent(self, seq: int) -> None:
        """A task exists, or may: the reservation stays, as spent."""
        self._on_wire.pop(seq, None)

    def on_wire(self, seq: int) -> tuple[int, int] | None:
        return self._on_wire.get(seq)

    def learned(self, key: str, micros: int, seq: int | None = None) -> None:
        """A price learned from the balance: it wins over the table, with a warning when they
        differ. The learning attempt's reservation becomes its real price."""
        listed = self.book.listed(key)
        if listed is not None and listed != micros:
            log.warning(
                "price of %s learned from the balance: %s, not %s as listed; using %s",
                key,
                usd(micros),
                usd(listed),
                usd(micros),
            )
        else:
            log.info("price of %s learned from the balance: %s", key, usd(micros))
        self.book.learned[key] = micros
        self.store.ledger.save_learned(key, micros)
        got = self._on_wire.get(seq) if seq is not None else None
        if seq is not None:
            n, old = got if got is not None else (self._last_n(seq), None)
            if old is None:
                old = self._price_of_attempt(seq, n)
            if n is not None and old is not None:
                self.store.ledger.reprice(seq, n, micros)
                self.total += micros - old
        if listed is None or micros < listed:  # jobs left at a dearer estimate may fit now
            self._room()

    def _last_n(self, seq: int) -> int | None:
        rows = self.store.ledger.attempts(seq)
        return rows[-1].n if rows else None

    def _price_of_attempt(self, seq: int, n: int | None) -> int | None:
        for a in self.store.ledger.attempts(seq):
            if a.n == n:
                return a.price_micros
        return None

    def near_cap(self, price: int) -> bool:
        return budget.near_cap(self.total, price, self.cap)

    def refunds(self, expected_drop: int, observed_drop: int, since: float) -> int:
        """Credit refunds a balance reading explains (budget.refunds_seen), among attempts
        that failed since `since`. Returns micro-dollars."""
        candidates = self.store.ledger.refundable(since)
        chosen = budget.refunds_seen(expected_drop, observed_drop, [c[2] for c in candidates])
        if not chosen:
            return 0
        self.store.ledger.mark_refunded([(candidates[i][0], candidates[i][1]) for i in chosen])
        amount = sum(candidates[i][2] for i in chosen)
        self.total -= amount
        self._room()
        log.info("refunds seen in the balance: %s for %d failed task(s)", usd(amount), len(chosen))
        return amount

    def unknown_pending(self) -> list[str]:
        """The models of pending jobs with no known price (estimated at the dearest known
        until the balance teaches it): the run start names them."""
        out = set()
        for model, mode, duration, _ in views.pending_by_price(self.store.db):
            key = price_key(model or self.model, mode, duration)
            if self.book.source(key).startswith("unknown"):
                out.add(model or self.model)
        return sorted(out)

    def estimate_pending(self) -> int:
        """What the jobs still pending would cost at today's prices."""
        total = 0
        for model, mode, duration, n in views.pending_by_price(self.store.db):
            total += n * self.book.price(price_key(model or self.model, mode, duration))
        return total
