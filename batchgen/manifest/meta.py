"""A job's `meta:`: a flat map of names to strings or numbers, carried to the state file, the
report, the file names and the gallery. The names must be usable as `{name}` in a file-name
template, so they are identifiers, and never one of the template's own placeholders."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from batchgen.manifest.placeholders import NAME

RESERVED = ("id", "index", "task_id")
"""Names the file-name template already gives a meaning (batchgen/adapters/paths.py)."""

Meta = dict[str, str | int | float]


def name_problem(name: Any) -> str | None:
    """Why `name` cannot be a meta key or a matrix variable (None: it can)."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        return f"{name!r} is not a name: use letters, digits and '_', not starting with a digit"
    if name in RESERVED:
        return f"{name!r} is reserved for the file-name template; choose another name"
    return None


def clean(raw: Any, report: Callable[[tuple, str], None]) -> Meta:
    """The usable pairs of a job's `meta:`; every other pair reported at (key path, message).
    Values that are not strings or numbers are left to the manifest schema to name."""
    out: Meta = {}
    if not isinstance(raw, dict):
        return out
    for key, value in raw.items():
        problem = name_problem(key)
        if problem is not None:
            report((key,), problem)
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            out[key] = value
    return out
