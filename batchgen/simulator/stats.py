"""What the simulator saw: request counts, the busiest window, duplicate bodies, a JSONL log."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from typing import Any, TextIO

from batchgen.simulator.ratelimit import WindowMax


def canonical(body: Any) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class Observer:
    def __init__(self, window_s: float, log_path: str | None = None) -> None:
        self.requests: dict[str, Counter[str]] = defaultdict(Counter)
        # The same, per model: {model: {"submit": {"200": n}, "status": {...}}}.
        self.by_model: dict[str, dict[str, Counter[str]]] = defaultdict(
            lambda: defaultdict(Counter)
        )
        self.arrivals = WindowMax(window_s)
        self.rate_limited = 0
        self.arrived = 0  # API requests ever (tests kill a client after its n-th)
        self.bodies: Counter[str] = Counter()
        # Submits whose answer cannot tell the client whether a task was made (a reset, a
        # proxy's page), by canonical body: each one should leave its job ambiguous.
        self.unknowable: Counter[str] = Counter()
        self.callbacks: Counter[str] = Counter()
        self._log: TextIO | None = (
            open(log_path, "a", encoding="utf-8", buffering=1) if log_path else None  # noqa: SIM115
        )

    def arrival(self, now: float) -> None:
        """An API request arrived (counted before auth, limits or faults)."""
        self.arrivals.add(now)
        self.arrived += 1

    def record(
        self,
        endpoint: str,
        method: str,
        path: str,
        status: int | str,
        task_id: str | None = None,
        model: str | None = None,
    ) -> None:
        self.requests[endpoint][str(status)] += 1
        if model is not None:
            self.by_model[model][endpoint][str(status)] += 1
        if status == 429:
            self.rate_limited += 1
        if self._log is not None:
            line = {
                "time": round(time.time(), 6),
                "method": method,
                "path": path,
                "status": status,
                "task_id": task_id,
                "endpoint": endpoint,
            }
            self._log.write(json.dumps(line) + "\n")

    def submitted(self, body: Any) -> None:
        self.bodies[canonical(body)] += 1

    def unknowable_answer(self, body: Any) -> None:
        self.unknowable[canonical(body)] += 1

    def summary(self, limit: int = 100) -> dict[str, Any]:
        dup = [(b, n) for b, n in self.bodies.items() if n > 1]
        dup.sort(key=lambda item: -item[1])
        return {
            "requests": {ep: dict(c) for ep, c in self.requests.items()},
            "requests_by_model": {
                model: {ep: dict(c) for ep, c in eps.items()}
                for model, eps in self.by_model.items()
            },
            "max_requests_in_window": self.arrivals.max,
            "rate_limited": self.rate_limited,
            "submits_answered_unknowably": sum(self.unknowable.values()),
            "submits_per_body": {
                "distinct_bodies": len(self.bodies),
                "duplicate_bodies": len(dup),
                "max_submits_of_one_body": max(self.bodies.values(), default=0),
            },
            "bodies_submitted_more_than_once": [
                {"body": json.loads(b), "count": n} for b, n in dup[:limit]
            ],
        }

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
