"""Money as integer micro-dollars, and how an amount is written: below the store and money/,
so the ledger can show a price without importing the price table."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

MICROS = 1_000_000  # 1 USD; sums of many prices stay exact in integers


def to_micros(value: Any) -> int:
    """USD (a number or a numeric string) -> micro-dollars; ValueError when it is not money."""
    if isinstance(value, bool):
        raise ValueError(f"not an amount of USD: {value!r}")
    try:
        amount = Decimal(str(value).strip().lstrip("$"))
    except InvalidOperation:
        raise ValueError(f"not an amount of USD: {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"not an amount of USD: {value!r}")
    return int((amount * MICROS).to_integral_value())


def usd(micros: int | None) -> str:
    """$1.25, $0.0375: cents always, more digits only when they matter."""
    if micros is None:
        return "unknown"
    sign = "-" if micros < 0 else ""
    text = f"{abs(Decimal(micros) / MICROS):.6f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{sign}${whole}.{frac.ljust(2, '0')}"
