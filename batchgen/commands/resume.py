"""`batchgen resume STATE`: continue a batch from its state file alone, without the manifest,
against the API and with the settings its run recorded (commands/recorded.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from batchgen import store as st
from batchgen.adapters.sessions import run_proxies
from batchgen.commands import common, execution, recorded
from batchgen.core.urls import describe_url
from batchgen.models import DEFAULT_MODEL
from batchgen.runsettings import load_run_settings
from batchgen.settings import DEFAULT_FILENAME_TEMPLATE, RunOptions
from batchgen.ui.progress import emit_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "resume",
        allow_abbrev=False,
        help="continue a batch from its state file (no manifest needed)",
        description="Continue a batch from its state file, against the API and with the "
        "settings its run recorded; a flag given here replaces the recorded one.",
    )
    p.add_argument("state", metavar="STATE", help="the state file (batchgen.db)")
    p.add_argument("--output", metavar="DIR", help="output folder (default: as recorded)")
    common.add_run_options(p)
    recorded.unset_for_resume(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    state_path = Path(args.state)
    store = st.Store(state_path, readonly=True)
    try:
        saved = load_run_settings(store)
        was = recorded.load(store, state_path)
        taken = recorded.fill(args, dict(was))
    finally:
        store.close()
    recorded.check_same_world(state_path, bool(args.sandbox), was)
    output_dir = Path(args.output or saved.get("output_dir") or state_path.parent)
    opts = common.options_from_args(
        args,
        state_path=state_path,
        output_dir=output_dir,
        model=saved.get("model", DEFAULT_MODEL),
        filename_template=saved.get("filename_template", DEFAULT_FILENAME_TEMPLATE),
        result_store=saved.get("result_store"),
    )
    _say_where(args, opts, taken)
    return execution.execute_with_sandbox(args, opts)


def _say_where(args: argparse.Namespace, opts: RunOptions, taken: list[str]) -> None:
    """Name the API this resume talks to, and whether the record chose it: a batch resumed
    against the wrong host finds none of its tasks."""
    if args.quiet:
        return
    api = "the built-in simulator (--sandbox)" if args.sandbox else describe_url(opts.api.base_url)
    source = "as recorded" if {"base_url", "sandbox"} & set(taken) else "from the command line"
    if not {"base_url", "sandbox"} & set(taken) and not (args.base_url or args.sandbox):
        source = "from $APIXO_BASE_URL or the default"
    others = sorted(set(taken) - {"base_url", "sandbox"})
    proxy = run_proxies(opts).for_url(opts.api.base_url)
    via = proxy.describe() if proxy is not None else None
    if args.log_format == "json":
        emit_json(sys.stderr, "resume", api=api, api_from=source, proxy=via, recorded=others)
        return
    line = f"resume {opts.files.state_path}: API {api} ({source})"
    if proxy is not None:
        line += f" through proxy {via} ({proxy.source})"
    if others:
        line += "; recorded settings: " + ", ".join("--" + n.replace("_", "-") for n in others)
    print(line, file=sys.stderr)
