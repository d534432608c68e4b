"""The engine's money hooks in one place: the spend cap, price learning, and automatic
resubmits of what the provider calls transient.

The engine calls these at fixed points of a job's life (engine/submit.py's lifecycle and
submit, engine/track.py's finish), so the engine only says *when*; what is spent, reserved,
learned or resubmitted is decided here and in batchgen/money/spending.py,
batchgen/money/pricing.py and batchgen/money/budget.py.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from batchgen import store as st
from batchgen.models import DEFAULT_MODEL
from batchgen.money.prices import MICROS, usd
from batchgen.money.pricing import Pricing, Ticket
from batchgen.money.spending import OVER_ACCOUNT, OVER_CAP, Fits, Spending
from batchgen.settings import TRANSIENT_CODES
from batchgen.store import ledger

log = logging.getLogger("batchgen.money")

"""The fail codes APIXO's error pages call transient ("retry the request"). Content, prompt,
image and account codes are never resubmitted on their own."""


@dataclass(frozen=True)
class ResubmitPolicy:
    codes: frozenset[str] = frozenset(TRANSIENT_CODES)
    limit: int = 2  # resubmits per job after transient failures in a row


def should_resubmit(code: str | None, used: int, policy: ResubmitPolicy) -> bool:
    """Pure: a task failed with `code` after `used` resubmits in a row: submit it again?"""
    return code is not None and code in policy.codes and used < policy.limit


@dataclass
class Money:
    spending: Spending
    pricing: Pricing
    resubmit: ResubmitPolicy = field(default_factory=ResubmitPolicy)
    resubmitted: int = 0
    # For refunds seen in the balance (settle_refunds): the balance when this run started,
    # the attempts of this run that surely made a task, whether any may have (unknown), and
    # what was already credited.
    started_at: float = field(default_factory=time.time)
    start_balance: int | None = None
    created_now: set[tuple[int, int]] = field(default_factory=set)
    unknown_now: int = 0
    credited_now: int = 0
    _settled_with: int = -1  # refundable attempts at the last settlement
    over_account: bool = False  # the last reserve was refused by its account's own cap only

    @classmethod
    def build(
        cls,
        store: st.Store,
        read_balance: Callable[[], Awaitable[Decimal]] | None,
        *,
        cap: int | None = None,
        overrides: dict[str, int] | None = None,
        learn: bool = True,
        resubmit: ResubmitPolicy | None = None,
        model: str = DEFAULT_MODEL,
    ) -> Money:
        spending = Spending(store, cap=cap, model=model)
        spending.book.overrides.update(overrides or {})

        async def unreadable() -> Decimal:
            raise RuntimeError("no balance endpoint")

        pricing = Pricing(spending, read_balance or unreadable, learn=learn)
        return cls(spending, pricing, resubmit or ResubmitPolicy(), started_at=store.now())

    @property
    def stop_message(self) -> str | None:
        return self.spending.stop_message

    @contextlib.asynccontextmanager
    async def turn(self, row: st.JobRow) -> AsyncIterator[Ticket | None]:
        async with self.pricing.turn(self.spending.key_of(row)) as ticket:
            yield ticket

    def turn_would_wait(self, row: st.JobRow) -> bool:
        return self.pricing.turn_would_wait(self.spending.key_of(row))

    async def reserve(
        self, row: st.JobRow, account: str | None = None, fits: Fits | None = None
    ) -> bool | None:
        """The intent: True (recorded, send), None (the job is not pending), False (over the
        cap: nothing recorded; the job is left for the cap, or `over_account` when only the
        account's own cap, `fits`, refused it). At the cap, refunds the balance shows may free
        room: the balance is read then (once per new failed task)."""
        self.over_account = False
        n = self.spending.reserve(row, account, fits)
        if n == OVER_CAP and self.spending.halt is None and await self.settle_refunds():
            n = self.spending.reserve(row, account, fits)
        self.over_account = n == OVER_ACCOUNT
        if n in (OVER_CAP, OVER_ACCOUNT):
            return False
        return n is not None

    async def may_fit(self, row: st.JobRow) -> bool:
        """Before a job takes a slot: does its price fit under the cap now? A job that does
        not is left pending (Spending.left) and the run goes on with the jobs after it; at
        the cap, refunds the balance shows may free room first."""
        if self.spending.fits(row):
            return True
        if self.spending.halt is None and await self.settle_refunds():
            return self.spending.fits(row)
        return False

    @property
    def halted(self) -> bool:
        """Nothing may be submitted at all (the estimate exceeds the balance, no --yes)."""
        return self.spending.halt is not None

    def release(self, seq: int) -> None:
        self.spending.release(seq)

    def created(self, seq: int) -> None:
        """The submit made a task (its id is committed): its price is surely charged."""
        got = self.spending.on_wire(seq)
        if got is not None:
            self.created_now.add((seq, got[0]))
        self.spending.sent(seq)

    def sent(self, seq: int) -> None:
        """The submit may or may not have made a task: its price stays counted."""
        if self.spending.on_wire(seq) is not None:
            self.unknown_now += 1
        self.spending.sent(seq)

    async def settle_refunds(self) -> int:
        """Credit the refunds of failed tasks that the balance shows (budget.refunds_seen):
        the balance dropped less, since this run started, than the tasks it surely made cost.
        Never when a submit of this run may have made a task unknown to it (its charge would
        look like no refund), nor without a balance at the start. Returns micro-dollars."""
        if self.start_balance is None or self.unknown_now:
            return 0
        refundable = self.spending.store.ledger.refundable(self.started_at)
        if not refundable or len(refundable) == self._settled_with:
            return 0
        self._settled_with = len(refundable)
        now = await self.pricing.balance()
        if now is None:
            return 0
        expected = self.spending.store.ledger.prices_of(self.created_now, self.started_at)
        observed = self.start_balance - now
        credited = self.spending.refunds(expected - self.credited_now, observed, self.started_at)
        self.credited_now += credited
        return credited

    async def finish_run(self) -> int | None:
        """Run end: refunds seen, and the balance as the run leaves it."""
        await self.settle_refunds()
        return await self.pricing.balance()

    async def after(self, ticket: Ticket | None, seq: int) -> None:
        if ticket is not None:
            await self.pricing.after(ticket, seq)

    def finished(self, row: st.JobRow, task_id: str | None, code: str | None, message: str) -> bool:
        """The job's task ended. True: it failed transiently and went back to pending for a
        resubmit (the caller must not record it failed)."""
        if code is None:
            self.spending.store.ledger.finish(row.seq, task_id, ledger.SUCCEEDED)
            return False
        used = self.spending.store.ledger.trailing_resubmits(row.seq)
        if not should_resubmit(code, used, self.resubmit):
            self.spending.store.ledger.finish(row.seq, task_id, ledger.FAILED, code, message)
            return False
        note = f"resubmitted after {code} (resubmit {used + 1} of {self.resubmit.limit})"
        if not resubmit_job(self.spending.store, row.seq, task_id, code, message, note):
            return False
        self.resubmitted += 1
        log.info("%s: task failed %s (transient): %s", row.id, code, note)
        return True

    def summary(self) -> str:
        s = self.spending
        parts = [f"spent by this state file: {usd(s.total)}"]
        if s.user_cap is not None:  # no cap given: none shown (not "cap $0.00")
            parts.append(f"cap {usd(s.user_cap)}")
        if s.balance_limits and s.cap is not None:
            parts.append(f"limited by the balance to {usd(s.cap)}")
        if self.pricing.last_balance is not None:
            parts.append(f"balance {usd(self.pricing.last_balance)}")
        elif self.pricing.unreadable is not None:
            parts.append("balance unreadable: spend counted from the price table")
        return "; ".join(parts)


def resubmit_job(
    store: st.Store, seq: int, task_id: str | None, code: str, message: str, note: str
) -> bool:
    """One transaction: the attempt ends `resubmitted`, the job goes back to pending without
    its task (a new intent, a new reservation, the same no-double-charge rules)."""
    return store.moves.resubmit(seq, note, task_id=task_id, code=code, message=message)


async def before_spending(money: Money, go_ahead: bool) -> None:
    """Run start: read the balance and say what is left to spend. When the estimate for the
    jobs still pending exceeds the balance, nothing is submitted unless `go_ahead` (--yes):
    then the run spends up to the balance (a cap at what it allows), never into a 402."""
    s = money.spending
    s.store.ledger.clear_budget_notes()
    balance = money.start_balance = await money.pricing.balance()
    estimate = s.estimate_pending()
    shown = usd(balance) if balance is not None else "unreadable"
    log.info(
        "balance %s; estimate for the jobs left %s; spent so far by this state file %s%s",
        shown,
        usd(estimate),
        usd(s.total),
        f"; cap {usd(s.cap)}" if s.cap is not None else "",
    )
    unknown = s.unknown_pending()
    if unknown:
        log.info(
            "prices unknown for %s: estimated at the dearest known price until the balance "
            "shows them",
            ", ".join(unknown),
        )
    if balance is None or estimate <= balance:
        return
    allowed = s.total + balance
    if go_ahead:
        log.warning(
            "the estimate for the jobs left (%s) exceeds the balance (%s): going ahead, as "
            "asked, up to what the balance allows",
            usd(estimate),
            usd(balance),
        )
        s.cap = allowed if s.cap is None else min(s.cap, allowed)
        return
    s.cap = s.total  # nothing new goes out; tasks in flight are still collected
    s.stop_message = (
        f"the estimate for the jobs left ({usd(estimate)}) exceeds the balance "
        f"({usd(balance)}): nothing submitted. Add funds, or run again with --yes (or "
        "budget: {yes: true} in the manifest) to spend up to the balance"
    )


def recorded_settings(
    store: st.Store, cap: int | None, overrides: dict[str, int]
) -> tuple[int | None, dict[str, int]]:
    """The cap and price overrides in force: those given now (then recorded), else those
    recorded by an earlier run, so a cron rerun or `resume` keeps the cap until it is raised.
    A negative cap (`--max-spend none`) removes the recorded one."""
    if cap is not None and cap < 0:
        store.set_meta_many({"max_spend_micros": ""})
        cap = None
    elif cap is not None:
        store.set_meta_many({"max_spend_micros": str(cap)})
    else:
        text = store.get_meta("max_spend_micros") or ""
        cap = int(text) if text.isdigit() else None
    if overrides:
        store.set_meta_many({"price_overrides": json.dumps(overrides, sort_keys=True)})
    else:
        try:
            saved = json.loads(store.get_meta("price_overrides") or "{}")
        except ValueError:
            saved = {}
        if isinstance(saved, dict):
            overrides = {str(k): int(v) for k, v in saved.items() if isinstance(v, int)}
    return cap, overrides


def status_info(store: st.Store) -> dict[str, object]:
    """For `batchgen status`: the balance seen last, the spend so far, the estimate for what is
    left, the cap, and the learned prices (read-only)."""
    balance = store.get_meta("balance_micros")
    seen = store.get_meta("balance_at")
    cap = store.get_meta("max_spend_micros") or ""
    spending = Spending(store, cap=int(cap) if cap.isdigit() else None)
    try:
        saved = json.loads(store.get_meta("price_overrides") or "{}")
    except ValueError:
        saved = {}
    if isinstance(saved, dict):
        spending.book.overrides.update({str(k): int(v) for k, v in saved.items()})
    return {
        "balance_usd": dollars(int(balance)) if balance and balance.lstrip("-").isdigit() else None,
        "balance_seen_at": _iso(float(seen)) if seen else None,
        "spent_usd": dollars(spending.total),
        "estimate_left_usd": dollars(spending.estimate_pending()),
        "cap_usd": dollars(spending.cap) if spending.cap is not None else None,
        "learned_prices_usd": {k: dollars(v) for k, v in sorted(spending.book.learned.items())},
    }


def dollars(micros: int) -> float:
    """USD as a JSON number (status --json): 6.3, not "$6.30"; exact to the micro-dollar."""
    return round(micros / MICROS, 6)


def _iso(ts: float) -> str:
    """A Unix time as ISO 8601 in UTC, as `status --json` gives every other time."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def render_status(info: dict[str, object]) -> list[str]:
    def shown(value: object) -> str:
        return usd(round(float(value) * MICROS)) if isinstance(value, int | float) else "?"

    cap = f", cap {shown(info['cap_usd'])}" if info["cap_usd"] is not None else ""
    balance = shown(info["balance_usd"]) if info["balance_usd"] is not None else "not read yet"
    lines = [
        f"money: spent {shown(info['spent_usd'])}{cap}; estimate for the jobs left "
        f"{shown(info['estimate_left_usd'])}; balance seen last {balance}"
    ]
    learned = info["learned_prices_usd"]
    if isinstance(learned, dict) and learned:
        lines.append(
            "  learned prices: " + ", ".join(f"{k} {shown(v)}" for k, v in learned.items())
        )
    return lines
