"""The account database's admission on SQLite, on an injected clock: the sliding window, the
slots, the shared news, and the tasks of dead runs (issue 29)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from batchgen.accounts import admission as adm
from batchgen.accounts.db import AccountDbError, RunInfo
from batchgen.accounts.identity import account_of, db_location, default_db_path, fingerprint
from batchgen.accounts.sqlite import SqliteAccountDb
from batchgen.adapters.lock import StateLock

LIMITS = adm.Limits(rate_limit=5, window_s=10.0, max_in_flight=3)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def run_info(tmp: Path, name: str, limits: adm.Limits = LIMITS, pid: int | None = None) -> RunInfo:
    acct = account_of("http://127.0.0.1:9/api/v1", "sk-secret")
    return RunInfo(name, acct.key, acct.label, pid or os.getpid(), "here", str(tmp / name), limits)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db(tmp_path: Path, clock: Clock) -> SqliteAccountDb:
    return SqliteAccountDb(tmp_path / "accounts.db", now=clock, host="here", stale_s=30, hold_s=60)


def test_identity_never_holds_the_key() -> None:
    a = account_of("HTTP://Api.Example.com/api/v1/", "sk-secret")
    assert "sk-secret" not in a.key and "sk-secret" not in a.label
    assert a.key == f"http://api.example.com/api/v1#key:{fingerprint('sk-secret')}"
    assert account_of("http://x", "k1", "team").key == account_of("http://x", "k2", "team").key
    assert account_of("http://x", "k1").key != account_of("http://x", "k2").key
    with pytest.raises(ValueError, match="invalid --account"):
        account_of("http://x", "k", "bad name;")


def test_where_the_database_is(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path)}
    assert default_db_path(env) == tmp_path / "batchgen" / "accounts.db"
    assert db_location(None, env) == str(tmp_path / "batchgen" / "accounts.db")
    assert db_location(None, {**env, "BATCHGEN_ACCOUNT_DB": "/x/a.db"}) == "/x/a.db"
    assert db_location("none", {**env, "BATCHGEN_ACCOUNT_DB": "/x/a.db"}) is None
    assert db_location("/y.db", {"BATCHGEN_ACCOUNT_DB": "none"}) == "/y.db"


def test_the_test_suite_keeps_its_database_out_of_home() -> None:
    assert not str(default_db_path()).startswith(str(Path.home() / ".local"))


def test_request_window_is_exact_and_shared(db: SqliteAccountDb, clock: Clock, tmp_path) -> None:
    a, b = run_info(tmp_path, "a"), run_info(tmp_path, "b")
    db.register(a)
    db.register(b)
    granted = [db.take_request(a if i % 2 else b) for i in range(5)]
    assert all(g.slot is not None for g in granted)
    refused = db.take_request(a)
    assert refused.slot is None and refused.wait == pytest.approx(10.0)
    clock.t += 9.99
    assert db.take_request(b).slot is None
    clock.t += 0.02
    assert db.take_request(b).slot is not None  # the first grant left the window


def test_in_flight_slots_are_tasks_not_leases(db: SqliteAccountDb, tmp_path) -> None:
    a, b = run_info(tmp_path, "a"), run_info(tmp_path, "b")
    db.register(a)
    db.register(b)
    s1, s2 = db.reserve_slot(a).slot, db.reserve_slot(b).slot
    s3 = db.reserve_slot(a).slot
    assert None not in (s1, s2, s3)
    assert db.reserve_slot(b).slot is None  # three of three taken, whoever holds them
    db.unreserve(a, s3)  # no task made
    db.created(a, s1, "t1", "kling-2-1")
    db.created(b, s2, "t2", "kling-2-1")
    s4 = db.reserve_slot(b).slot
    assert s4 is not None and db.reserve_slot(a).slot is None
    db.end_run(a)  # its task t1 stays counted: it is at the provider
    assert db.reserve_slot(b).slot is None
    db.ended(b, "t1")
    assert db.reserve_slot(b).slot is not None


def test_shared_news_pause_stop_and_learned_cap(db: SqliteAccountDb, clock, tmp_path) -> None:
    a, b = run_info(tmp_path, "a"), run_info(tmp_path, "b")
    db.register(a)
    db.register(b)
    db.post_pause(a, 4.0, "429 Retry-After")
    assert db.take_request(b).wait == pytest.approx(4.0)
    clock.t += 4.0
    assert db.take_request(b).slot is not None
    s = db.reserve_slot(a).slot
    db.created(a, s, "t1", "m")
    assert db.post_learned(b) == 1  # one task existed at the 429: the cap, for every run
    assert db.reserve_slot(a).slot is None
    clock.t += adm.LEARNED_FORGET_WINDOWS * LIMITS.window_s
    assert db.reserve_slot(a).slot is not None  # forgotten: probe again
    db.post_stop(b, "credits exhausted (402)")
    assert db.reserve_slot(a).stopped == "credits exhausted (402)"
    clock.t += 1
    later = run_info(tmp_path, "c")
    db.register(later)  # a run started after the news tries for itself
    assert db.reserve_slot(later).stopped is None


def test_dead_runs_tasks_are_claimed_once_and_given_back(db: SqliteAccountDb, tmp_path) -> None:
    a, b, c = run_info(tmp_path, "a"), run_info(tmp_path, "b"), run_info(tmp_path, "c")
    with StateLock(a.state_path), StateLock(b.state_path), StateLock(c.state_path):
        for r in (a, b, c):
            db.register(r)
        db.created(a, db.reserve_slot(a).slot, "t1", "kling-2-1")
        assert db.claim_orphans(b) == []  # a lives: its lock is held
    # Every lock is free now (the runs "died"); b is brought back to life alone.
    with StateLock(b.state_path), StateLock(c.state_path):
        claimed = db.claim_orphans(b)
        assert [t.task_id for t in claimed] == ["t1"] and claimed[0].model == "kling-2-1"
        assert db.claim_orphans(c) == []  # b polls it; b lives
        assert db.still_polling(b, "t1")
        assert db.reserve_slot(c).slot is not None
    # a resumes: its state file's task is its own again, nobody else polls it
    a2 = RunInfo("a2", a.account, a.label, a.pid, "here", a.state_path, LIMITS)
    db.register(a2)
    db.own_tasks(a2, [("t1", "kling-2-1", 1.0), ("t9", "kling-2-1", 1.0)])
    assert not db.still_polling(b, "t1")
    listing = db.listing()
    assert {t["task_id"] for t in listing[0]["tasks"]} == {"t1", "t9"}


def test_heartbeat_tells_the_dead_on_another_machine(db, clock, tmp_path) -> None:
    a = run_info(tmp_path, "a")
    far = RunInfo("far", a.account, a.label, 1, "elsewhere", "/nowhere", LIMITS)
    b = run_info(tmp_path, "b")
    with StateLock(b.state_path):
        db.register(far)
        db.register(b)
        db.created(far, db.reserve_slot(far).slot, "t1", "m")
        assert db.claim_orphans(b) == []
        clock.t += 31
        assert [t.task_id for t in db.claim_orphans(b)] == ["t1"]


def test_a_dead_runs_reservation_stays_counted_then_lapses(db, clock, tmp_path) -> None:
    a, b = run_info(tmp_path, "a"), run_info(tmp_path, "b")
    with StateLock(b.state_path):
        db.register(a)
        db.register(b)
        for _ in range(3):
            db.reserve_slot(a)  # a dies with three submits whose answers it never recorded
        assert db.reserve_slot(b).slot is None
        clock.t += 61
        assert db.reserve_slot(b).slot is not None


def test_an_unusable_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(AccountDbError, match="cannot open the account database"):
        SqliteAccountDb(tmp_path / "dir.db")


def test_pure_rules() -> None:
    assert adm.request_wait(10.0, [1.0, 2.0, 3.0, 4.0, 5.0], LIMITS, adm.News()) == 1.0
    assert adm.request_wait(10.0, [1.0], LIMITS, adm.News(paused_until=12.0)) == 2.0
    assert adm.slot_cap(0.0, LIMITS, adm.News(learned_cap=0, learned_at=0.0)) == 1
    assert adm.run_dead(now=100, heartbeat=0, ended=None, stale_s=30, lock_held=True) is False
    assert adm.run_dead(now=10, heartbeat=0, ended=None, stale_s=30, lock_held=None) is False
    assert adm.reservation_lapsed(100, 0, owner_dead=False, hold_s=10) is False


def test_ended_runs_are_forgotten_a_day_later(db: SqliteAccountDb, clock, tmp_path) -> None:
    a, b = run_info(tmp_path, "a"), run_info(tmp_path, "b")
    db.register(a)
    db.end_run(a)
    clock.t += 86401
    db.register(b)
    assert [r["run"] for r in db.listing()[0]["runs"]] == ["b"]
    assert db._db.execute("SELECT count(*) FROM runs").fetchone()[0] == 1


@pytest.fixture(scope="module")
def db_path_seen_by_a_module_fixture() -> Path:
    return default_db_path()


def test_no_fixture_or_undo_reaches_the_real_home(
    db_path_seen_by_a_module_fixture: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = Path.home() / ".local"
    assert not str(db_path_seen_by_a_module_fixture).startswith(str(home))
    monkeypatch.setenv("X_UNRELATED", "1")
    monkeypatch.undo()  # a test undoing its own patches keeps the suite's tmp state folder
    assert not str(default_db_path()).startswith(str(home))
