"""The simulated account: a balance in USD, a price per model, mode and duration, 402 when the
balance is below a submit's price, and (an option) refunds of failed tasks.

Choices where the reference is silent (documented for clients and tests):
- A task is charged when it is created (the submit's answer), at its full price.
- With `refund_failed`, a task that fails is refunded at the moment its status shows `failed`
  (lazily: the balance is settled whenever it is read or a submit is priced).
- With no `--balance` the account holds UNLIMITED_USD: effectively unlimited, yet the balance
  still drops with every task, so a client can learn prices from it.
- The balance endpoint answers `data` as a JSON number with at most 4 decimals (74.87).
"""

from __future__ import annotations

import heapq
from decimal import Decimal, InvalidOperation
from typing import Any

from batchgen import models

UNLIMITED_USD = Decimal("1000000")
DEFAULT_MODEL = "kling-2-1"

# USD per task by (model, mode, duration). Prices are not in the API: the simulator's are
# batchgen's own table (each model spec's `prices`, batchgen/models), for every model it
# serves, so a sandbox run learns exactly what batchgen lists and warns of no mismatch.


def default_prices() -> dict[tuple[str, str, int], Decimal]:
    """Every known model's price table (read when a Billing is made: a model registered at
    run time, BATCHGEN_MODEL_SPECS, has its prices too)."""
    out: dict[tuple[str, str, int], Decimal] = {}
    for model in models.known():
        spec = models.find(model)
        for name, usd in ((spec.prices or {}) if spec is not None else {}).items():
            mode, _, duration = str(name).rpartition(":")
            try:
                out[(model, mode, int(duration))] = Decimal(str(usd))
            except (ValueError, InvalidOperation):
                continue  # a user's spec with a bad entry: that class gets FALLBACK_PRICE
    return out


DEFAULT_PRICES: dict[tuple[str, str, int], Decimal] = default_prices()  # the built-in models'
FALLBACK_PRICE = Decimal("0.50")  # a mode or duration the table does not name


def parse_prices(text: str) -> dict[tuple[str, str, int], Decimal]:
    """`MODE:DURATION=USD[,...]`, or `MODEL/MODE:DURATION=USD`: `pro-image-to-video:10=1.1`."""
    out: dict[tuple[str, str, int], Decimal] = {}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        try:
            key, usd = item.split("=", 1)
            mode, duration = key.rsplit(":", 1)
            model, _, mode = mode.rpartition("/")
            price = Decimal(usd.strip())
            if not price.is_finite() or price < 0:
                raise ValueError
            out[(model.strip() or DEFAULT_MODEL, mode.strip(), int(duration))] = price
        except (ValueError, InvalidOperation):
            raise ValueError(f"bad price {item!r}: expected MODE:DURATION=USD") from None
    return out


def body_class(body: dict[str, Any], model: str = DEFAULT_MODEL) -> tuple[str, str, int]:
    inp = body.get("input") if isinstance(body.get("input"), dict) else {}
    duration = inp.get("duration", 5)
    try:
        duration = int(duration)
    except (TypeError, ValueError):
        duration = 5
    return (model, str(inp.get("mode") or "standard-image-to-video"), duration)


def documented_price(cls: tuple[str, str, int]) -> Decimal | None:
    """The price APIXO's pages state for a class (veo-3-1: per video), if they state one: a
    faithful simulator charges it. Estimates in a spec (Kling) are batchgen's, not APIXO's."""
    spec = models.find(cls[0])
    if spec is None or not spec.price_note.startswith("documented"):
        return None
    usd = spec.price_table().get(f"{cls[1]}:{cls[2]}")
    return Decimal(usd) if usd is not None else None


class Billing:
    def __init__(self, balance: float | None, prices: str, refund_failed: bool) -> None:
        self.balance = UNLIMITED_USD if balance is None else Decimal(str(balance))
        self.prices = {**default_prices(), **parse_prices(prices)}
        self.refund_failed = refund_failed
        self.charged = Decimal(0)
        self.refunded = Decimal(0)
        self.payment_refused = 0
        self._refunds: list[tuple[float, str, Decimal]] = []  # (fails at, task id, price)

    def price(self, body: dict[str, Any], model: str = DEFAULT_MODEL) -> Decimal:
        cls = body_class(body, model)
        return self.prices.get(cls) or documented_price(cls) or FALLBACK_PRICE

    def can_pay(self, body: dict[str, Any], now: float, model: str = DEFAULT_MODEL) -> bool:
        self.settle(now)
        if self.balance >= self.price(body, model):
            return True
        self.payment_refused += 1
        return False

    def charge(
        self, task_id: str, body: dict[str, Any], fails_at: float | None, model: str = DEFAULT_MODEL
    ) -> None:
        price = self.price(body, model)
        self.balance -= price
        self.charged += price
        if self.refund_failed and fails_at is not None:
            heapq.heappush(self._refunds, (fails_at, task_id, price))

    def settle(self, now: float) -> None:
        """Refund the failed tasks whose failure is visible by `now`."""
        while self._refunds and self._refunds[0][0] <= now:
            _, _, price = heapq.heappop(self._refunds)
            self.balance += price
            self.refunded += price

    def current(self, now: float) -> float:
        """The balance as the endpoint shows it: a JSON number, 4 decimals at most."""
        self.settle(now)
        return float(self.balance.quantize(Decimal("0.0001")))

    def summary(self, now: float) -> dict[str, Any]:
        return {
            "balance": self.current(now),
            "charged": float(self.charged),
            "refunded": float(self.refunded),
            "payment_refused": self.payment_refused,
        }
