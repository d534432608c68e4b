"""Chains under random forests: jobs extend jobs (any depth, children often before their
parents in the state file), some tasks fail for good, some fail once and are resubmitted, the
in-flight cap is small. The engine runs on a FakeClock against the simulator's own task
logic (batchgen/simulator/tasks.py: its parent check included) behind a fake client, so no
socket and no real waiting. Invariants: every job ends; no child is submitted before its
parent's task succeeded (the simulator's clock), and never with another task's id; a child
of a parent that ended without a result fails with PARENT_FAILED and is never submitted."""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from batchgen import models
from batchgen import store as st
from batchgen.adapters.answers import parse_status
from batchgen.clock import FakeClock
from batchgen.core.chains import PARENT_FAILED, parent_in, placeholder
from batchgen.engine import Engine
from batchgen.engine.config import engine_config
from batchgen.errors import SubmitSkipped
from batchgen.models.base import ModelSpec
from batchgen.settings import RunOptions
from batchgen.simulator.config import SimConfig
from batchgen.simulator.tasks import TaskStore
from batchgen.testing import TOY_SCHEMA, on_fake_time

pytestmark = pytest.mark.timeout(300)
MODEL = "toy-chain"
START = 1_700_000_000.0
_FILES = itertools.count()
OUTCOMES = ("ok", "ok", "ok", "fail", "once")  # once: a transient failure, then fine


