"""batchgen/testing.py is part of the product (design principle 7: ship the fakes): what it
offers works as its docstring says, outside batchgen's own suite."""

from __future__ import annotations

import random
from pathlib import Path

from batchgen import models
from batchgen import store as st
from batchgen.adapters.answers import TaskStatus
from batchgen.engine import Engine
from batchgen.engine.config import engine_config
from batchgen.manifest import load_manifest
from batchgen.settings import RunOptions
from batchgen.testing import FakeClock, ScriptedClient, on_fake_time, toy_model


async def test_an_hour_of_a_tasks_life_on_the_fake_clock(tmp_path: Path) -> None:
    """A job submitted and tracked to its end with the documented schedule, no socket, no
    waiting: the first poll a minute after the submit, exact to the fake clock."""
    clock = FakeClock(start=1_700_000_000.0)
    done = TaskStatus("t-1", "success", "success", result_urls=["https://r.example/v.mp4"])
    client = ScriptedClient(["t-1"], [TaskStatus("t-1", "processing", "processing"), done], clock)
    store = st.Store(tmp_path / "s.db", wall=clock.now)
    body = {"input": {"mode": "master-text-to-video", "prompt": "p", "duration": 5}}
    store.jobs.sync([("j1", "kling-2-1", body)])
    opts = RunOptions.from_flat(state_path=tmp_path / "s.db", output_dir=tmp_path)
    engine = Engine(
        store,
        client,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        engine_config(opts),
        rng=random.Random(1),
        clock=clock,
        wall=clock.now,
    )
    assert engine.cap.try_acquire()
    row = store.jobs.get("j1")
    assert row is not None
    assert await on_fake_time(clock, engine.submitter.submit(row)) == "t-1"
    await on_fake_time(clock, engine.tracker.track(store.jobs.get("j1"), 60.0, task_id="t-1"))
    assert client.status_times[0] - 1_700_000_000.0 == 60.0
    assert store.jobs.get("j1").state == st.SUCCEEDED


def test_the_toy_model_validates_a_manifest_of_its_own(tmp_path: Path) -> None:
    spec = models.register(toy_model(tmp_path / "spec"))
    try:
        manifest = tmp_path / "m.yaml"
        manifest.write_text(
            "version: 1\nname: toy\nmodel: toy-clip\njobs:\n"
            "  - {id: a, prompt: a fox, seconds: 3, style: clay}\n",
            encoding="utf-8",
        )
        loaded = load_manifest(manifest)
        (job,) = loaded.jobs
        assert job.model == spec.id and job.body["input"]["seconds"] == 3
    finally:
        models.unregister(spec.id)
