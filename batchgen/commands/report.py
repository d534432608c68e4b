"""`batchgen report STATE`: every job as JSON lines or CSV on stdout, from the state file."""

from __future__ import annotations

import argparse
import json
import sys

from batchgen import store as st
from batchgen.ui import report


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="print one line per job (the same as results.jsonl)")
    p.add_argument("state", metavar="STATE", help="the state file (batchgen.db)")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    store = st.Store(args.state, readonly=True)
    try:
        out = sys.stdout
        if args.format == "csv":
            for chunk in report.to_csv_rows(store):
                out.write(chunk)
        else:
            for rec in report.records(store):
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        out.flush()
    finally:
        store.close()
    return 0
