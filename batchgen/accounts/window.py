"""An account's sliding window of requests in SQL, counted without reading the window.

Every request of every run of an account asks "how many requests in the last `window_s`?".
Counting the rows each time costs the window's size (10,000 rows at the reference's limit)
per request, which made admission the largest part of a run's client CPU. So the count is
kept: `windows` holds, per account and window length, the count `n` of requests after `upto`
(the window's start when it was last read); each read subtracts only the requests that left
the window since then, and each request taken adds one to every window of its account.

The count is trusted only while nothing it counted was pruned behind its back: `pruned` keeps
the newest request time deleted per account, and a window whose `upto` is older than that (or
later than now: a clock stepped back) is counted again from the rows. SQL shared by SQLite
and PostgreSQL; the caller holds the account's transaction.
"""

from __future__ import annotations

from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (
    account TEXT NOT NULL, window_s {real} NOT NULL, upto {real} NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (account, window_s));
CREATE TABLE IF NOT EXISTS pruned (account TEXT PRIMARY KEY, upto {real} NOT NULL);
"""


def count(db: Any, account: str, window_s: float, now: float) -> int:
    """Requests of `account` in (now - window_s, now], and the kept count brought to now."""
    since = now - window_s
    row = db.execute(
        "SELECT upto, n FROM windows WHERE account = ? AND window_s = ?", (account, window_s)
    ).fetchone()
    pruned = db.execute("SELECT upto FROM pruned WHERE account = ?", (account,)).fetchone()
    trusted = row is not None and row[0] <= since and (pruned is None or row[0] >= pruned[0])
    if trusted:
        (left,) = db.execute(
            "SELECT count(*) FROM requests WHERE account = ? AND t > ? AND t <= ?",
            (account, row[0], since),
        ).fetchone()
        n = int(row[1]) - int(left)
    else:
        (n,) = db.execute(
            "SELECT count(*) FROM requests WHERE account = ? AND t > ?", (account, since)
        ).fetchone()
    db.execute(
        "INSERT INTO windows (account, window_s, upto, n) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (account, window_s) DO UPDATE SET upto = excluded.upto, n = excluded.n",
        (account, window_s, since, int(n)),
    )
    return int(n)


def taken(db: Any, account: str, now: float) -> None:
    """One request at `now`: in every window of the account."""
    db.execute("INSERT INTO requests VALUES (?, ?)", (account, now))
    db.execute("UPDATE windows SET n = n + 1 WHERE account = ? AND upto < ?", (account, now))


def prune(db: Any, account: str, before: float) -> None:
    """Forget request times at or before `before`; windows that counted them recount."""
    gone = db.execute("DELETE FROM requests WHERE account = ? AND t <= ?", (account, before))
    if not gone.rowcount:
        return
    db.execute(
        "INSERT INTO pruned (account, upto) VALUES (?, ?) ON CONFLICT (account) "
        "DO UPDATE SET upto = CASE WHEN excluded.upto > pruned.upto THEN excluded.upto "
        "ELSE pruned.upto END",
        (account, before),
    )
