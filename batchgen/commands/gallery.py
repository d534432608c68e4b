"""`batchgen gallery STATE [--out FILE]`: one self-contained HTML page to review a batch by eye."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from batchgen import store as st
from batchgen.commands.argtypes import seconds
from batchgen.errors import UsageError
from batchgen.ui import report
from batchgen.ui.gallery import DEFAULT_NAME, write_gallery

LINK_TTL_S = 24 * 3600.0  # a bucket output's presigned links in the page: a day by default


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gallery",
        allow_abbrev=False,
        help="write gallery.html: every job's video, prompt and outcome on one page",
        description=(
            "Write a single self-contained HTML page (no server, no network) into the output "
            "folder, linking the MP4s relatively so the folder can be zipped and shared."
        ),
    )
    p.add_argument("state", metavar="STATE", help="the state file (batchgen.db)")
    p.add_argument(
        "--out",
        metavar="FILE",
        help=f"where to write the page (default: {DEFAULT_NAME} in the output folder)",
    )
    p.add_argument("--title", metavar="TEXT", help="page title (default: from the manifest)")
    p.add_argument(
        "--no-posters",
        action="store_true",
        help="do not extract poster frames with ffmpeg (they are made only where it exists)",
    )
    p.add_argument(
        "--link-ttl",
        type=seconds,
        default=LINK_TTL_S,
        metavar="DURATION",
        help="with a bucket output: how long the page's presigned video links work "
        "(default 24h, at most 7d); the page says when they expire",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    state_path = Path(args.state)
    if state_path.is_dir():
        raise UsageError(f"{state_path}: a folder; give the state file (batchgen.db)")
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not (out.is_file() or out.is_dir()):
        raise UsageError(f"{out}: not a regular file")
    store = st.Store(state_path, readonly=True)
    try:
        path = write_gallery(
            store,
            out,
            title=args.title,
            posters=not args.no_posters,
            links=bucket_links(store, args.link_ttl),
        )
    finally:
        store.close()
    print(f"gallery: {path}")
    return 0


def bucket_links(store: st.Store, ttl_s: float) -> Any:
    """Presigned links to every done video when the batch's output is a bucket, else None."""
    bucket = store.get_meta("result_store")
    if not bucket:
        return None
    from batchgen.adapters.sinks.objectlinks import presign

    rels = [f["path"] for r in report.records(store) for f in r["files"] if f.get("path")]
    return asyncio.run(presign(bucket, rels, ttl_s))
