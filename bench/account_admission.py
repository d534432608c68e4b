"""The cost of admission per submit through the account database (issue 29), printed, never
asserted: one submit is a request slot, an in-flight slot, its task recorded and, later,
freed (four short transactions); a poll is one request slot.

    .venv/bin/python bench/account_admission.py [--n 2000] [--pg postgresql://...]

Without --pg a PostgreSQL server is started in a temporary folder when its binaries are
installed (as the tests do), else only SQLite is measured."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from batchgen.accounts.admission import Limits
from batchgen.accounts.db import AccountDb, RunInfo
from batchgen.accounts.identity import account_of
from batchgen.accounts.sqlite import SqliteAccountDb


def measure(db: AccountDb, n: int, label: str) -> None:
    acct = account_of("http://127.0.0.1:9/api/v1", f"bench-{label}")
    limits = Limits(rate_limit=10**9, window_s=60.0, max_in_flight=10**9)
    run = RunInfo(f"bench-{label}", acct.key, acct.label, os.getpid(), "bench", "/x", limits)
    db.register(run)
    t0 = time.perf_counter()
    for i in range(n):
        db.take_request(run)
        slot = db.reserve_slot(run).slot or 0
        db.created(run, slot, f"task-{i}", "kling-2-1")
    t1 = time.perf_counter()
    for i in range(n):
        db.ended(run, f"task-{i}")
    t2 = time.perf_counter()
    for _ in range(n):
        db.take_request(run)
    t3 = time.perf_counter()
    per_submit = ((t1 - t0) + (t2 - t1)) / n * 1e6
    print(
        f"{label:>10}: {per_submit:8.0f} us per submit (request slot, in-flight slot, task "
        f"recorded, freed), {(t3 - t2) / n * 1e6:6.0f} us per poll's request slot  (n={n})"
    )


@contextlib.contextmanager
def postgres(url: str | None) -> Iterator[str | None]:
    if url:
        yield url
        return
    try:
        from tests.pgkit import pg_bin, postgres_server
    except ImportError:
        yield None
        return
    if pg_bin() is None:
        yield None
        return
    with postgres_server() as started:
        yield started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--pg", metavar="URL", help="an existing PostgreSQL server to use")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = SqliteAccountDb(Path(tmp) / "accounts.db")
        measure(db, args.n, "SQLite")
        db.close()
    with postgres(args.pg) as url:
        if url is None:
            print("PostgreSQL: no server binaries and no --pg URL: not measured")
            return
        from batchgen.accounts.postgres import PostgresAccountDb

        pg = PostgresAccountDb(url)
        measure(pg, args.n, "PostgreSQL")
        pg.close()


if __name__ == "__main__":
    main()
