"""A sandbox run across the family: one YAML and one CSV manifest, each mixing at least five
model families, end to end (every video on disk with its hash, each task made at its own
model's endpoint, the report and the gallery naming each job's model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchgen import store as st
from batchgen.cli import main
from batchgen.manifest import load_manifest
from tests.enginekit import sha256_file

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
FAMILIES = (
    "kling",
    "veo",
    "sora",
    "seedance",
    "wan",
    "hailuo",
    "ltx",
    "vidu",
    "happyHorse",
    "grok",
)


def _family(model: str) -> str:
    return next(f for f in FAMILIES if model.startswith(f))


@pytest.mark.parametrize("name", ["family-mix.yaml", "family-mix.csv"])
def test_a_batch_across_the_family_in_the_sandbox(tmp_path: Path, name: str) -> None:
    manifest = load_manifest(MANIFESTS / name)
    want = {job.id: job.model for job in manifest.jobs}
    assert len({_family(m) for m in want.values()}) >= 5
    out = tmp_path / name
    assert main(["run", str(MANIFESTS / name), "--sandbox", "--output", str(out)]) == 0
    store = st.Store(out / "batchgen.db", readonly=True)
    try:
        assert store.jobs.counts()[st.DONE] == len(want)
        rows = store.db.execute("SELECT seq, id, model FROM jobs").fetchall()
        assert {job_id: model for _seq, job_id, model in rows} == want
        for seq, _id, _model in rows:
            files = store.jobs.files_of(seq)
            assert files
            for f in files:
                assert sha256_file(out / str(f.path)) == f.sha256
    finally:
        store.close()
    journal = (out / "batchgen.db.sandbox.jsonl").read_text().splitlines()[1:]
    assert sorted(json.loads(line)["model"] for line in journal) == sorted(want.values())
    made = [json.loads(line) for line in journal]  # in the order the simulator made them
    for n, rec in enumerate(made):  # an extension names a veo-3-1 task made before it
        if rec["model"] == "veo-3-1-extend":
            parent = rec["body"]["input"]["taskId"]
            assert [r["model"] for r in made[:n] if r["task_id"] == parent] == ["veo-3-1"]
    report = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert {r["id"]: r["model"] for r in report} == want
    assert main(["gallery", str(out / "batchgen.db")]) == 0
    page = (out / "gallery.html").read_text()
    assert all(model in page for model in want.values())
