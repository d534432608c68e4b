"""What a task costs: a table per model, mode and duration, overridable, and learned prices.

Prices are not in APIXO's API. Each model spec's `prices` (batchgen/models) is batchgen's
estimate; a run learns the real price of each class from the balance (batchgen/money/pricing.py),
and a learned price wins. Money is integer micro-dollars (1 USD = 1,000,000), never floats:
sums of many prices stay exact.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from batchgen import models
from batchgen.core.usd import MICROS, to_micros
from batchgen.core.usd import usd as usd  # money/ and its callers name it here too
from batchgen.models import DEFAULT_MODEL


def table_prices(model: str) -> dict[tuple[str, int], int]:
    """The model spec's price table (batchgen/models: `prices`, "MODE:DURATION" -> USD, with
    per-mode and per-second prices expanded by ModelSpec.price_table), as micro-dollars by
    (mode, duration). A model without one has an empty table."""
    spec = models.find(model)
    out: dict[tuple[str, int], int] = {}
    for name, usd_text in (spec.price_table() if spec is not None else {}).items():
        mode, _, duration = str(name).rpartition(":")
        try:
            out[(mode, int(duration))] = to_micros(usd_text)
        except ValueError:
            continue  # a user's spec file with a bad entry: that class is unpriced
    return out


def price_key(model: str, mode: str | None, duration: int | None) -> str:
    """The price class of a job: `kling-2-1/pro-image-to-video/10s`."""
    return f"{model}/{mode or 'standard-image-to-video'}/{duration or 5}s"


PRICE_FORM = "MODEL/MODE:DURATION=USD, e.g. kling-2-5-turbo-pro/text-to-video:5=0.5"


def parse_key(text: str, model: str | None = DEFAULT_MODEL) -> str:
    """A price name, `MODEL/MODE:DURATION` (or a full key), or `MODE:DURATION` under `model`
    (a manifest's own model); `model` None: the model must be named. ValueError when the
    name is malformed or names no model, mode or duration batchgen knows: a price for no
    job's class would be ignored without a word."""
    text = text.strip()
    if text.endswith("s") and text.count("/") == 2:
        key = text
    else:
        head, sep, duration = text.rpartition(":")
        if not sep or not duration.strip().isdigit():
            raise ValueError(f"price name {text!r}: expected {PRICE_FORM}")
        owner, _, mode = head.rpartition("/")
        if not owner.strip() and model is None:
            raise ValueError(f"price name {text!r} needs its model: {PRICE_FORM}")
        key = price_key(owner.strip() or str(model), mode.strip(), int(duration))
    try:
        check_class(key)
    except ValueError as exc:
        raise ValueError(f"price name {text!r}: {exc} (the form: {PRICE_FORM})") from None
    return key


def check_class(key: str) -> None:
    """ValueError unless `key`'s model, mode and duration are ones a job can have."""
    model, mode, duration = _split(key)
    if models.find(model) is None:
        raise ValueError(f"unknown model {model!r}; known: {', '.join(models.known())}")
    modes, durations = job_classes(model)
    if modes and mode not in modes:
        raise ValueError(f"{model} has no mode {mode!r}; its modes: {', '.join(modes)}")
    if durations and duration not in durations:
        raise ValueError(
            f"{model} has no duration {duration}; its durations: "
            + ", ".join(str(d) for d in durations)
        )


def job_classes(model: str) -> tuple[list[str], list[int]]:
    """The modes and durations `model`'s request schema allows (its price table's when the
    schema does not list them)."""
    from batchgen.manifest.schema import request_schema

    try:
        fields = request_schema(model)["properties"]["input"]["properties"]
        modes = [str(m) for m in fields["mode"]["enum"]]
        durations = [int(d) for d in fields["duration"]["enum"]]
    except (KeyError, TypeError, ValueError, OSError):
        table = table_prices(model)
        modes = sorted({m for m, _ in table})
        durations = sorted({d for _, d in table})
    return modes, durations


@dataclass
class PriceBook:
    """The price of each class: learned > override > table; unknown classes are priced at
    the model's dearest known price (so a cap is never checked against too little)."""

    overrides: dict[str, int] = field(default_factory=dict)
    learned: dict[str, int] = field(default_factory=dict)

    def table(self, key: str) -> int | None:
        model, mode, duration = _split(key)
        return table_prices(model).get((mode, duration))

    def listed(self, key: str) -> int | None:
        """The price before learning: the override, else the table."""
        return self.overrides.get(key, self.table(key))

    def price(self, key: str) -> int:
        if key in self.learned:
            return self.learned[key]
        listed = self.listed(key)
        return listed if listed is not None else self.dearest(_split(key)[0])

    def source(self, key: str) -> str:
        if key in self.learned:
            return "learned"
        if key in self.overrides:
            return "manifest"
        return "table" if self.table(key) is not None else "unknown (dearest known)"

    def dearest(self, model: str) -> int:
        known = list(table_prices(model).values())
        known += [*self.overrides.values(), *self.learned.values()]
        if not known:
            known = [p for m in models.known() for p in table_prices(m).values()]
        return max(known, default=MICROS)


def _split(key: str) -> tuple[str, str, int]:
    model, mode, duration = key.split("/", 2)
    return model, mode, int(duration.rstrip("s") or 5)


def cost_by_mode(
    jobs: Iterable[tuple[str, str | None, int | None]], book: PriceBook | None = None
) -> dict[tuple[str, str], tuple[int, int]]:
    """(model, mode) -> (jobs, micro-dollars) for (model, mode, duration) triples."""
    book = book or PriceBook()
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for model, mode, duration in jobs:
        key = price_key(model, mode, duration)
        n, total = out.get((model, _split(key)[1]), (0, 0))
        out[(model, _split(key)[1])] = (n + 1, total + book.price(key))
    return out


def describe_costs(
    costs: dict[tuple[str, str], tuple[int, int]], unknown: Iterable[str] = ()
) -> list[str]:
    """Lines for people: the total, then one line per model and mode, then the models whose
    prices are not known (priced at the dearest known until a run learns them)."""
    total = sum(c for _, c in costs.values())
    lines = [f"estimated cost: {usd(total)} (price table; a run learns the real prices)"]
    for (model, mode), (n, micros) in sorted(costs.items()):
        lines.append(f"  {model} {mode}: {n} job{'s' if n != 1 else ''}, {usd(micros)}")
    unknown = sorted(set(unknown))
    if unknown:
        lines.append(
            f"  prices unknown for {', '.join(unknown)}: counted at the dearest known price; "
            "a run learns them from the balance"
        )
    return lines


def unknown_prices(
    jobs: Iterable[tuple[str, str | None, int | None]], book: PriceBook | None = None
) -> list[str]:
    """The models of these (model, mode, duration) classes whose price is neither in a table,
    nor given, nor learned: the estimate names them."""
    book = book or PriceBook()
    return sorted(
        {model for model, mode, duration in jobs
         if book.source(price_key(model, mode, duration)).startswith("unknown")}
    )  # fmt: skip
