"""The spend cap's arithmetic, pure: integers of micro-dollars in, decisions out.

The ledger (batchgen/store/ledger.py) keeps one row per submit that may have created a task, with
the price reserved for it; `spent` below is their sum (less refunds seen). A row is written
in the same transaction as the job's intent, before the POST, and removed only when the
answer proves no task was made. So after a crash every submit that might have cost money is
counted, and `fits` over that sum bounds what can ever be spent.
"""

from __future__ import annotations

from collections.abc import Iterable

from batchgen.money.prices import usd

NEAR_CAP_PRICES = 3
"""The balance is read again (refunds may have freed room) only once the room left under the
cap is under this many prices of the next job: reads stay rare."""


def fits(spent: int, price: int, cap: int | None) -> bool:
    """May a submit priced `price` go out, given everything reserved or spent so far?"""
    return cap is None or spent + price <= cap


def near_cap(spent: int, price: int, cap: int | None) -> bool:
    return cap is not None and cap - spent < NEAR_CAP_PRICES * price


def affordable(prices: Iterable[int], money: int) -> int:
    """How many of these submits, in order, fit in `money`."""
    n = 0
    for price in prices:
        if price > money:
            break
        money -= price
        n += 1
    return n


def refunds_seen(expected_drop: int, observed_drop: int, refundable: list[int]) -> list[int]:
    """Which refundable attempts (their prices, in order) a balance that dropped less than our
    charges explains. Only a surplus that refunds alone can explain counts: one larger than all
    refundable prices together is a top-up (or someone else's doing), and counts for nothing,
    so a refund can never be imagined into room under the cap. Returns indexes."""
    surplus = expected_drop - observed_drop
    if surplus <= 0 or surplus > sum(refundable) + 5_000:  # half a cent of rounding
        return []
    chosen = []
    for i, price in enumerate(refundable):
        if price <= surplus + 5_000:
            chosen.append(i)
            surplus -= price
        if surplus <= 5_000:
            break
    return chosen


LEFT_SHOWN = 5  # jobs named in a stop message; the rest are counted


def _left(left: list[tuple[str, int]]) -> str:
    shown = ", ".join(f"{job} ({usd(price)})" for job, price in left[:LEFT_SHOWN])
    more = f" and {len(left) - LEFT_SHOWN} more" if len(left) > LEFT_SHOWN else ""
    return f"{len(left)} job(s) did not fit and stay pending: {shown}{more}"


def cap_stop_message(spent: int, cap: int, left: list[tuple[str, int]]) -> str:
    """The jobs the cap left (id, price): the cheaper ones after them went on."""
    return (
        f"spend cap reached: {usd(spent)} of {usd(cap)} spent or reserved by this state file; "
        f"{_left(left)} (jobs that fit went on; tasks already created are collected). "
        f"Raise it with --max-spend (or budget: max_spend: in the manifest) and run again"
    )


def balance_stop_message(spent: int, allowed: int, left: list[tuple[str, int]]) -> str:
    """At the limit the balance sets (not a cap the user chose): the fix is to add funds."""
    return (
        f"the balance allows no more: {usd(spent)} spent or reserved by this state file, up "
        f"to {usd(allowed)} the balance allows; {_left(left)} (jobs that fit went on; tasks "
        f"already created are collected). Add funds to the account and run again"
    )
