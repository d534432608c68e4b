"""A job's `matrix:` -> its combinations, by GitHub Actions' rules (pure, no I/O).

Users already know GitHub's rules, and its documentation has worked examples to test against:
- the product of the lists, in declaration order (the first variable varies slowest);
- `exclude` entries match partially: a combination holding every pair of an entry goes;
- `include` entries, after exclusion: an entry's pairs are added to every combination whose
  original values (the lists' variables) it does not contradict, and may overwrite values
  that earlier includes added; an entry that fits no combination becomes one of its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Value = str | int | float
Combination = dict[str, Value]

RESERVED = ("include", "exclude")


class MatrixTooBig(Exception):
    """More combinations than the cap: counted only as far as the cap, never all built."""

    def __init__(self, at_least: int) -> None:
        super().__init__(f"more than {at_least - 1} combinations")
        self.at_least = at_least


@dataclass(frozen=True, slots=True)
class Expansion:
    """The combinations of one matrix, and the order its variables were declared in."""

    combinations: list[Combination]
    variables: tuple[str, ...]  # the lists' variables, then include-only keys as first seen


def same(one: Any, two: Any) -> bool:
    """JSON equality for matrix values: 5 == 5.0, but True is not 1."""
    if isinstance(one, bool) or isinstance(two, bool):
        return one is two
    return bool(one == two)


def _matches(combo: Mapping[str, Any], entry: Mapping[str, Any]) -> bool:
    return all(k in combo and same(combo[k], v) for k, v in entry.items())


def product(lists: Mapping[str, list[Value]]) -> Iterator[Combination]:
    """Every combination of the lists, the first variable varying slowest (GitHub's order)."""
    names = list(lists)
    for values in itertools.product(*(lists[n] for n in names)):
        yield dict(zip(names, values, strict=True))


def expand(
    lists: Mapping[str, list[Value]],
    exclude: list[Mapping[str, Value]] = (),  # type: ignore[assignment]
    include: list[Mapping[str, Value]] = (),  # type: ignore[assignment]
    *,
    cap: int | None = None,
) -> Expansion:
    """The combinations of a matrix; MatrixTooBig once more than `cap` would be kept."""
    kept: list[Combination] = []
    if lists:
        for combo in product(lists):
            if any(_matches(combo, entry) for entry in exclude):
                continue
            kept.append(combo)
            if cap is not None and len(kept) > cap:
                raise MatrixTooBig(len(kept))
    original = set(lists)
    standalone: list[Combination] = []
    for entry in include:
        fitted = False
        for combo in kept:
            if all(same(combo[k], v) for k, v in entry.items() if k in original):
                combo.update(entry)
                fitted = True
        if not fitted:
            standalone.append(dict(entry))
            if cap is not None and len(kept) + len(standalone) > cap:
                raise MatrixTooBig(len(kept) + len(standalone))
    variables = dict.fromkeys(lists)
    for entry in include:
        variables.update(dict.fromkeys(entry))
    return Expansion(kept + standalone, tuple(variables))


def raw_size(lists: Mapping[str, list[Any]]) -> int:
    """How many combinations the lists make before exclusion (their product)."""
    size = 1
    for values in lists.values():
        size *= len(values)
    return size if lists else 0


def label(combo: Mapping[str, Any]) -> str:
    """`season=winter, aspect_ratio=16:9`: a combination as people read it in a message."""
    return ", ".join(f"{k}={v}" for k, v in combo.items())
