"""Helpers for the account tests: several batchgen processes, each with its own state file,
against one simulator that enforces one account's limits, sampled from inside the simulator."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from batchgen.simulator import Simulator
from tests.enginekit import SCALE, mixed_jobs, prepare_state
from tests.opskit import finish, resume_argv, spawn


@dataclass
class Shared:
    """What three runs did together, as the server saw it."""

    exits: list[int]
    submits: int
    accepted: int
    rate_limited: int
    peak_in_flight: int
    busiest_window: int
    utilisation: float
    """Mean tasks in flight at the server / its cap, while jobs were still waiting to be sent."""
    samples: int
    errs: list[str] = field(default_factory=list)

    def line(self, label: str, cap: int) -> str:
        return (
            f"{label:>24}: exits {self.exits}, {self.accepted} tasks from {self.submits} "
            f"submits, {self.rate_limited} 429s, peak {self.peak_in_flight}/{cap} in flight, "
            f"busiest window {self.busiest_window} requests, cap used {self.utilisation:.3f}"
        )


def state_for(tmp: Path, name: str, jobs: int) -> Path:
    folder = tmp / name
    folder.mkdir(parents=True)
    return prepare_state(folder, mixed_jobs(jobs, tag=f"{name} "))


async def three_runs(
    tmp: Path,
    sim: Simulator,
    *,
    jobs: int,
    cap: int,
    rate: str,
    account_db: str,
    runs: int = 3,
    extra: tuple[str, ...] = (),
    per_run: list[tuple[str, ...]] | None = None,
) -> Shared:
    """`runs` processes, each told it has the whole account (`cap`, `rate`)."""
    states = [state_for(tmp, f"run{i}", jobs) for i in range(runs)]
    procs = [
        await spawn(
            [
                *resume_argv(state, sim.base_url, in_flight=cap),
                "--rate-limit",
                rate,
                "--account-db",
                account_db,
                "--no-preflight",
                *extra,
                *(per_run[i] if per_run else ()),
            ]
        )
        for i, state in enumerate(states)
    ]
    total = runs * jobs
    inside: list[int] = []
    sampling = True

    async def sample() -> None:
        while sampling:
            now = sim.now()
            if len(sim.store) >= total:  # every job sent: the cap need not be full any more
                return
            n = sim.store.in_flight(now)
            if inside or n >= cap:  # from the moment the account first filled
                inside.append(n)
            await asyncio.sleep(0.01)

    sampler = asyncio.ensure_future(sample())
    results = await asyncio.gather(*(finish(p, within=180) for p in procs))
    sampling = False
    await sampler
    stats = sim.stats()
    return Shared(
        exits=[code for code, _, _ in results],
        submits=sum(stats["requests"].get("submit", {}).values()),
        accepted=stats["tasks"]["total"],
        rate_limited=stats["rate_limited"],
        peak_in_flight=stats["max_in_flight"],
        busiest_window=stats["max_requests_in_window"],
        utilisation=(sum(inside) / len(inside) / cap) if inside else 0.0,
        samples=len(inside),
        errs=[err for _, _, err in results],
    )


def scaled_rate(limit: int) -> str:
    return f"{limit}/{60 * SCALE}s"
