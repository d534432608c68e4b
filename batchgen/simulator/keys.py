"""Keys with accounts of their own: a test hook for runs that use several keys at once.

By default the simulator is one account: every accepted key (`api_keys`) shares one rate
window, one concurrency cap and one balance. A key added here is its own account, as two
APIXO keys of two accounts are: its own window (`rate_limit` per the simulator's period), its
own in-flight cap, its own balance (unlimited unless given), and its tasks are its own
(another key polling them gets 404, as for a task the account never made). `revoke` makes
the key answer 401 (invalid key) or 403 (the key lacks permission), as the provider's docs
list them.

`log` records (label, endpoint, task id) for every request a key made, by its label, never
the key: the tests read from it that each task was polled only with its creator's key."""

from __future__ import annotations

from dataclasses import dataclass, field

from batchgen.simulator.billing import Billing
from batchgen.simulator.ratelimit import SlidingWindow


@dataclass
class KeyAccount:
    """One key's account: its limits, what it made, whether it was revoked."""

    label: str
    window: SlidingWindow | None = None  # None: the simulator's shared window
    max_in_flight: int | None = None  # None: the simulator's shared cap
    billing: Billing | None = None  # its own balance (unlimited unless given)
    revoked: int | None = None  # the status a revoked key gets (401 or 403)
    revoke_at: tuple[int, int] | None = None  # (after this many submits, that status)
    tasks: list[tuple[str, float]] = field(default_factory=list)  # (task id, its end)
    submits: int = 0
    max_in_flight_seen: int = 0

    def in_flight(self, now: float) -> int:
        self.tasks = [(t, end) for t, end in self.tasks if end > now]
        return len(self.tasks)


class Keys:
    """The keys with accounts of their own, and who made which task."""

    def __init__(self, period_s: float, prices: str = "", refund_failed: bool = False) -> None:
        self.period_s = period_s
        self.prices = prices
        self.refund_failed = refund_failed
        self.accounts: dict[str, KeyAccount] = {}
        self.owner: dict[str, str] = {}  # task id -> the key that made it
        self.log: list[tuple[str, str, str | None]] = []  # (label, endpoint, task id)

    def __contains__(self, key: str) -> bool:
        return key in self.accounts

    def __repr__(self) -> str:
        return f"<Keys {sorted(a.label for a in self.accounts.values())} tasks={len(self.owner)}>"

    def add(
        self,
        key: str,
        *,
        label: str | None = None,
        rate_limit: int | None = None,
        max_in_flight: int | None = None,
        balance: float | None = None,
    ) -> KeyAccount:
        """Accept `key` as an account of its own: its own balance (`balance` USD, or
        unlimited), and its own window and cap when given (else the simulator's)."""
        account = KeyAccount(
            label=label or f"key{len(self.accounts) + 1}",
            window=SlidingWindow(rate_limit, self.period_s) if rate_limit else None,
            max_in_flight=max_in_flight,
            billing=Billing(balance, self.prices, self.refund_failed),  # None: unlimited
        )
        self.accounts[key] = account
        return account

    def revoke(self, key: str, status: int = 401, *, after_submits: int = 0) -> None:
        """The key is refused, 401 (invalid key) or 403 (no permission): from now on, or once
        it has made `after_submits` more tasks (a revocation mid-run, without timing)."""
        if status not in (401, 403):
            raise ValueError("a revoked key answers 401 or 403")
        account = self.accounts[key]
        if after_submits > 0:
            account.revoke_at = (account.submits + after_submits, status)
        else:
            account.revoked = status

    def refusal(self, key: str) -> tuple[int, str] | None:
        account = self.accounts.get(key)
        if account is None or account.revoked is None:
            return None
        if account.revoked == 403:
            return 403, "Forbidden: this API key lacks permission"
        return 401, "Invalid API key (revoked)"

    def window(self, key: str) -> SlidingWindow | None:
        account = self.accounts.get(key)
        return account.window if account is not None else None

    def billing(self, key: str) -> Billing | None:
        account = self.accounts.get(key)
        return account.billing if account is not None else None

    def cap_full(self, key: str, now: float) -> int | None:
        """The key's own cap when its tasks in flight fill it; None: room (or no own cap)."""
        account = self.accounts.get(key)
        if account is None or account.max_in_flight is None:
            return None
        return account.max_in_flight if account.in_flight(now) >= account.max_in_flight else None

    def created(self, key: str, task_id: str, ends: float, now: float) -> None:
        self.owner[task_id] = key
        account = self.accounts.get(key)
        if account is not None:
            account.submits += 1
            account.tasks.append((task_id, ends))
            if account.revoke_at is not None and account.submits >= account.revoke_at[0]:
                account.revoked, account.revoke_at = account.revoke_at[1], None
            account.max_in_flight_seen = max(account.max_in_flight_seen, account.in_flight(now))

    def sees(self, key: str, task_id: str) -> bool:
        """A task is its maker's: another key with an account of its own gets 404 for it (and
        a key of the shared account does not see an own-account key's tasks)."""
        owner = self.owner.get(task_id)
        if owner is None or owner == key:
            return True
        return owner not in self.accounts and key not in self.accounts

    def summary(self, now: float) -> dict[str, dict[str, object]]:
        """Per key with an account of its own, by label: tasks made, the most in flight at
        once, requests it made, whether it is revoked."""
        out: dict[str, dict[str, object]] = {}
        for account in self.accounts.values():
            out[account.label] = {
                "tasks": account.submits,
                "in_flight": account.in_flight(now),
                "max_in_flight": account.max_in_flight_seen,
                "revoked": account.revoked,
                "requests": sum(1 for label, _, _ in self.log if label == account.label),
            }
        return out

    def record(self, key: str, endpoint: str, task_id: str | None) -> None:
        account = self.accounts.get(key)
        if account is not None:
            self.log.append((account.label, endpoint, task_id))

    def made_by(self, label: str) -> list[str]:
        """Task ids the key labelled `label` made."""
        return [t for t, k in self.owner.items() if self._label(k) == label]

    def _label(self, key: str) -> str | None:
        account = self.accounts.get(key)
        return account.label if account is not None else None


def parse_own_account(text: str) -> tuple[str, dict[str, int | float | str]]:
    """`simulate --own-account KEY[,label=NAME][,in_flight=N][,rate=N][,balance=USD]
    [,revoke_after=N][,revoke_status=401|403]` -> (key, options); ValueError when malformed."""
    key, *items = [part.strip() for part in text.split(",")]
    if not key or "=" in key:
        raise ValueError("--own-account starts with the key: KEY,in_flight=N,...")
    names = {"label": str, "in_flight": int, "rate": int, "balance": float}
    names |= {"revoke_after": int, "revoke_status": int}
    out: dict[str, int | float | str] = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in names or not value:
            raise ValueError(f"--own-account: unknown or empty {name!r} (use {', '.join(names)})")
        out[name] = names[name](value)
    return key, out


def add_own_account(keys: Keys, key: str, opts: dict[str, int | float | str]) -> None:
    """`--own-account` applied: the key with an account of its own, maybe revoked later."""
    keys.add(
        key,
        label=str(opts["label"]) if "label" in opts else None,
        rate_limit=int(opts["rate"]) if "rate" in opts else None,
        max_in_flight=int(opts["in_flight"]) if "in_flight" in opts else None,
        balance=float(opts["balance"]) if "balance" in opts else None,
    )
    if "revoke_after" in opts:
        status = int(opts.get("revoke_status", 401))
        keys.revoke(key, status, after_submits=max(1, int(opts["revoke_after"])))
