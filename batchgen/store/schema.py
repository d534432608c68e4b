"""The state file's tables, and the version they are at (migrations: batchgen/store/__init__.py
`_migrate`, one step per version, each in one transaction)."""

from __future__ import annotations

SCHEMA_VERSION = 6
"""2: every job's `model` is its own (one batch may mix models); files of version 1 held one
model for the whole batch (meta `model`) and are migrated on open (`_migrate_1_to_2`).
3: the spend ledger (`attempts`) and learned `prices` (`_migrate_2_to_3`).
4: each job's `meta` (a JSON object, NULL: none), added to the rows of older files
(`jobmeta.add_meta_column`).
5: which account made each task (`jobs.account`, `attempts.account`; NULL: the run's one key),
for runs over several accounts (`jobaccounts.add_account_columns`).
6: each job's `parent` (the job id it continues, `extends`; NULL: none), added to the rows of
older files (`links.add_parent_column`)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    seq              INTEGER PRIMARY KEY,      -- manifest order
    id               TEXT NOT NULL UNIQUE,
    model            TEXT NOT NULL,
    body             TEXT NOT NULL,            -- the exact JSON body to POST
    body_sha         TEXT NOT NULL,
    mode             TEXT,
    duration         INTEGER,
    state            TEXT NOT NULL,
    task_id          TEXT,
    submit_attempts  INTEGER NOT NULL DEFAULT 0,  -- POSTs that may have reached the provider
    submitted_at     REAL,                     -- Unix seconds
    completed_at     REAL,
    create_time_ms   INTEGER,                  -- as the provider reported them
    complete_time_ms INTEGER,
    cost_time_ms     INTEGER,
    fail_code        TEXT,
    fail_msg         TEXT,
    expires_at       REAL,                     -- Unix seconds: when the result URLs die
    changed_body     TEXT,                     -- a newer manifest body under this id, not applied
    note             TEXT,                     -- why the job is ambiguous/expired, for people
    updated_at       REAL NOT NULL,
    meta             TEXT,                     -- the job's meta as a JSON object (jobmeta.py)
    account          TEXT,                     -- the account of its current submit (NULL: the key)
    parent           TEXT                      -- the id of the job it continues (links.py)
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, seq);
CREATE INDEX IF NOT EXISTS jobs_by_task ON jobs (task_id);
CREATE TABLE IF NOT EXISTS files (
    job_seq   INTEGER NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
    idx       INTEGER NOT NULL,
    url       TEXT NOT NULL,
    path      TEXT,                            -- relative to the output folder
    bytes     INTEGER,
    sha256    TEXT,
    mtime_ns  INTEGER,
    done_at   REAL,
    PRIMARY KEY (job_seq, idx)
);
CREATE TABLE IF NOT EXISTS attempts (
    job_seq      INTEGER NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
    n            INTEGER NOT NULL,             -- the job's 1st, 2nd... submit that made a task
    price_key    TEXT NOT NULL,                -- model/mode/duration (batchgen/money/prices.py)
    price_micros INTEGER NOT NULL,             -- reserved with the intent, spent unless refunded
    outcome      TEXT NOT NULL,                -- sent, succeeded, failed, resubmitted
    refunded     INTEGER NOT NULL DEFAULT 0,   -- a refund of it was seen in the balance
    task_id      TEXT,
    fail_code    TEXT,
    fail_msg     TEXT,
    started_at   REAL NOT NULL,
    ended_at     REAL,
    account      TEXT,                         -- the account that sent it (NULL: the run's key)
    PRIMARY KEY (job_seq, n)
);
CREATE TABLE IF NOT EXISTS prices (
    key          TEXT PRIMARY KEY,             -- model/mode/duration
    micros       INTEGER NOT NULL,             -- learned from the balance around one submit
    learned_at   REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY,
    pid         INTEGER NOT NULL,
    started_at  REAL NOT NULL,
    ended_at    REAL,
    exit_code   INTEGER,
    how         TEXT
);
"""
