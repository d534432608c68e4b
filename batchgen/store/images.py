"""What the state file remembers about input images: passed checks of remote URLs, and local
files (their hash, where they were found, their key in the image store).

Two tables of their own, created on first use (`CREATE TABLE IF NOT EXISTS`), so a state file
written by an earlier batchgen gains them without a schema bump and an older batchgen reading
a newer file simply ignores them. Never a signature: presigned URLs are made at submit time and
kept in memory only.
"""

from __future__ import annotations

import json
import sqlite3
import time

from batchgen.core.imagecheck import ImageCheck

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS image_checks (
        url        TEXT PRIMARY KEY,
        kind       TEXT NOT NULL,
        bytes      INTEGER,
        width      INTEGER,
        height     INTEGER,
        warnings   TEXT NOT NULL,           -- JSON list of strings
        checked_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS local_images (
        sha256      TEXT PRIMARY KEY,        -- of the file's content: the job's identity
        ext         TEXT NOT NULL,           -- .jpg, .png or .webp, from the content
        path        TEXT NOT NULL,           -- absolute, where the manifest pointed
        bytes       INTEGER NOT NULL,
        store_key   TEXT,                    -- s3://bucket/key once uploaded (no signature)
        uploaded_at REAL
    )""",
)


class ImageRecords:
    """Reads and writes of the two image tables on the run's state-file connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        for statement in _SCHEMA:
            self.db.execute(statement)

    # -- remote URLs ---------------------------------------------------------------------------

    def cached_check(self, url: str) -> ImageCheck | None:
        row = self.db.execute(
            "SELECT kind, bytes, width, height, warnings FROM image_checks WHERE url=?", (url,)
        ).fetchone()
        if row is None:
            return None
        kind, size, width, height, warnings = row
        return ImageCheck(url, kind, size, width, height, tuple(json.loads(warnings)))

    def save_check(self, check: ImageCheck) -> None:
        """Only passed checks are kept: a failed one is looked at again by `retry`."""
        if check.error is not None or check.kind is None:
            return
        self.db.execute(
            "INSERT OR REPLACE INTO image_checks VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                check.url,
                check.kind,
                check.size,
                check.width,
                check.height,
                json.dumps(list(check.warnings)),
                time.time(),
            ),
        )

    # -- local files ---------------------------------------------------------------------------

    def add_local(self, sha256: str, ext: str, path: str, size: int) -> None:
        """Remember where a file was found; a later manifest may name another path for it."""
        self.db.execute(
            "INSERT INTO local_images (sha256, ext, path, bytes) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (sha256) DO UPDATE SET path=excluded.path",
            (sha256, ext, path, size),
        )

    def local(self, sha256: str) -> tuple[str, str, int, str | None] | None:
        """(ext, path, bytes, store_key) of a known file."""
        return self.db.execute(
            "SELECT ext, path, bytes, store_key FROM local_images WHERE sha256=?", (sha256,)
        ).fetchone()

    def mark_uploaded(self, sha256: str, store_key: str) -> None:
        self.db.execute(
            "UPDATE local_images SET store_key=?, uploaded_at=? WHERE sha256=?",
            (store_key, time.time(), sha256),
        )

    # -- jobs ----------------------------------------------------------------------------------

    def note_warning(self, job_id: str, text: str) -> None:
        """A warning the report shows on the job (its note), unless it has one already."""
        self.db.execute("UPDATE jobs SET note=? WHERE id=? AND note IS NULL", (text, job_id))
