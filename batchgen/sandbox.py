"""The sandbox: a run against batchgen's own simulator, in-process, no key and no network.

One home for both front doors (the CLI's `--sandbox` and `batchgen.run(sandbox=True)`). The
simulator remembers its tasks in a journal beside the state file, so a later sandbox run on
that state file (after an interruption, even a SIGKILL, or simply the next run) meets the same
simulated world: the same seed, the same port, its tasks where they are. A fresh world gets a
fresh seed, so its task ids never repeat another sandbox's recorded in some other state file
(or in this one: a Python API run used to start every run with the same seed and hand a new
job a task id an old job already held).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator

from batchgen.settings import SANDBOX_KEY, RunOptions


@contextlib.asynccontextmanager
async def sandbox(
    opts: RunOptions, *, time_scale: float, seed: int | None = None
) -> AsyncIterator[RunOptions]:
    """`opts` pointed at an in-process simulator that lives as long as the block; `seed`
    None: the journal's, else a fresh one. Another `seed` than the journal's starts another
    simulated world."""
    from batchgen.simulator import SimConfig, Simulator
    from batchgen.simulator.journal import TaskJournal, journal_path

    journal = TaskJournal(journal_path(opts.files.state_path))
    header = journal.load(time_scale)
    if header is not None and seed is not None and header["seed"] != seed:
        journal = TaskJournal(journal.path)  # another seed: another simulated world
        header = None
    config = SimConfig(
        time_scale=time_scale,
        seed=header["seed"] if header else (seed if seed is not None else secrets.randbits(31)),
        api_keys=frozenset({SANDBOX_KEY}),
        fetch_images="loopback",  # the sandbox proves its image URLs work, with no network
    )
    sim = Simulator(config, port=int(header.get("port", 0))) if header else Simulator(config)
    try:
        await sim.start()
    except OSError:  # the old port is taken: any port will do (recorded URLs may then fail)
        sim = Simulator(config)
        await sim.start()
    try:
        journal.attach(sim)
        yield opts.replace(base_url=sim.base_url)
    finally:
        journal.close()
        await sim.close()
