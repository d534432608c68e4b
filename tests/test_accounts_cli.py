"""`batchgen accounts` and `batchgen status` show the account database: accounts, runs, slots,
tasks and a batch's share, never a key (issue 29)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from batchgen.accounts.admission import Limits
from batchgen.accounts.db import RunInfo
from batchgen.accounts.identity import account_of, default_db_path
from batchgen.accounts.sqlite import SqliteAccountDb
from batchgen.cli import main
from tests.accountkit import state_for

SECRET = "sk-never-shown-1234"


def seed(db_path: Path, state: Path) -> None:
    acct = account_of("http://127.0.0.1:9/api/v1", SECRET)
    db = SqliteAccountDb(db_path)
    run = RunInfo("r1", acct.key, acct.label, 999_999, "elsewhere", os.path.abspath(state),
                  Limits(100, 60.0, 10))  # fmt: skip
    db.register(run)
    db.created(run, db.reserve_slot(run).slot or 0, "task-a", "kling-2-1")
    db.close()


def test_accounts_lists_runs_slots_and_tasks(tmp_path: Path, capsys) -> None:
    state = state_for(tmp_path, "b", 2)
    seed(default_db_path(), state)
    assert main(["accounts"]) == 0
    out = capsys.readouterr().out
    assert "1 task(s) in flight" in out and "task task-a (kling-2-1)" in out
    assert SECRET not in out and "key " in out
    assert main(["accounts", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["accounts"][0]["tasks"][0]["task_id"] == "task-a"
    assert main(["status", str(state)]) == 0
    out = capsys.readouterr().out
    assert "this batch holds 1 of its 1 task(s) in flight" in out
    assert SECRET not in out


def test_accounts_without_a_database(tmp_path: Path, capsys) -> None:
    assert main(["accounts", "--account-db", str(tmp_path / "none-yet.db")]) == 0
    assert "no account has run yet" in capsys.readouterr().out
    assert main(["accounts", "--account-db", "none"]) == 0
    assert "off" in capsys.readouterr().out


def test_accounts_on_an_unusable_database_is_a_clear_error(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database at all" * 100)
    assert main(["accounts", "--account-db", str(bad)]) == 2
    assert "error:" in capsys.readouterr().err


@pytest.fixture(autouse=True)
def _quiet_logs(caplog) -> None:
    caplog.set_level("WARNING")
