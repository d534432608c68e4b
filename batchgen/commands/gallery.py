"""`batchgen gallery STATE [--out FILE]`: one self-contained HTML page to review a batch by eye."""

from __future__ import annotations

import argparse
from pathlib import Path

from batchgen import store as st
from batchgen.errors import UsageError
from batchgen.ui.gallery import DEFAULT_NAME, write_gallery


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gallery",
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
        path = write_gallery(store, out, title=args.title, posters=not args.no_posters)
    finally:
        store.close()
    print(f"gallery: {path}")
    return 0
