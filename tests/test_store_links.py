"""State schema 5: each job's `parent` (the job it continues). A file of version 4 gains the
column when a run opens it (old rows: no parent), is read as it is by status and report, and
the links are written as the manifest says, idempotently."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from batchgen import store as st
from batchgen.store.links import has_parent_column
from batchgen.ui import report

DATA = Path(__file__).resolve().parent / "data"


def _v4(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript((DATA / "state-v3.sql").read_text(encoding="utf-8"))
    db.execute("ALTER TABLE jobs ADD COLUMN meta TEXT")
    db.execute("UPDATE meta SET value='4' WHERE key='schema_version'")
    db.commit()
    db.close()


def test_a_state_file_of_version_4_gets_parent_links(tmp_path: Path) -> None:
    path = tmp_path / "batchgen.db"
    _v4(path)
    reader = st.Store(path, readonly=True)
    assert reader.get_meta("schema_version") == "4" and not has_parent_column(reader.db)
    assert reader.links.children() == {}
    assert list(report.records(reader))  # the report reads it as it is
    reader.close()
    store = st.Store(path)
    assert store.get_meta("schema_version") == str(st.SCHEMA_VERSION) == "6"
    assert has_parent_column(store.db) and store.links.children() == {}
    ids = [r[0] for r in store.db.execute("SELECT id FROM jobs ORDER BY seq LIMIT 2")]
    assert store.links.record([(ids[1], ids[0]), (ids[0], None)]) == 1
    assert store.links.record([(ids[1], ids[0]), (ids[0], None)]) == 0  # nothing new
    child = store.jobs.get(ids[1])
    assert child is not None and store.links.children() == {child.seq: ids[0]}
    assert store.links.parent(ids[0]).seq == store.jobs.get(ids[0]).seq  # type: ignore[union-attr]
    assert store.links.parent("nobody").seq is None
    store.close()
    assert st.Store(path).get_meta("schema_version") == str(st.SCHEMA_VERSION)  # idempotent


def test_a_batch_without_links_costs_no_write(tmp_path: Path) -> None:
    store = st.Store(tmp_path / "s.db")
    store.jobs.sync([("a", "kling-2-1", {"input": {"prompt": "p"}})])
    before = store.db.total_changes
    assert store.links.record([("a", None)]) == 0
    assert store.db.total_changes == before
    store.close()
