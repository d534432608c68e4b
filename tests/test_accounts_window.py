"""The account's request window counted without reading it (accounts/window.py): whatever the
order of requests, reads of windows of several lengths, prunes and a clock stepped back, the
kept count equals the rows counted one by one, on SQLite (PostgreSQL runs the same SQL in
test_accounts_postgres.py's shared runs)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as hs

from batchgen.accounts import window
from batchgen.accounts.admission import Limits
from batchgen.accounts.db import RunInfo
from batchgen.accounts.identity import account_of
from batchgen.accounts.sqlite import SqliteAccountDb

WINDOWS = (1.0, 2.5)

ops = hs.lists(
    hs.one_of(
        hs.tuples(hs.just("take"), hs.floats(0.0, 3.0), hs.sampled_from(["a", "b"])),
        hs.tuples(hs.just("read"), hs.floats(0.0, 3.0), hs.sampled_from(WINDOWS)),
        hs.tuples(hs.just("prune"), hs.floats(0.0, 6.0), hs.sampled_from(["a", "b"])),
        hs.tuples(hs.just("back"), hs.floats(0.0, 2.0), hs.just("")),
    ),
    max_size=60,
)


def brute(db: sqlite3.Connection, account: str, since: float) -> int:
    return db.execute(
        "SELECT count(*) FROM requests WHERE account = ? AND t > ?", (account, since)
    ).fetchone()[0]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(ops)
def test_the_kept_count_is_the_count_of_the_rows(steps: list[tuple[str, float, str]]) -> None:
    db = sqlite3.connect(":memory:")
    db.executescript(
        "CREATE TABLE requests (account TEXT NOT NULL, t REAL NOT NULL);"
        + window.SCHEMA.format(real="REAL")
    )
    now = 100.0
    for op, x, arg in steps:
        if op == "take":
            now += x
            window.taken(db, arg, now)
        elif op == "read":
            now += x
            w = float(arg)
            for account in ("a", "b"):
                assert window.count(db, account, w, now) == brute(db, account, now - w)
        elif op == "prune":
            window.prune(db, arg, now - x)
        else:
            now -= x  # the wall clock stepped back
        for account in ("a", "b"):
            for w in WINDOWS:
                assert window.count(db, account, w, now) == brute(db, account, now - w)


def test_a_full_window_is_still_refused_with_the_kept_count(tmp_path: Path) -> None:
    """Through take_request: the rate limit holds exactly when counts are kept."""
    t = [1000.0]
    db = SqliteAccountDb(tmp_path / "a.db", now=lambda: t[0], host="here")
    acct = account_of("http://127.0.0.1:9/api/v1", "k")
    run = RunInfo("r", acct.key, acct.label, 1, "here", "/s", Limits(3, 10.0, 5))
    db.register(run)
    granted = []
    for _ in range(40):
        t[0] += 1.0
        granted.append(db.take_request(run).slot is not None)
        for _ in range(4):  # three more asks in the same second: only up to the limit
            granted.append(db.take_request(run).slot is not None)
    times = [row[0] for row in db._db.execute("SELECT t FROM requests ORDER BY t")]
    for i, ti in enumerate(times):
        assert sum(1 for tj in times[: i + 1] if tj > ti - 10.0) <= 3
    assert sum(granted) == len(times) > 0
