"""`batchgen report STATE`: every job as JSON lines or CSV on stdout, from the state file."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from batchgen import store as st
from batchgen.commands.argtypes import seconds
from batchgen.errors import UsageError
from batchgen.ui import report


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        allow_abbrev=False,
        help="print one line per job (the same as results.jsonl)",
        description="Print every job of STATE in manifest order, on stdout, from the state "
        "file alone (safe during a run). Each job has: " + ", ".join(report.FIELDS) + ". "
        "Times are ISO 8601 in UTC.",
    )
    p.add_argument("state", metavar="STATE", help="the state file (batchgen.db)")
    p.add_argument(
        "--format",
        choices=("jsonl", "csv"),
        default="jsonl",
        help="jsonl (default): one JSON object per line, the same as <output>/results.jsonl, "
        "with `files` a list of {path, sha256, bytes...} and `attempts` a list of each "
        "submit's outcome; csv: a header row then one row per job, for spreadsheets, with "
        "`files` as paths joined by | and `attempts` as OUTCOME[:FAIL_CODE] joined by |",
    )
    p.add_argument(
        "--json",
        dest="format",
        action="store_const",
        const="jsonl",
        default="jsonl",
        help="the same as --format jsonl (the default): the spelling every command takes",
    )
    p.add_argument(
        "--presign",
        type=seconds,
        metavar="DURATION",
        help="with a bucket output: add to each file a presigned HTTPS link valid for "
        "DURATION (at most 7d) and its expiry; anyone holding a link can fetch the video",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    store = st.Store(args.state, readonly=True)
    try:
        out = sys.stdout
        records = report.records(store)
        if args.presign is not None:
            records = _presigned(store, list(records), args.presign)
        if args.format == "csv":
            for chunk in report.to_csv_rows(store, records):
                out.write(chunk)
        else:
            for rec in records:
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        out.flush()
    finally:
        store.close()
    return 0


def _presigned(
    store: st.Store, records: list[dict[str, Any]], ttl_s: float
) -> Iterator[dict[str, Any]]:
    """Each done file of a bucket output with its link and the link's expiry."""
    from batchgen.adapters.sinks.objectlinks import presign

    bucket = store.get_meta("result_store")
    if not bucket:
        raise UsageError(
            f"{store.path}: this batch's results are files on disk; --presign is for a "
            "bucket output (--output s3://BUCKET/PREFIX)"
        )
    rels = [f["path"] for r in records for f in r["files"] if f.get("path")]
    links = asyncio.run(presign(bucket, rels, ttl_s))
    expires = datetime.fromtimestamp(links.expires_at, UTC).isoformat(timespec="seconds")
    for rec in records:
        for f in rec["files"]:
            if f.get("path") in links.urls:
                f["presigned_url"] = links.urls[f["path"]]
                f["presigned_expires_at"] = expires.replace("+00:00", "Z")
        yield rec
