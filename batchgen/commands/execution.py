"""How `run` and `resume` carry out a run from the command line: the progress display and
logging the flags ask for, the built-in simulator around a --sandbox run, signal handling,
and what is printed at the end (summary, gallery)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shlex
import sys
from collections.abc import AsyncIterator
from typing import TextIO

from batchgen.adapters.signals import StopOnSignal
from batchgen.engine import Engine, RunOutcome, describe
from batchgen.errors import UsageError
from batchgen.hooks import RunHooks
from batchgen.runner import execute
from batchgen.sandbox import sandbox
from batchgen.settings import (
    RunOptions,
)
from batchgen.store import Store, views
from batchgen.ui.progress import DisplayAwareHandler, JsonFormatter, Progress, emit_json


def progress_mode(args: argparse.Namespace, stream: TextIO | None = None) -> str:
    """off (--quiet), json (--log-format json), live (a terminal), else lines (cron, CI)."""
    stream = stream or sys.stderr
    if getattr(args, "quiet", False):
        return "off"
    if getattr(args, "log_format", "text") == "json":
        return "json"
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return "live" if tty and os.environ.get("TERM", "") != "dumb" else "lines"


def make_progress(args: argparse.Namespace) -> Progress:
    mode = progress_mode(args)
    every = getattr(args, "progress_every", None)
    return Progress(sys.stderr, mode, interval=every if mode != "live" else None)


def setup_logging(args: argparse.Namespace, progress: Progress | None = None) -> None:
    """batchgen's log records go to stderr: above the live display, or as JSON lines."""
    logger = logging.getLogger("batchgen")
    for handler in list(logger.handlers):
        if getattr(handler, "batchgen_cli", False):
            logger.removeHandler(handler)
    handler = DisplayAwareHandler(sys.stderr, progress)
    handler.batchgen_cli = True  # type: ignore[attr-defined]
    if getattr(args, "log_format", "text") == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    quiet, verbose = getattr(args, "quiet", False), getattr(args, "verbose", False)
    logger.setLevel(logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING)
    # What is spent is said at the start and end of every run (balance, estimate, prices).
    # ... and each job that fails, as it fails (RunContext.fail: one INFO line; the engine's
    # only other INFO line says an ambiguous job was found made).
    for name in (
        "batchgen.money",
        "batchgen.money.spending",
        "batchgen.money.pricing",
        "batchgen.engine",
    ):
        logging.getLogger(name).setLevel(
            logging.DEBUG if verbose else logging.ERROR if quiet else logging.INFO
        )
    logger.propagate = False


@contextlib.asynccontextmanager
async def _maybe_sandbox(args: argparse.Namespace, opts: RunOptions) -> AsyncIterator[RunOptions]:
    """The run's settings, pointed at an in-process simulator with --sandbox (sandbox.py)."""
    if not args.sandbox:
        yield opts
        return
    async with sandbox(opts, time_scale=args.time_scale, seed=args.seed) as run_opts:
        yield run_opts


def execute_with_sandbox(args: argparse.Namespace, opts: RunOptions) -> int:
    """Run the engine (inside an in-process simulator with --sandbox) with signal handling and
    a progress display, and print the summary."""
    progress = make_progress(args)
    setup_logging(args, progress)
    if args.sandbox and (args.base_url or args.api_key_file):
        raise UsageError(
            "--sandbox runs against the built-in simulator: drop --base-url and "
            "--api-key-file, or drop --sandbox"
        )

    async def main() -> RunOutcome:
        loop = asyncio.get_running_loop()
        with StopOnSignal(loop, drain_s=opts.timing.drain_s) as stopper:

            def on_engine(engine: Engine) -> None:
                stopper.attach(engine)
                progress.attach(engine)

            outcome: RunOutcome | None = None
            try:
                async with _maybe_sandbox(args, opts) as run_opts:
                    outcome = await execute(run_opts, RunHooks(on_engine=on_engine))
            finally:
                progress.close(outcome.counts if outcome is not None else None)
            return outcome

    outcome = asyncio.run(main())
    print_summary(args, opts, outcome)
    if args.gallery:
        write_run_gallery(args, opts)
    return outcome.exit_code


