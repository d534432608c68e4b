"""What a person reads after a run: results.jsonl, `batchgen report`, the summary line.

One record per job, built from the state file alone (a page at a time, so a 100,000-job state
costs little memory), so the report can be rebuilt at any moment without the manifest.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batchgen import store as st
from batchgen.store import jobmeta, ledger, views

log = logging.getLogger("batchgen.report")

# How a state-file state reads in the report: work still at the provider or on its way to disk
# is `in_flight`; a job never sent (or sent and surely refused) is `pending`.
REPORT_STATUS = {
    st.PENDING: "pending",
    st.SUBMITTING: "ambiguous",
    st.IN_FLIGHT: "in_flight",
    st.SUCCEEDED: "in_flight",
    st.DONE: "done",
    st.FAILED: "failed",
    st.AMBIGUOUS: "ambiguous",
    st.ORPHANED: "orphaned",
    st.EXPIRED: "expired",
    st.CANCELLED: "cancelled",
}

FIELDS = (
    "id",
    "status",
    "task_id",
    "files",
    "fail_code",
    "fail_msg",
    "submitted_at",
    "completed_at",
    "cost_time_ms",
    "model",
    "mode",
    "duration",
    "prompt",
    "negative_prompt",
    "aspect_ratio",
    "cfg_scale",
    "provider",
    "expires_at",
    "note",
    "attempts",
    "meta",
)
META_PREFIX = "meta."
"""A CSV report has one column per meta name, `meta.<name>`: the spelling a CSV manifest uses
for meta, and never one of the columns above."""


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def telling(store: st.Store, on_result: Callable[[dict[str, Any]], None]) -> Callable[[int], None]:
    """A store's finished hook that calls `on_result` with the job's record. A callback that
    raises never changes the run: it is logged (once) and the run goes on."""
    said = False

    def tell(seq: int) -> None:
        nonlocal said
        try:
            record = record_of(store, seq)
            if record is not None:
                on_result(record)
        except Exception as exc:
            if not said:
                said = True
                log.warning("on_result raised %s: the run goes on", type(exc).__name__)

    return tell


def record_of(store: st.Store, seq: int) -> dict[str, Any] | None:
    """One job's record, as `records` gives it (the Python API's on_result)."""
    row = store.jobs.by_seq(seq)
    got = next(records(store, page=1, after=seq - 1), None)
    return got if got is not None and row is not None and got["id"] == row.id else None


def records(store: st.Store, *, page: int = 1000, after: int = 0) -> Iterator[dict[str, Any]]:
    """Every job in manifest order (after seq `after`), with its files, as plain JSON-ready
    dicts. With a bucket output each file also names its object: `s3://BUCKET/PREFIX/<path>`."""
    last = after
    bucket = store.get_meta("result_store")
    while True:
        rows, files = views.report_page(store.db, last, page)
        if not rows:
            return
        last = rows[-1][0]
        tries = store.ledger.all_attempts(rows[0][0], last)
        metas = jobmeta.meta_between(store.db, rows[0][0], last)
        for (
            seq,
            job_id,
            body,
            state,
            task_id,
            submitted,
            completed,
            cost,
            code,
            msg,
            expires,
            note,
            model,
        ) in rows:
            inp = json.loads(body).get("input", {})
            if bucket:
                for f in files.get(seq, []):
                    if f.get("path"):
                        f["object"] = f"{bucket.rstrip('/')}/{f['path']}"
            yield {
                "id": job_id,
                "status": REPORT_STATUS.get(state, state),
                "task_id": task_id,
                "files": files.get(seq, []),
                "fail_code": code,
                "fail_msg": msg,
                "submitted_at": _iso(submitted),
                "completed_at": _iso(completed),
                "cost_time_ms": cost,
                "model": model,
                "mode": inp.get("mode"),
                "duration": inp.get("duration"),
                "prompt": inp.get("prompt"),
                "negative_prompt": inp.get("negative_prompt"),
                "aspect_ratio": inp.get("aspect_ratio"),
                "cfg_scale": inp.get("cfg_scale"),
                "provider": json.loads(body).get("provider"),
                "expires_at": _iso(expires),
                "note": note,
                # every task made for the job: a transient failure resubmitted, then the last
                "attempts": ledger.shown(tries.get(seq, [])),
                "meta": metas.get(seq, {}),  # `meta:`; a matrix job's variables
            }


def write_jsonl(store: st.Store, path: Path) -> int:
    """Atomically replace `path`: a reader sees the old report or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".results-", suffix=".tmp", dir=path.parent)
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for rec in records(store):
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                n += 1
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return n


def to_csv_rows(store: st.Store, recs: Iterable[dict[str, Any]] | None = None) -> Iterator[str]:
    """CSV of `recs` (default: every record): a file shows as its object, presigned link
    (when asked) or path."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    keys = jobmeta.meta_keys(store.db)
    columns = [f for f in FIELDS if f != "meta"]
    writer.writerow([*columns, *(META_PREFIX + k for k in keys)])
    for rec in records(store) if recs is None else recs:
        files = rec["files"]
        row = dict(rec)
        row["files"] = "|".join(
            f.get("presigned_url") or f.get("object") or f["path"] or "" for f in files
        )
        row["attempts"] = "|".join(
            f"{a['outcome']}" + (f":{a['fail_code']}" if a["fail_code"] else "")
            for a in rec["attempts"]
        )
        meta = rec["meta"]
        writer.writerow(
            ["" if row[k] is None else row[k] for k in columns] + [meta.get(k, "") for k in keys]
        )
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    if buf.getvalue():
        yield buf.getvalue()
