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
from pathlib import Path

from batchgen.errors import UsageError
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


def refuse_other_world(state_path: Path, sandbox: bool, was: bool | None = None) -> None:
    """A state file whose tasks the sandbox's simulator made is never continued against the
    API, nor the other way round (exit 2, untouched): after `make demo` a run with a real key
    on the same manifest found every job done, the simulator's placeholder videos its
    results, and said "finished" (issue 26's first hour). `was`: the sandbox made it (the
    CLI's record says); None: judged by the simulator's journal beside it."""
    from batchgen import store as st
    from batchgen.simulator.journal import journal_path

    if not state_path.exists():
        return
    store = st.Store(state_path, readonly=True)
    try:
        made = sum(n for state, n in store.jobs.counts().items() if state != st.PENDING)
    finally:
        store.close()
    if was is None:
        was = journal_path(state_path).exists()
    if not made or was == sandbox:
        return
    if was:
        raise UsageError(
            f"{state_path} holds a --sandbox batch: its tasks were made by the built-in "
            "simulator and its videos are placeholders, so a run against the API would find "
            f"them done. Give the real batch its own folder with --output DIR (or delete "
            f"{state_path.parent}/ to start over)"
        )
    raise UsageError(
        f"{state_path} holds a batch made against the API: --sandbox would look for its "
        "tasks in the simulator, which never made them. Try the sandbox in its own folder "
        "with --output DIR"
    )
