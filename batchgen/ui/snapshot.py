"""What a run looks like at one instant (Snapshot, read from the engine) and how it is shown:
the live block, the periodic line, the JSON event. Pure rendering: no stream, no clock."""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from batchgen.states import FINISHED as FINISHED_STATES
from batchgen.states import STATES, WORK_LEFT

RATE_HORIZON_S = 5.0  # requests/s and bytes/s over the last few seconds
ETA_HORIZON_S = 90.0  # completion rate over the last minute and a half

# States a job is still working through, and the ones where it has stopped (batchgen/states.py).
WORKING = tuple(s for s in STATES if s in WORK_LEFT)
FINISHED = tuple(s for s in STATES if s in FINISHED_STATES)
LABELS = {
    "pending": "pending",
    "submitting": "submitting",
    "in_flight": "in flight",
    "succeeded": "downloading",
    "done": "done",
    "failed": "failed",
    "ambiguous": "ambiguous",
    "orphaned": "orphaned",
    "expired": "expired",
    "cancelled": "cancelled",
}


@dataclass
class Snapshot:
    """One reading of the engine's figures; what every renderer draws."""

    elapsed_s: float
    counts: dict[str, int]
    in_flight: int
    cap: int
    requests_sent: int
    requests_in_window: int
    rate_limit: int
    rate_period_s: float
    requests_per_s: float | None
    downloaded_bytes: int
    bytes_per_s: float | None
    eta_s: float | None
    stopping: bool = False
    rate_limited: int = 0
    max_in_flight: int = 0  # the user's ceiling; `cap` is below it once 429s taught a lower one
    cap_learned: bool = False
    paused_until: str | None = None  # local time of day while a 429 pause holds every request
    paused_for_s: float | None = None
    pause_reason: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def finished(self) -> int:
        return sum(self.counts.get(s, 0) for s in FINISHED)

    @property
    def remaining(self) -> int:
        return sum(self.counts.get(s, 0) for s in WORKING)


class Meter:
    """Rate of a growing total over the last `horizon` seconds, from timed samples."""

    def __init__(self, horizon: float) -> None:
        self.horizon = horizon
        self._samples: deque[tuple[float, float]] = deque()

    def add(self, t: float, value: float) -> None:
        self._samples.append((t, value))
        while len(self._samples) > 2 and self._samples[1][0] <= t - self.horizon:
            self._samples.popleft()

    def rate(self) -> float | None:
        if len(self._samples) < 2:
            return None
        (t0, v0), (t1, v1) = self._samples[0], self._samples[-1]
        if t1 - t0 <= 0:
            return None
        return max(0.0, (v1 - v0) / (t1 - t0))


@dataclass
class Readings:
    """The meters of one run: fed a sample per tick, they turn totals into rates."""

    requests: Meter = field(default_factory=lambda: Meter(RATE_HORIZON_S))
    downloads: Meter = field(default_factory=lambda: Meter(RATE_HORIZON_S))
    finished: Meter = field(default_factory=lambda: Meter(ETA_HORIZON_S))


def read_engine(
    engine: Any,
    readings: Readings,
    now: float,
    counts: dict[str, int] | None = None,
) -> Snapshot:
    """A Snapshot of a live engine (duck-typed: stats, cap, client, store)."""
    stats = engine.stats
    limiter = getattr(engine.client, "_limiter", None)
    counts = dict(counts if counts is not None else engine.store.jobs.counts())
    sent = int(getattr(engine.client, "requests_sent", 0))
    readings.requests.add(now, sent)
    readings.downloads.add(now, stats.downloaded_bytes)
    finished = sum(counts.get(s, 0) for s in FINISHED)
    readings.finished.add(now, finished)
    remaining = sum(counts.get(s, 0) for s in WORKING)
    done_rate = readings.finished.rate()
    eta = None
    if remaining == 0:
        eta = 0.0
    elif done_rate:
        eta = remaining / done_rate
    cap = engine.cap
    learned = getattr(getattr(cap, "target", None), "learned", None) is not None
    pause = getattr(engine.client, "paused", None)
    wall = time.time()
    return Snapshot(
        elapsed_s=max(0.0, time.monotonic() - stats.started_at),
        counts=counts,
        # Tasks that exist: a job whose submit is waiting (refused by a 429) has none.
        in_flight=getattr(cap, "tasks", cap.in_flight),
        # The ceiling until a 429 taught a lower cap (the opening window is not a cap).
        cap=cap.limit if learned else cap.cap,
        requests_sent=sent,
        requests_in_window=limiter.in_window if limiter is not None else 0,
        rate_limit=limiter.limit if limiter is not None else 0,
        rate_period_s=limiter.period if limiter is not None else 0.0,
        requests_per_s=readings.requests.rate(),
        downloaded_bytes=stats.downloaded_bytes,
        bytes_per_s=readings.downloads.rate(),
        eta_s=eta,
        stopping=bool(getattr(engine, "stopping", False)),
        rate_limited=stats.rate_limited,
        max_in_flight=cap.cap,
        cap_learned=learned,
        paused_until=None if pause is None else fmt_clock(pause[0]),
        paused_for_s=None if pause is None else max(0.0, pause[0] - wall),
        pause_reason="" if pause is None else pause[1],
    )


