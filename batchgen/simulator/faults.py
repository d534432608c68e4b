"""Seeded fault dice: one `random.Random` stream per fault, so turning one fault on or off does
not change when the others fire."""

from __future__ import annotations

import random
from typing import Any

from batchgen.simulator.config import FAULT_FIELDS, SimConfig


class FaultDice:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.p = {name: getattr(config, name) for name in FAULT_FIELDS}
        self._rngs = {name: random.Random(f"{config.seed}:fault:{name}") for name in FAULT_FIELDS}
        self._aux = random.Random(f"{config.seed}:fault-aux")
        self.burst_left = 0
        self.fired: dict[str, int] = dict.fromkeys(FAULT_FIELDS, 0)

    def set(self, **probabilities: float) -> None:
        unknown = set(probabilities) - set(FAULT_FIELDS)
        if unknown:
            raise TypeError(
                f"unknown fault(s): {', '.join(sorted(unknown))}; known: {', '.join(FAULT_FIELDS)}"
            )
        for name, p in probabilities.items():
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        self.p.update(probabilities)
        if probabilities.get("p_429") == 0.0:
            self.burst_left = 0

    def roll(self, name: str) -> bool:
        p = self.p[name]
        if p <= 0.0:
            return False
        hit = p >= 1.0 or self._rngs[name].random() < p
        if hit:
            self.fired[name] += 1
        return hit

    def in_429_burst(self) -> bool:
        """True if this API request falls in a 429 burst (possibly starting one)."""
        if self.burst_left > 0:
            self.burst_left -= 1
            return True
        if self.roll("p_429"):
            self.burst_left = self.config.burst_429_len - 1
            return True
        return False

    def choice(self, options: Any) -> Any:
        return self._aux.choice(options)

    def uniform(self, a: float, b: float) -> float:
        return self._aux.uniform(a, b)

    def __repr__(self) -> str:
        on = {k: v for k, v in self.p.items() if v and k.startswith("p_")}
        return f"<FaultDice {on or 'no faults'}>"
