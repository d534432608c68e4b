"""The state file's transitions, idempotent loading, recovery and refusal of foreign files."""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
from pathlib import Path

import pytest

from batchgen import store as st
from batchgen.errors import IllegalTransition, StateDiskFull, StateError


def body(prompt: str) -> dict:
    return {
        "input": {
            "mode": "master-text-to-video",
            "prompt": prompt,
            "duration": 5,
            "aspect_ratio": "1:1",
        }
    }


@pytest.fixture
def store(tmp_path: Path):
    s = st.Store(tmp_path / "state.db")
    s.jobs.sync([("a", "kling-2-1", body("a")), ("b", "kling-2-1", body("b"))])
    yield s
    s.close()


def state_of(store: st.Store, job_id: str) -> str:
    row = store.jobs.get(job_id)
    assert row is not None
    return row.state


def test_loading_is_idempotent_and_reports_changed_bodies(store: st.Store) -> None:
    again = store.jobs.sync(
        [
            ("a", "kling-2-1", body("a")),
            ("b", "kling-2-1", body("B!")),
            ("c", "kling-2-1", body("c")),
        ]
    )
    assert (again.added, again.unchanged, again.changed) == (1, 1, ["b"])
    assert store.jobs.get("b").body_dict() == body("b")  # left as it was
    assert [r.id for r in store.jobs.pending_after(0, 10)] == ["a", "b", "c"]


def test_the_happy_path_and_guards_on_each_transition(store: st.Store) -> None:
    a = store.jobs.get("a").seq
    with pytest.raises(IllegalTransition):  # no task id without a recorded intent
        store.moves.mark_in_flight(a, "t1")
    assert store.moves.mark_submitting(a)
    assert not store.moves.mark_submitting(a)  # never twice
    assert store.moves.mark_in_flight(a, "t1")
    assert store.moves.mark_succeeded(
        a,
        ["https://cdn/x.mp4"],
        expires_at=1e12,
        create_time_ms=1,
        complete_time_ms=2,
        cost_time_ms=1,
    )
    store.moves.mark_file_done(a, 0, path="a.mp4", size=3, sha256="00", mtime_ns=1)
    assert store.moves.mark_done(a)
    assert state_of(store, "a") == st.DONE
    assert store.jobs.get("a").submit_attempts == 1


def test_a_restart_turns_submitting_into_ambiguous_never_pending(store: st.Store) -> None:
    a = store.jobs.get("a").seq
    store.moves.mark_submitting(a)
    assert store.moves.recover_interrupted() == 1
    assert state_of(store, "a") == st.AMBIGUOUS
    assert store.jobs.pending_after(0, 10)[0].id == "b"
    assert store.moves.requeue_ambiguous() == 1
    assert state_of(store, "a") == st.PENDING


def test_a_refused_submit_goes_back_to_pending_without_an_attempt(store: st.Store) -> None:
    a = store.jobs.get("a").seq
    store.moves.mark_submitting(a)
    assert store.moves.mark_not_submitted(a)
    assert state_of(store, "a") == st.PENDING
    assert store.jobs.get("a").submit_attempts == 0


async def test_synced_fsyncs_the_wal_off_the_loop_and_commits_stay_normal(
    store: st.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[tuple[str, bool]] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        on_loop = threading.current_thread() is threading.main_thread()
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), on_loop))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    a = store.jobs.get("a").seq
    assert store.moves.mark_submitting(a)
    assert synced == []  # a commit alone writes to the WAL, no fsync
    await store.synced()
    assert synced == [(f"{store.path.resolve()}-wal", False)]
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert store.fsyncs == 1


async def test_synced_turns_a_failing_fsync_into_a_state_error(
    store: st.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StateDiskFull):
        await store.synced()


def test_foreign_and_newer_files_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StateError, match="not a usable batchgen state file"):
        st.Store(junk)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(StateError, match="not a batchgen state file"):
        st.Store(other)
    newer = st.Store(tmp_path / "newer.db")
    newer.set_meta_many({"schema_version": str(st.SCHEMA_VERSION + 1)})
    newer.close()
    with pytest.raises(StateError, match="newer batchgen"):
        st.Store(tmp_path / "newer.db")
    with pytest.raises(StateError, match="no such state file"):
        st.Store(tmp_path / "missing.db", readonly=True)


@pytest.mark.parametrize("folder", ["plain", "with space #1 ?x"])
def test_reading_a_state_file_leaves_no_wal_or_shm_behind_and_cannot_write(
    tmp_path: Path, folder: str
) -> None:
    """status, report and gallery read the state file; they used to leave batchgen.db-wal and
    -shm next to it (a mode=ro connection cannot remove them)."""
    path = tmp_path / folder / "batchgen.db"
    writer = st.Store(path)
    writer.jobs.sync([("a", "kling-2-1", body("one"))])
    writer.close()
    assert sorted(p.name for p in path.parent.iterdir()) == ["batchgen.db"]
    reader = st.Store(path, readonly=True)
    assert reader.jobs.counts()[st.PENDING] == 1
    with pytest.raises(sqlite3.OperationalError):
        reader.db.execute("UPDATE jobs SET state='done'")
    reader.close()
    assert sorted(p.name for p in path.parent.iterdir()) == ["batchgen.db"]
    assert st.Store(path, readonly=True).jobs.counts()[st.PENDING] == 1  # nothing was written


def test_a_state_file_the_user_cannot_write_is_still_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "batchgen.db"
    writer = st.Store(path)
    writer.jobs.sync([("a", "kling-2-1", body("one"))])
    writer.close()
    # not writable for this user (os.access, since root may write through any chmod)
    monkeypatch.setattr(st.sqlite.os, "access", lambda *_a, **_k: False)
    reader = st.Store(path, readonly=True)
    assert reader.jobs.counts()[st.PENDING] == 1
    with pytest.raises(sqlite3.OperationalError):
        reader.db.execute("UPDATE jobs SET state='done'")
    reader.close()
