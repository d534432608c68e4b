"""Jobs that continue jobs, run against the real simulator: a Veo chain (parent, extension)
ends with both videos on disk and the extension created only after its parent succeeded (the
simulator's own clock and task order, not wall-clock); a failed parent fails its child with
PARENT_FAILED, unsent and unpaid; a resumed run keeps the chain with the recorded task id."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from batchgen import store as st
from batchgen.cli import main
from batchgen.simulator import Simulator
from tests.enginekit import KEY, SCALE, pace_args, sha256_file

ROOT = Path(__file__).resolve().parents[1]
VEO = "{id: %s, model: veo-3-1, mode: fast, generationType: TEXT_2_VIDEO, prompt: '%s'}"
EXT = "{id: %s, model: veo-3-1-extend, extends: %s, prompt: '%s'}"


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APIXO_API_KEY", KEY)


def _rows(state: Path) -> dict[str, tuple[str, str | None, str | None, int]]:
    store = st.Store(state, readonly=True)
    try:
        rows = store.db.execute("SELECT id, state, task_id, fail_code, submit_attempts FROM jobs")
        return {r[0]: tuple(r[1:]) for r in rows}  # type: ignore[misc]
    finally:
        store.close()


def _manifest(folder: Path, jobs: list[str]) -> Path:
    path = folder / "chain.yaml"
    path.write_text("jobs:\n" + "".join(f"  - {j}\n" for j in jobs), encoding="utf-8")
    return path


async def _run(sim: Simulator, *argv: str) -> int:
    args = [*argv, *pace_args(sim.base_url), "--allow-private-result-hosts"]
    return await asyncio.to_thread(main, args)


def test_the_veo_chain_example_runs_in_the_sandbox(tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifest = ROOT / "manifests" / "veo-chain.yaml"
    assert main(["run", str(manifest), "--sandbox", "--output", str(out)]) == 0
    rows = _rows(out / "batchgen.db")
    assert {k: v[0] for k, v in rows.items()} == {"harbour": "done", "harbour-open-sea": "done"}
    store = st.Store(out / "batchgen.db", readonly=True)
    try:
        for seq in (1, 2):
            files = store.jobs.files_of(seq)
            assert files and all(sha256_file(out / str(f.path)) == f.sha256 for f in files)
    finally:
        store.close()
    journal = [json.loads(x) for x in (out / "batchgen.db.sandbox.jsonl").read_text().splitlines()]
    parent, child = journal[1:]
    assert (parent["model"], child["model"]) == ("veo-3-1", "veo-3-1-extend")
    assert child["body"]["input"]["taskId"] == parent["task_id"] == rows["harbour"][1]


async def test_the_extension_is_created_only_after_its_parent_succeeded(tmp_path: Path) -> None:
    # The child comes first in the manifest and the cap is one task: a child holding a slot
    # while it waits would starve its own parent.
    manifest = _manifest(
        tmp_path, [EXT % ("more", "city", "go on"), VEO % ("city", "a city at dawn")]
    )
    state = tmp_path / "out" / "batchgen.db"
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE) as sim:
        argv = ("run", str(manifest), "--output", str(tmp_path / "out"), "--max-in-flight", "1")
        assert await _run(sim, *argv) == 0
        tasks = list(sim.store.tasks.values())  # in the order the simulator created them
    rows = _rows(state)
    assert [t.model for t in tasks] == ["veo-3-1", "veo-3-1-extend"]
    parent, child = tasks
    assert (parent.task_id, child.task_id) == (rows["city"][1], rows["more"][1])
    assert child.created >= parent.ends  # the simulator's clock: after the parent's success
    assert child.fail_code is None and rows["more"][0] == "done"


async def test_a_failed_parent_fails_its_child_unsent(tmp_path: Path, capsys) -> None:
    jobs = [
        VEO % ("bad", "a city [sim:content_violation]"),
        EXT % ("after-bad", "bad", "go on"),
        VEO % ("good", "a sea"),
        EXT % ("after-good", "good", "go on"),
    ]
    manifest = _manifest(tmp_path, jobs)
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE) as sim:
        assert await _run(sim, "run", str(manifest), "--output", str(tmp_path / "out")) == 1
        models = sorted(t.model for t in sim.store.tasks.values())
    assert models == ["veo-3-1", "veo-3-1", "veo-3-1-extend"]  # nothing sent for after-bad
    rows = _rows(tmp_path / "out" / "batchgen.db")
    assert rows["after-bad"] == ("failed", None, "PARENT_FAILED", 0)
    assert rows["after-good"][0] == "done" and rows["bad"][2] == "CONTENT_VIOLATION"
    assert "PARENT_FAILED" in capsys.readouterr().err
    db = st.Store(tmp_path / "out" / "batchgen.db", readonly=True)
    try:
        paid = db.db.execute(
            "SELECT COUNT(*) FROM attempts JOIN jobs ON seq=job_seq WHERE id='after-bad'"
        ).fetchone()[0]
    finally:
        db.close()
    assert paid == 0


async def test_a_resumed_run_sends_the_parents_recorded_task_id(tmp_path: Path) -> None:
    manifest = _manifest(
        tmp_path, [VEO % ("city", "a city at dawn"), EXT % ("more", "city", "go on")]
    )
    state = tmp_path / "out" / "batchgen.db"
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE) as sim:
        argv = ("run", str(manifest), "--output", str(tmp_path / "out"), "--only", "city")
        assert await _run(sim, *argv) == 75  # the child waits: work is left
        first = _rows(state)
        assert first["city"][0] == "done" and first["more"][:2] == ("pending", None)
        assert await _run(sim, "resume", str(state)) == 0  # no manifest: the link is recorded
        tasks = list(sim.store.tasks.values())
    rows = _rows(state)
    assert rows["more"][0] == "done" and len(tasks) == 2
    assert tasks[1].model == "veo-3-1-extend" and tasks[1].fail_code is None
    assert rows["city"][1] == first["city"][1] == tasks[0].task_id


def test_many_chains_each_job_gets_one_coroutine(tmp_path: Path, capsys) -> None:
    """Parents waiting for their price's turn are still pending when a child's pass reads its
    page; one that was sent and finished before the pass reached it is not sent again (the
    engine read the page's row again: before, `done -> submitting` was logged as a bug)."""
    jobs = []
    for i in range(16):
        jobs += [VEO % (f"v{i}", f"scene {i}"), EXT % (f"e{i}", f"v{i}", f"more {i}")]
    out = tmp_path / "out"
    argv = ["run", str(_manifest(tmp_path, jobs)), "--sandbox", "--output", str(out)]
    assert main([*argv, "--max-in-flight", "4"]) == 0
    assert "a bug in batchgen" not in capsys.readouterr().err
    assert {v[0] for v in _rows(out / "batchgen.db").values()} == {"done"}