def write_run_gallery(args: argparse.Namespace, opts: RunOptions) -> None:
    from batchgen.commands.gallery import LINK_TTL_S, bucket_links
    from batchgen.ui.gallery import write_gallery

    store = Store(opts.files.state_path, readonly=True)
    try:
        links = bucket_links(store, LINK_TTL_S)
        page = write_gallery(
            store,
            opts.files.output_dir / "gallery.html",
            output_dir=opts.files.output_dir,
            links=links,
        )
    finally:
        store.close()
    if not args.quiet:
        print(f"gallery: {page}", file=sys.stderr)


SHOWN_JOBS = 20  # jobs named at the end of a run; `batchgen status` lists the rest
REASON_CHARS = 120


def unfinished_jobs(opts: RunOptions) -> tuple[int, list[dict[str, str]]]:
    """The failed, ambiguous and orphaned jobs the summary names (the first SHOWN_JOBS), with
    their total: a user must see which jobs did not succeed and why, not only how many."""
    if not opts.files.state_path.exists():
        return 0, []
    store = Store(opts.files.state_path, readonly=True)
    try:
        total, rows = views.unfinished(store.db, SHOWN_JOBS)
    finally:
        store.close()
    jobs = [
        {"id": job_id, "state": str(state), "code": code, "reason": _short(reason)}
        for job_id, state, code, reason in rows
    ]
    return total, jobs


def _short(text: str) -> str:
    one_line = " ".join(str(text).split())
    return one_line if len(one_line) <= REASON_CHARS else one_line[: REASON_CHARS - 3] + "..."


def print_summary(args: argparse.Namespace, opts: RunOptions, outcome: RunOutcome) -> None:
    results = opts.files.output_dir / "results.jsonl"
    total, jobs = unfinished_jobs(opts) if outcome.exit_code != 0 else (0, [])
    status_cmd = f"batchgen status {shlex.quote(str(opts.files.state_path))}"
    if getattr(args, "log_format", "text") == "json":
        if not args.quiet or outcome.exit_code not in (0, 75):
            emit_json(
                sys.stderr,
                "summary",
                exit_code=outcome.exit_code,
                how=outcome.how,
                counts=outcome.counts,
                messages=outcome.messages[:20],
                not_done=jobs,
                not_done_total=total,
                results=str(results),
            )
        return
    if args.quiet and outcome.exit_code in (0, 75):
        return
    print(describe(outcome), file=sys.stderr)
    for message in outcome.messages[:20]:
        print(f"  {message}", file=sys.stderr)
    if jobs:
        print(f"  jobs not done ({total}):", file=sys.stderr)
        width = max(len(job["id"]) for job in jobs)
        for job in jobs:
            what = " ".join(x for x in (job["state"], job["code"]) if x)
            reason = f": {job['reason']}" if job["reason"] else ""
            print(f"    {job['id']:<{width}}  {what}{reason}", file=sys.stderr)
        if total > len(jobs):
            print(f"    ... and {total - len(jobs)} more: {status_cmd}", file=sys.stderr)
    if outcome.counts.get("ambiguous"):
        print(
            f"  {outcome.counts['ambiguous']} ambiguous job(s): their submit may have "
            "created a task; see `batchgen status` and `batchgen retry --ambiguous`",
            file=sys.stderr,
        )
    if outcome.counts.get("orphaned"):
        print(
            f"  {outcome.counts['orphaned']} orphaned job(s): their submit created a task whose "
            "id cannot be sent back to the API; see `batchgen status` (`batchgen retry "
            "--orphaned` pays again)",
            file=sys.stderr,
        )
    if outcome.exit_code == 75 and not args.quiet:
        print(
            "  work is left: run the same command again (or `batchgen resume STATE`) to continue",
            file=sys.stderr,
        )
    if not args.quiet:
        print(f"results: {results}", file=sys.stderr)
