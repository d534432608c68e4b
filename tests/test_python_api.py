"""Issue 15 step 2: the Python snippet of docs/python-api.md, run exactly as written, against
the built-in simulator (no key, no network), and the API's refusals."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import batchgen
from batchgen.errors import ManifestError, UsageError

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(180)


def docs_snippet() -> str:
    section = (ROOT / "docs" / "python-api.md").read_text()
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_docs_snippet_runs_a_batch_end_to_end(tmp_path: Path) -> None:
    (tmp_path / "manifests").mkdir()
    shutil.copy(ROOT / "manifests" / "example.yaml", tmp_path / "manifests")
    script = tmp_path / "snippet.py"
    script.write_text(docs_snippet())
    # no key, no proxy; this tree's batchgen (the one under test)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    for _ in range(2):  # the second run continues from the state file: nothing left to do
        done = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        first, second = done.stdout.splitlines()
        assert first == "0 8", done.stdout  # exit code, jobs done: all of the example's
        assert "'done': 8" in second
    assert len(list((tmp_path / "output" / "py-demo").glob("*.mp4"))) == 8


def test_the_api_refuses_what_the_cli_refuses(tmp_path: Path, monkeypatch) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("jobs:\n  - {prompt: a, duration: 7}\n")
    with pytest.raises(ManifestError) as caught:
        batchgen.load(bad)
    assert "m.yaml:2" in str(caught.value)
    good = tmp_path / "g.yaml"
    good.write_text(
        "jobs:\n  - {mode: master-text-to-video, prompt: a, duration: 5, aspect_ratio: '16:9'}\n"
    )
    with pytest.raises(UsageError, match="not a run setting: max_inflight"):
        batchgen.run(good, output=tmp_path / "o", sandbox=True, max_inflight=3)
    monkeypatch.delenv("APIXO_API_KEY", raising=False)
    with pytest.raises(UsageError, match="no API key"):
        batchgen.run(good, output=tmp_path / "o")
    assert "load" in dir(batchgen) or batchgen.load  # lazily there


def test_a_second_sandbox_run_meets_the_first_runs_world(tmp_path) -> None:
    """Two `batchgen.run(sandbox=True)` on one state file, the manifest grown in between.
    Before, each run started a simulator with the same seed, which handed the new job a task
    id an old job already held: the new job ended ambiguous. Both front doors now share the
    CLI's sandbox (batchgen/sandbox.py): the journal keeps the world, its seed and its tasks."""
    import batchgen
    from batchgen import store as st

    def manifest(n: int):
        path = tmp_path / "m.yaml"
        jobs = "".join(
            f"  - {{id: j{i}, mode: master-text-to-video, prompt: 'take {i}', duration: 5,"
            " aspect_ratio: '16:9'}\n"
            for i in range(n)
        )
        path.write_text(f"version: 1\nname: grow\njobs:\n{jobs}", encoding="utf-8")
        return path

    first = batchgen.run(manifest(2), output=tmp_path / "out", sandbox=True)
    second = batchgen.run(manifest(3), output=tmp_path / "out", sandbox=True)
    assert first.exit_code == 0 and second.exit_code == 0, second
    store = st.Store(tmp_path / "out" / "batchgen.db", readonly=True)
    try:
        states = [r.state for r in store.jobs.in_state(st.DONE)]
        tasks = [r.task_id for r in store.jobs.in_state(st.DONE)]
    finally:
        store.close()
    assert len(states) == 3 and len(set(tasks)) == 3


def test_on_result_and_results_hand_over_each_job_as_it_finishes(tmp_path) -> None:
    """Issue 30: `on_result` is called once per job with its report record as the job
    finishes; `batchgen.results()` yields the same records; a callback that raises never
    changes the run."""
    import asyncio

    import batchgen

    path = tmp_path / "m.yaml"
    path.write_text(
        "version: 1\nname: told\njobs:\n"
        "  - {id: ok, mode: master-text-to-video, prompt: calm, duration: 5,"
        " aspect_ratio: '16:9'}\n"
        "  - {id: bad, mode: master-text-to-video, prompt: 'no [sim:content_violation]',"
        " duration: 5, aspect_ratio: '16:9'}\n",
        encoding="utf-8",
    )
    seen: list[dict] = []
    outcome = batchgen.run(path, output=tmp_path / "a", sandbox=True, on_result=seen.append)
    assert outcome.exit_code == 1
    by_id = {r["id"]: r for r in seen}
    assert len(seen) == 2 and set(by_id) == {"ok", "bad"}
    assert by_id["ok"]["status"] == "done" and by_id["ok"]["files"][0]["sha256"]
    assert by_id["bad"]["fail_code"] == "CONTENT_VIOLATION"

    def boom(record: dict) -> None:
        raise RuntimeError("a user's bug")

    again = batchgen.run(path, output=tmp_path / "b", sandbox=True, on_result=boom)
    assert again.exit_code == 1  # the run's own outcome, not the callback's

    async def collect() -> list[str]:
        return [r["id"] async for r in batchgen.results(path, output=tmp_path / "c", sandbox=True)]

    assert sorted(asyncio.run(collect())) == ["bad", "ok"]
