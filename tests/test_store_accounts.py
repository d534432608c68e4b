"""The state file records which account made each task (schema 5): the intent names it, in
its transaction, on the job and on its ledger row; a version 4 file is migrated (its rows
were made by the run's one key: NULL) and read as it is when opened read-only."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from batchgen import store as st

BODY = {"input": {"mode": "text-to-video", "prompt": "a fox", "duration": 5}}


def _two_jobs(path: Path) -> st.Store:
    store = st.Store(path)
    store.jobs.sync([("a", "kling-2-1", BODY), ("b", "kling-2-1", BODY)])
    return store


def test_the_intent_names_its_account_on_the_job_and_the_ledger(tmp_path: Path) -> None:
    store = _two_jobs(tmp_path / "s.db")
    a, b = store.jobs.get("a"), store.jobs.get("b")
    assert a is not None and b is not None
    assert store.moves.mark_submitting(a.seq, (1, "k", 700_000), "alpha")
    assert store.moves.mark_submitting(b.seq, (1, "k", 500_000), "beta")
    assert store.moves.mark_in_flight(a.seq, "task_1")
    assert store.accounts.of(a.seq) == "alpha"
    assert store.accounts.needed() == {"alpha": 1, "beta": 1}
    assert store.accounts.spent_by("alpha") == 700_000
    assert store.accounts.spent_by("beta") == 500_000
    store.ledger.release(b.seq, 1)  # no task was made: beta spent nothing
    store.moves.mark_not_submitted(b.seq)
    assert store.accounts.spent_by("beta") == 0
    assert store.accounts.needed() == {"alpha": 1}


def test_a_version_4_file_is_migrated_and_read_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = _two_jobs(path)
    a = store.jobs.get("a")
    assert a is not None and store.moves.mark_submitting(a.seq, (1, "k", 700_000))
    store.close()
    db = sqlite3.connect(path)  # make it a version 4 file: no account columns
    db.execute("ALTER TABLE jobs DROP COLUMN account")
    db.execute("ALTER TABLE attempts DROP COLUMN account")
    db.execute("UPDATE meta SET value='4' WHERE key='schema_version'")
    db.commit()
    db.close()
    reader = st.Store(path, readonly=True)
    assert reader.get_meta("schema_version") == "4"
    assert reader.accounts.of(a.seq) is None
    assert reader.accounts.needed() == {}
    reader.close()
    store = st.Store(path)
    assert store.get_meta("schema_version") == str(st.SCHEMA_VERSION) == "6"
    assert store.accounts.of(a.seq) is None  # the run's one key made it
    assert store.ledger.spent() == 700_000
    store.close()
    assert st.Store(path).get_meta("schema_version") == str(st.SCHEMA_VERSION)  # idempotent
