"""`batchgen resume STATE`: continue a batch from its state file alone, without the manifest."""

from __future__ import annotations

import argparse
from pathlib import Path

from batchgen import store as st
from batchgen.commands import common
from batchgen.runner import load_run_settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("resume", help="continue a batch from its state file (no manifest needed)")
    p.add_argument("state", metavar="STATE", help="the state file (batchgen.db)")
    p.add_argument("--output", metavar="DIR", help="output folder (default: as recorded)")
    common.add_run_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    state_path = Path(args.state)
    store = st.Store(state_path, readonly=True)
    try:
        saved = load_run_settings(store)
    finally:
        store.close()
    output_dir = Path(args.output or saved.get("output_dir") or state_path.parent)
    opts = common.options_from_args(
        args,
        state_path=state_path,
        output_dir=output_dir,
        model=saved.get("model", "kling-2-1"),
        filename_template=saved.get("filename_template", "{id}.mp4"),
    )
    return common.execute_with_sandbox(args, opts)
