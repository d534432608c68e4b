-- A state file as batchgen wrote it at commit 497d230 (state schema 3): tests/data/state-v1.sql, migrated by that version.
BEGIN TRANSACTION;
CREATE TABLE attempts (
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
    PRIMARY KEY (job_seq, n)
);
INSERT INTO "attempts" VALUES(3,1,'kling-2-1/standard-image-to-video/5s',250000,'sent',0,'task_v1_0003',NULL,NULL,1.79628764011973929403e+09,NULL);
CREATE TABLE files (
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
CREATE TABLE jobs (
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
    updated_at       REAL NOT NULL
);
INSERT INTO "jobs" VALUES(1,'job-0','kling-2-1','{"request_type":"async","provider":"auto","input":{"mode":"standard-image-to-video","prompt":"v1 job 0: a calm sea","duration":5,"image_urls":["https://example.com/0.jpg"]}}','f5f3ccbcb1bbc99b7a2f0d0cafc0ae231e5da757ec20ca64b88a8bd477ee5854','standard-image-to-video',5,'pending',NULL,0,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,1.79628764011940741541e+09);
INSERT INTO "jobs" VALUES(2,'job-1','kling-2-1','{"request_type":"async","provider":"auto","input":{"mode":"master-text-to-video","prompt":"v1 job 1: a calm sea","duration":10,"aspect_ratio":"16:9"}}','578346ce0b4d8a829860db312f552c5384e6c70ff04ece6f679bdc98dbc8a696','master-text-to-video',10,'pending',NULL,0,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,1.79628764011940741541e+09);
INSERT INTO "jobs" VALUES(3,'job-2','kling-2-1','{"request_type":"async","provider":"auto","input":{"mode":"standard-image-to-video","prompt":"v1 job 2: a calm sea","duration":5,"image_urls":["https://example.com/2.jpg"]}}','cff36ce068971752f6dc5e6b615fbf254347129bb5c4c4e18d21516c7c81fb44','standard-image-to-video',5,'in_flight','task_v1_0003',1,1.79628764011973929403e+09,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,1.79628764011973929403e+09);
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO "meta" VALUES('schema_version','3');
INSERT INTO "meta" VALUES('output_dir','out');
INSERT INTO "meta" VALUES('filename_template','{id}.mp4');
INSERT INTO "meta" VALUES('model','kling-2-1');
CREATE TABLE prices (
    key          TEXT PRIMARY KEY,             -- model/mode/duration
    micros       INTEGER NOT NULL,             -- learned from the balance around one submit
    learned_at   REAL NOT NULL
);
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    pid         INTEGER NOT NULL,
    started_at  REAL NOT NULL,
    ended_at    REAL,
    exit_code   INTEGER,
    how         TEXT
);
CREATE INDEX jobs_by_state ON jobs (state, seq);
CREATE INDEX jobs_by_task ON jobs (task_id);
COMMIT;
