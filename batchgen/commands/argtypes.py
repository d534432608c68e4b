"""argparse types for durations, sizes, rates and backoff pairs: each turns a command-line
word into a value or an ArgumentTypeError whose text argparse shows as it is."""

from __future__ import annotations

import argparse

from batchgen.adapters.limits import parse_rate
from batchgen.durations import parse_duration


def seconds(text: str) -> float:
    """'5', '0.05', '500ms', '2m', '1h' -> seconds (batchgen.durations), as argparse wants."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def size(text: str) -> int:
    t = text.strip().upper().removesuffix("B")
    factor = 1
    for suffix, f in (("K", 1024), ("M", 1024**2), ("G", 1024**3), ("T", 1024**4)):
        if t.endswith(suffix):
            t, factor = t[:-1], f
            break
    try:
        return int(float(t) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 500M, 2G)") from None


def backoff(text: str) -> tuple[float, float]:
    try:
        base, cap = (seconds(x) for x in text.split(","))
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(
            f"--backoff takes BASE,CAP seconds, got {text!r} (e.g. 1,60)"
        ) from None
    if not 0 < base <= cap:
        raise argparse.ArgumentTypeError(f"--backoff needs 0 < BASE <= CAP, got {text!r}")
    return base, cap


def pause(text: str) -> tuple[float, float]:
    try:
        base, cap = (float(x) for x in text.split(","))
    except ValueError:
        base = cap = -1.0
    if not (0 < base <= cap < float("inf")):
        raise argparse.ArgumentTypeError(
            f"--rate-pause takes BASE,CAP seconds with 0 < BASE <= CAP, got {text!r}"
        )
    return base, cap


def rate(text: str) -> tuple[int, float]:
    try:
        return parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
