"""The money options of `run` and `resume`: the spend cap, prices, --yes, resubmits.

The cap and price overrides given are recorded in the state file (batchgen/money/ reads
them back), so a cron rerun or `resume` keeps the same cap until it is raised (or removed
with `--max-spend none`).
"""

from __future__ import annotations

import argparse
from typing import Any

from batchgen.errors import UsageError
from batchgen.money.prices import PRICE_FORM, parse_key, to_micros
from batchgen.settings import TRANSIENT_CODES

NO_CAP = -1  # --max-spend none: remove a recorded cap


def _usd_or_none(text: str) -> int:
    if text.strip().lower() in ("none", "off", "unlimited"):
        return NO_CAP
    try:
        return to_micros(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; e.g. 50 or 12.50 (USD), or none") from None


def _price(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected {PRICE_FORM}; got {text!r}")
    return key, value


def _codes(text: str) -> tuple[str, ...]:
    if text.strip().lower() == "none":
        return ()
    return tuple(c.strip() for c in text.split(",") if c.strip())


def add_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("money")
    g.add_argument(
        "--max-spend",
        type=_usd_or_none,
        metavar="USD",
        help="never spend past USD with this state file, across all its runs (recorded: later "
        "runs keep it until raised; `none` removes it); at the cap submits stop, exit 5",
    )
    g.add_argument(
        "--yes",
        action="store_true",
        help="go ahead when the estimate for the jobs left exceeds the balance, spending up to "
        "the balance",
    )
    g.add_argument(
        "--price",
        type=_price,
        action="append",
        metavar="MODEL/MODE:DURATION=USD",
        help="the price of a class of jobs, over the built-in table (repeatable), e.g. "
        "kling-2-5-turbo-pro/text-to-video:5=0.5; a price learned from the balance still wins",
    )
    g.add_argument(
        "--no-learn-prices",
        action="store_true",
        help="do not learn prices from the balance (first submit of each class sent alone)",
    )
    g.add_argument(
        "--resubmit-codes",
        type=_codes,
        metavar="CODE,...",
        help="fail codes resubmitted automatically, `none` for none "
        f"(default: {','.join(TRANSIENT_CODES)})",
    )
    g.add_argument(
        "--max-resubmits",
        type=int,
        metavar="N",
        help="automatic resubmits per job after such failures in a row (default 2)",
    )


def fields(args: argparse.Namespace, model: str, budget: dict[str, Any] | None) -> dict[str, Any]:
    """RunOptions' money fields from the command line, then the manifest's `budget:` (the
    command wins); a field not given is left out, so RunOptions' default stands."""
    budget = budget or {}
    out: dict[str, Any] = {}
    cap = getattr(args, "max_spend", None)
    if cap is None and budget.get("max_spend") is not None:
        try:
            cap = to_micros(budget["max_spend"])
        except ValueError as exc:
            raise UsageError(f"budget.max_spend: {exc}") from None
    out["max_spend_micros"] = cap
    out["spend_past_balance"] = bool(getattr(args, "yes", False) or budget.get("yes") is True)
    overrides: dict[str, int] = {}
    for key, value in (budget.get("prices") or {}).items():
        overrides[_key(key, model, "budget.prices")] = _money(value, f"budget.prices.{key}")
    for key, value in getattr(args, "price", None) or []:
        overrides[_key(key, None, "--price")] = _money(value, f"--price {key}")
    out["price_overrides"] = overrides
    out["learn_prices"] = not getattr(args, "no_learn_prices", False)
    if getattr(args, "resubmit_codes", None) is not None:
        out["resubmit_codes"] = args.resubmit_codes
    if getattr(args, "max_resubmits", None) is not None:
        if args.max_resubmits < 0:
            raise UsageError("--max-resubmits must be 0 or more")
        out["max_resubmits"] = args.max_resubmits
    return out


def _key(text: Any, model: str | None, where: str) -> str:
    try:
        return parse_key(str(text), model)
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None


def _money(value: Any, where: str) -> int:
    try:
        return to_micros(value)
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None
