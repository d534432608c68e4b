"""The account database on a real PostgreSQL server (issue 29): the same admission with the
server's clock and an advisory lock per account; three processes, two of them with clocks a
minute off, share one account's limits with no overshoot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from batchgen.accounts.admission import Limits
from batchgen.accounts.db import AccountDbError, RunInfo
from batchgen.accounts.identity import account_of
from tests.accountkit import scaled_rate, three_runs
from tests.enginekit import KEY, SCALE
from tests.pgkit import pg_url

__all__ = ["pg_url"]

LIMITS = Limits(rate_limit=5, window_s=30.0, max_in_flight=3)


def run_info(tmp: Path, name: str, account: str = "k") -> RunInfo:
    acct = account_of("http://127.0.0.1:9/api/v1", account)
    return RunInfo(name, acct.key, acct.label, os.getpid(), "here", str(tmp / name), LIMITS)


def test_postgres_admission_is_the_same_protocol(pg_url: str, tmp_path: Path) -> None:
    from batchgen.accounts.postgres import PostgresAccountDb

    db = PostgresAccountDb(pg_url, host="here")
    other = PostgresAccountDb(pg_url, host="here")  # a second connection: another machine
    a, b = run_info(tmp_path, "a"), run_info(tmp_path, "b")
    c = run_info(tmp_path, "c", account="another key")
    for d, r in ((db, a), (other, b), (db, c)):
        d.register(r)
    assert all(d.take_request(r).slot is not None for d, r in [(db, a), (other, b)] * 2 + [(db, a)])
    refused = other.take_request(b)
    assert refused.slot is None and 0 < refused.wait <= LIMITS.window_s
    assert db.take_request(c).slot is not None  # another account has its own window
    slots = [db.reserve_slot(a).slot, other.reserve_slot(b).slot, db.reserve_slot(a).slot]
    assert None not in slots and other.reserve_slot(b).slot is None
    db.created(a, slots[0], "t1", "kling-2-1")
    db.unreserve(a, slots[2])
    assert other.reserve_slot(b).slot is not None
    other.post_stop(b, "credits exhausted (402)")
    assert db.reserve_slot(a).stopped == "credits exhausted (402)"
    listing = db.listing()
    assert {x["label"] for x in listing} == {a.label, c.label}
    db.close()
    other.close()


def test_an_unreachable_postgres_is_a_clear_error() -> None:
    from batchgen.accounts.postgres import PostgresAccountDb

    with pytest.raises(AccountDbError, match="cannot open the account database"):
        PostgresAccountDb("postgresql://nobody:secret@127.0.0.1:1/x")
    try:
        PostgresAccountDb("postgresql://nobody:secret@127.0.0.1:1/x")
    except AccountDbError as exc:
        assert "secret" not in str(exc)


@pytest.mark.timeout(300)
async def test_three_processes_on_postgres_two_with_skewed_clocks(
    make_sim, pg_url: str, tmp_path: Path
) -> None:
    cap, rate = 24, 80  # the rate binds: a skewed clock would let a window overshoot
    kw = dict(api_keys=frozenset({KEY}), time_scale=SCALE, max_in_flight=cap, rate_limit=rate)
    shared = await three_runs(
        tmp_path, await make_sim(**kw, seed=31), jobs=30, cap=cap, rate=scaled_rate(rate),
        account_db=pg_url,
        per_run=[(), ("--account-clock-offset", "60"), ("--account-clock-offset", "-60")],
    )  # fmt: skip
    print()
    print(shared.line("on PostgreSQL, skewed", cap))
    assert shared.exits == [0, 0, 0], shared.errs
    assert shared.rate_limited == 0
    assert shared.busiest_window <= rate and shared.peak_in_flight <= cap
    assert shared.accepted == 90