# -- formatting ---------------------------------------------------------------------------------


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def fmt_clock(wall: float) -> str:
    """Local time of day, to the tenth of a second (a scaled run pauses for fractions)."""
    return time.strftime("%H:%M:%S", time.localtime(wall)) + f".{int((wall % 1) * 10)}"


def _cap_text(snap: Snapshot) -> str:
    if snap.cap_learned:
        learned = f"cap learned from 429s; max {snap.max_in_flight}"
        return f"{snap.in_flight}/{snap.cap} in flight ({learned})"
    return f"{snap.in_flight}/{snap.cap} in flight (cap)"


def _pause_text(snap: Snapshot) -> str:
    left = fmt_duration(snap.paused_for_s) if (snap.paused_for_s or 0) >= 1 else "<1s"
    return f"all requests until {snap.paused_until} ({left} left): {snap.pause_reason}"


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def fmt_rate(per_s: float | None) -> str:
    return "--" if per_s is None else f"{per_s:.1f}/s"


def _counts_text(counts: dict[str, int]) -> str:
    shown = [f"{LABELS[s]} {counts[s]}" for s in LABELS if counts.get(s)]
    return " · ".join(shown) or "no jobs"


def render_live(snap: Snapshot, width: int = 100) -> list[str]:
    """The terminal display, one string per line, each cut to `width`."""
    total = snap.total or 1
    frac = snap.finished / total
    bar_w = 24
    filled = int(frac * bar_w)
    head = "stopping: saving state" if snap.stopping else "running"
    allowed = snap.rate_limit / snap.rate_period_s if snap.rate_period_s else 0.0
    window_pct = 100.0 * snap.requests_in_window / snap.rate_limit if snap.rate_limit else 0.0
    lines = [
        f"batchgen  {head}  [{'#' * filled}{'.' * (bar_w - filled)}] "
        f"{snap.finished}/{snap.total} finished ({frac:.0%})  {fmt_duration(snap.elapsed_s)}",
        f"  jobs      {_counts_text(snap.counts)}",
        f"  tasks     {_cap_text(snap)}",
        f"  requests  {fmt_rate(snap.requests_per_s)} of {allowed:.1f}/s allowed · "
        f"{snap.requests_in_window}/{snap.rate_limit} in the {snap.rate_period_s:g}s window "
        f"({window_pct:.0f}%)" + (f" · 429s {snap.rate_limited}" if snap.rate_limited else ""),
        f"  download  {fmt_bytes(snap.bytes_per_s or 0)}/s · {fmt_bytes(snap.downloaded_bytes)} "
        "so far",
        f"  eta       {fmt_duration(snap.eta_s)} left",
    ]
    if snap.paused_until is not None:
        lines.insert(3, f"  paused    {_pause_text(snap)}")
    return [line[: max(10, width - 1)] for line in lines]


def render_line(snap: Snapshot) -> str:
    """The one-line summary for logs: stable keys, no escape codes."""
    c = snap.counts
    parts = [
        f"done {c.get('done', 0)}/{snap.total}",
        f"failed {c.get('failed', 0)}",
        f"ambiguous {c.get('ambiguous', 0)}",
        f"pending {c.get('pending', 0)}",
        f"in flight {snap.in_flight}/{snap.cap}" + (" (learned cap)" if snap.cap_learned else ""),
        f"downloading {c.get('succeeded', 0)}",
        f"requests {fmt_rate(snap.requests_per_s)} "
        f"(window {snap.requests_in_window}/{snap.rate_limit} per {snap.rate_period_s:g}s)",
        f"download {fmt_bytes(snap.bytes_per_s or 0)}/s",
        f"eta {fmt_duration(snap.eta_s)}",
    ]
    if c.get("orphaned"):
        parts.insert(3, f"orphaned {c['orphaned']}")
    if snap.paused_until is not None:
        parts.append(f"paused: {_pause_text(snap)}")
    if snap.stopping:
        parts.append("stopping")
    return f"progress {fmt_duration(snap.elapsed_s)}: " + ", ".join(parts)


def render_json(snap: Snapshot, event: str = "progress") -> str:
    data = asdict(snap)
    data.update(event=event, ts=_now_iso(), total=snap.total, remaining=snap.remaining)
    for key in ("elapsed_s", "requests_per_s", "bytes_per_s", "eta_s", "paused_for_s"):
        if data[key] is not None:
            data[key] = round(data[key], 3)
    return json.dumps({"ts": data.pop("ts"), "event": data.pop("event"), **data})


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- the display --------------------------------------------------------------------------------