class SimClient:
    """The API client's two calls, answered by the simulator's TaskStore on the fake clock;
    results carry no URL (nothing to download: a job is done once its task succeeded)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        config = SimConfig(time_scale=1.0, seed=11, p_content_violation=0.0,
                           p_invalid_image=0.0, p_transient=0.0)  # fmt: skip
        self.tasks = TaskStore(config)
        self.sent: list[tuple[float, dict[str, Any], str]] = []  # (time, body, task id)
        self.alive_answers = 0
        self.tasks_in_flight = lambda: 0

    async def submit(self, body: dict[str, Any], *, before_send: Any = None, model: Any = None):
        if before_send is not None and not await before_send():
            raise SubmitSkipped()
        now = self.clock.now()
        task = self.tasks.create(body, now, int(now * 1000), model or MODEL, owner="k")
        self.sent.append((now, body, task.task_id))
        self.alive_answers += 1
        return task.task_id

    async def status(self, task_id: str, *, model: Any = None, priority: int = 0):
        data = self.tasks.tasks[task_id].status_data(self.clock.now(), "http://sim.invalid")
        self.alive_answers += 1
        return dataclasses.replace(parse_status(data, task_id), result_urls=[])


@pytest.fixture(scope="module")
def chain_model(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("toy-chain")
    schema = json.loads(json.dumps(TOY_SCHEMA))
    schema["properties"]["input"]["properties"]["parent"] = {"type": "string", "minLength": 1}
    path = folder / f"{MODEL}.request.schema.json"
    path.write_text(json.dumps(schema), encoding="utf-8")
    spec = ModelSpec(id=MODEL, schema=str(path), generation_s={3: (20.0, 30.0)},
                     parent_field="parent", parent_model=MODEL)  # fmt: skip
    models.register(spec, replace=True)
    yield spec
    models.unregister(MODEL)


forests = hs.integers(min_value=1, max_value=12).flatmap(
    lambda n: hs.tuples(
        hs.tuples(*[hs.one_of(hs.none(), hs.integers(0, max(0, i - 1))) for i in range(n)]),
        hs.lists(hs.sampled_from(OUTCOMES), min_size=n, max_size=n),
        hs.randoms(use_true_random=False),
        hs.integers(min_value=1, max_value=4),
    )
)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(forest=forests)
async def test_random_chains_keep_their_invariants(chain_model, tmp_path: Path, forest) -> None:
    parents, outcomes, rng, cap = forest
    n = len(outcomes)
    parent_of = {i: (p if i > 0 else None) for i, p in enumerate(parents)}
    order = list(range(n))
    rng.shuffle(order)  # children often come before their parents
    marks = {"ok": "", "fail": " [sim:content_violation]", "once": " [sim:transient:1]"}
    jobs = []
    for i in order:
        inp: dict[str, Any] = {
            "style": "sketch",
            "prompt": f"job {i}{marks[outcomes[i]]}",
            "seconds": 3,
        }
        if parent_of[i] is not None:
            inp["parent"] = placeholder(f"j{parent_of[i]}")
        jobs.append((f"j{i}", MODEL, {"input": inp}))
    state = tmp_path / f"s-{next(_FILES)}.db"  # one state file per example
    clock = FakeClock(start=START)
    store = st.Store(state, wall=clock.now)
    store.jobs.sync(jobs)
    store.links.record((f"j{i}", None if parent_of[i] is None else f"j{parent_of[i]}")
                         for i in range(n))  # fmt: skip
    client = SimClient(clock)
    opts = RunOptions.from_flat(state_path=state, output_dir=tmp_path, max_in_flight=cap)
    engine = Engine(store, client, None, engine_config(opts), rng=random.Random(1),  # type: ignore[arg-type]
                    clock=clock, wall=clock.now)  # fmt: skip
    await on_fake_time(clock, engine.run(), steps=200_000)

    rows = {r[0]: r[1:] for r in store.db.execute(
        "SELECT id, state, task_id, fail_code, submit_attempts FROM jobs")}  # fmt: skip
    store.close()
    sent_by = {}
    for when, body, task_id in client.sent:
        job = body["input"]["prompt"].split()[1]
        sent_by.setdefault(f"j{job}", []).append((when, body, task_id))
    for i in range(n):
        job, (state_, task_id, code, attempts) = f"j{i}", rows[f"j{i}"]
        assert state_ in ("done", "failed"), (job, state_)  # every job ends
        parent = parent_of[i]
        if parent is not None and rows[f"j{parent}"][0] != "done":
            assert (state_, code, attempts) == ("failed", PARENT_FAILED, 0), job
            assert job not in sent_by  # never submitted, never paid
        for when, body, _ in sent_by.get(job, []):
            assert parent is not None or "parent" not in body["input"]
            if parent is None:
                continue
            named = body["input"]["parent"]
            assert parent_in(named) is None  # the placeholder never leaves
            assert named == rows[f"j{parent}"][1]  # the parent's own (final) task
            assert client.tasks.tasks[named].state_at(when) == "success"
        if code == PARENT_FAILED:  # only a parent that ended without a result does that
            assert parent is not None and job not in sent_by
            assert rows[f"j{parent}"][0] != "done", job
        if outcomes[i] == "ok" and (parent is None or rows[f"j{parent}"][0] == "done"):
            assert state_ == "done", job
    assert all(t.fail_code != "TASKID_ERROR" for t in client.tasks.tasks.values())


def test_a_child_cancelled_meanwhile_is_left_as_it_is(chain_model, tmp_path: Path) -> None:
    """`batchgen cancel` from another process while the child waits: its parent's failure
    does not move it (a move the table refuses is never attempted as a bug)."""
    from batchgen.engine.chains import Chains
    from batchgen.engine.context import RunContext

    store = st.Store(tmp_path / "s.db")
    parent = {"input": {"style": "sketch", "prompt": "p", "seconds": 3}}
    child = {"input": {**parent["input"], "prompt": "c", "parent": placeholder("p")}}
    store.jobs.sync([("p", MODEL, parent), ("c", MODEL, child)])
    store.links.record([("c", "p")])
    opts = RunOptions.from_flat(state_path=tmp_path / "s.db", output_dir=tmp_path)
    chains = Chains(RunContext(store, engine_config(opts)))
    row = store.jobs.get("c")
    assert row is not None and chains.may_go(row) is False  # waits: no slot
    assert chains.still_waiting() == 1
    p = store.jobs.get("p")
    assert p is not None and store.moves.mark_failed(p.seq, "CONTENT_VIOLATION", "no")
    assert store.moves.cancel([row.seq]) == 1
    assert chains.ended(p.seq) is False
    assert store.jobs.get("c").state == "cancelled" and chains.still_waiting() == 0  # type: ignore[union-attr]
    store.close()
