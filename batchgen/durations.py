"""Durations as people write them, read one way for the command line, manifests and the
Python API: '5', '0.05', '500ms', '2m', '1h', '7d' -> seconds."""

from __future__ import annotations

_UNITS = (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0), ("d", 86400.0))


def parse_duration(text: str) -> float:
    """Seconds in `text`; ValueError with a message fit to show as it is."""
    t = str(text).strip().lower()
    for suffix, factor in _UNITS:
        if t.endswith(suffix) and t[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(t[: -len(suffix)]) * factor
    try:
        value = float(t)
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (try 5, 0.5, 500ms, 55m)") from None
    if not value >= 0:
        raise ValueError(f"a duration must be >= 0, got {text!r}")
    return value
