"""Matrix jobs through a whole sandbox run: a grown matrix pays only for its new cells, meta
reaches the state file, the report and the file names; older state files keep working."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from batchgen import store as st
from batchgen.adapters.paths import render_filename
from batchgen.manifest import check_filename
from batchgen.ui import report

DATA = Path(__file__).parent / "data"

GRID = """\
version: 1
name: grid
output: {{filename: "{{season}}/{{id}}.mp4"}}
jobs:
  - id: "fox-{{season}}"
    mode: master-text-to-video
    aspect_ratio: "16:9"
    duration: 5
    prompt: "a red fox crossing a meadow in {{season}}"
    meta: {{project: fox}}
    matrix:
      season: [{seasons}]
"""


def _run(tmp_path: Path, seasons: str) -> int:
    """`batchgen run --sandbox`, whose simulated world lives on between runs (its journal)."""
    path = tmp_path / "grid.yaml"
    path.write_text(GRID.format(seasons=seasons))
    command = [sys.executable, "-m", "batchgen", "run", str(path), "--sandbox", "--quiet",
               "--output", str(tmp_path / "out")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.returncode


def _tasks(state: Path) -> dict[str, tuple[str | None, int]]:
    store = st.Store(state, readonly=True)
    try:
        tries = store.ledger.all_attempts()
        out = {}
        for rec in report.records(store):
            row = store.jobs.get(rec["id"])
            assert row is not None
            out[rec["id"]] = (rec["task_id"], len(tries.get(row.seq, [])))
        return out
    finally:
        store.close()


def test_a_grown_matrix_submits_only_its_new_combination(tmp_path: Path) -> None:
    assert _run(tmp_path, "spring, summer") == 0
    state = tmp_path / "out" / "batchgen.db"
    before = _tasks(state)
    assert set(before) == {"fox-spring", "fox-summer"}
    assert _run(tmp_path, "spring, summer, winter") == 0
    after = _tasks(state)
    assert {k: after[k] for k in before} == before  # the old tasks kept, one submit each
    assert after["fox-winter"][0] is not None and after["fox-winter"][1] == 1
    files = sorted(p.relative_to(tmp_path / "out").as_posix() for p in
                   (tmp_path / "out").rglob("*.mp4"))  # fmt: skip
    assert files == ["spring/fox-spring.mp4", "summer/fox-summer.mp4", "winter/fox-winter.mp4"]


def test_meta_in_the_report_jsonl_and_csv(tmp_path: Path) -> None:
    assert _run(tmp_path, "spring, summer") == 0
    state = tmp_path / "out" / "batchgen.db"
    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    assert json.loads(lines[1])["meta"] == {"project": "fox", "season": "summer"}
    done = subprocess.run(
        [sys.executable, "-m", "batchgen", "report", str(state), "--format", "csv"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [(r["id"], r["meta.project"], r["meta.season"]) for r in rows] == [
        ("fox-spring", "fox", "spring"), ("fox-summer", "fox", "summer"),
    ]  # fmt: skip
    assert "meta" not in rows[0]


def test_meta_is_updated_without_touching_the_job(tmp_path: Path) -> None:
    store = st.Store(tmp_path / "s.db")
    body = {"input": {"mode": "text-to-video", "prompt": "a fox", "duration": 5}}
    store.jobs.sync([("a", "kling-2-1", body), ("b", "kling-2-1", body)])
    assert store.job_meta.record([("a", {"k": 1}), ("b", None)]) == 1
    assert store.job_meta.record([("a", {"k": 1}), ("b", None)]) == 0  # nothing new: no write
    assert store.job_meta.record([("a", {"k": 2}), ("b", {"z": "q"})]) == 2
    row = store.jobs.get("a")
    assert row is not None and store.job_meta.of(row.seq) == {"k": 2}
    assert store.jobs.sync([("a", "kling-2-1", body)]).unchanged == 1


def test_a_state_file_of_version_3_gets_meta(tmp_path: Path) -> None:
    path = tmp_path / "batchgen.db"
    db = sqlite3.connect(path)
    db.executescript((DATA / "state-v3.sql").read_text(encoding="utf-8"))
    db.close()
    reader = st.Store(path, readonly=True)  # report and status read it as it is
    assert reader.get_meta("schema_version") == "3"
    assert all(rec["meta"] == {} for rec in report.records(reader))
    assert "".join(report.to_csv_rows(reader)).splitlines()[0].endswith("note,attempts")
    reader.close()
    store = st.Store(path)
    assert store.get_meta("schema_version") == str(st.SCHEMA_VERSION) == "6"
    assert store.job_meta.record([("job-0", {"season": "winter"})]) == 1
    assert next(report.records(store))["meta"] == {"season": "winter"}
    store.close()
    assert st.Store(path).get_meta("schema_version") == str(st.SCHEMA_VERSION)  # idempotent


def test_filename_template_takes_meta() -> None:
    name = render_filename("{season}/{id}-{take:02d}.mp4", job_id="a", index=1, task_id=None,
                           mode="m", n_results=2, meta={"season": "a/b", "take": 3})  # fmt: skip
    assert name == "a_b/a-03-2.mp4"
    shadow = render_filename("{id}.mp4", job_id="a", index=0, task_id=None, mode="m",
                             n_results=1, meta={"id": "no"})  # fmt: skip
    assert shadow == "a.mp4"
    assert check_filename("{season}/{id}.mp4", {"season"}) == []
    assert "a meta name every job has" in check_filename("{season}/{id}.mp4")[0]
