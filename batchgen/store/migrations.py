"""Older state files brought up to today's schema, each step in one transaction.

A migration is history: it prices what an old file spent with the table batchgen had when the
ledger arrived (state schema 3), frozen here, not with today's price table, which changes as
models and prices do (and lives above the store, in money/).
"""

from __future__ import annotations

import sqlite3

from batchgen.models import DEFAULT_MODEL
from batchgen.states import JobState
from batchgen.store.schema import SCHEMA

# USD micro-dollars per (model, mode, duration s), as batchgen's tables read when schema 3
# came (kling-2-1 and kling-2-5-turbo-pro were the models then).
_PRICES_AT_SCHEMA_3: dict[tuple[str, str, int], int] = {
    ("kling-2-1", "standard-image-to-video", 5): 250_000,
    ("kling-2-1", "standard-image-to-video", 10): 500_000,
    ("kling-2-1", "pro-image-to-video", 5): 450_000,
    ("kling-2-1", "pro-image-to-video", 10): 900_000,
    ("kling-2-1", "master-image-to-video", 5): 1_000_000,
    ("kling-2-1", "master-image-to-video", 10): 2_000_000,
    ("kling-2-1", "master-text-to-video", 5): 1_000_000,
    ("kling-2-1", "master-text-to-video", 10): 2_000_000,
    ("kling-2-5-turbo-pro", "text-to-video", 5): 350_000,
    ("kling-2-5-turbo-pro", "text-to-video", 10): 700_000,
    ("kling-2-5-turbo-pro", "image-to-video", 5): 350_000,
    ("kling-2-5-turbo-pro", "image-to-video", 10): 700_000,
}
_OUTCOME = {JobState.DONE: "succeeded", JobState.SUCCEEDED: "succeeded", JobState.FAILED: "failed"}


def price_at_schema_3(model: str, mode: str | None, duration: int | None) -> tuple[str, int]:
    """(price key, micro-dollars) of a job's class then; a class the table lacked is priced at
    its model's dearest (else the dearest of all), as the price book did, so a cap counts too
    much rather than too little."""
    mode, duration = mode or "standard-image-to-video", duration or 5
    key = f"{model}/{mode}/{duration}s"
    price = _PRICES_AT_SCHEMA_3.get((model, mode, duration))
    if price is None:
        same = [p for (m, _, _), p in _PRICES_AT_SCHEMA_3.items() if m == model]
        price = max(same or _PRICES_AT_SCHEMA_3.values())
    return key, price


def set_version(db: sqlite3.Connection, version: int) -> None:
    db.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
        "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
        (str(version),),
    )


def one_to_two(db: sqlite3.Connection) -> None:
    """Version 1 wrote the batch's one model into every row and into meta `model`: make sure
    each row names it (rows are the truth from now on). Inside the caller's transaction."""
    row = db.execute("SELECT value FROM meta WHERE key='model'").fetchone()
    batch_model = (row[0] if row else None) or DEFAULT_MODEL
    db.execute("UPDATE jobs SET model=? WHERE model IS NULL OR model=''", (batch_model,))
    set_version(db, 2)


def two_to_three(db: sqlite3.Connection) -> None:
    """The spend ledger and learned prices. Each job that may have made a task gets its first
    attempt, priced from the table of then: the spend cap counts what earlier runs spent.
    Inside the caller's transaction (all or nothing)."""
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    rows = db.execute(
        "SELECT seq, model, mode, duration, state, task_id, fail_code, fail_msg,"
        " COALESCE(submitted_at, updated_at), completed_at FROM jobs"
        " WHERE task_id IS NOT NULL OR state IN (?, ?, ?)",
        (JobState.AMBIGUOUS, JobState.ORPHANED, JobState.SUBMITTING),
    ).fetchall()
    for seq, model, mode, duration, state, task_id, code, msg, start, end in rows:
        key, price = price_at_schema_3(model, mode, duration)
        failed = state == JobState.FAILED
        db.execute(
            "INSERT INTO attempts (job_seq, n, price_key, price_micros, outcome,"
            " task_id, fail_code, fail_msg, started_at, ended_at)"
            " VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, key, price, _OUTCOME.get(state, "sent"), task_id,
             code if failed else None, msg if failed else None, start, end),
        )  # fmt: skip
    set_version(db, 3)
