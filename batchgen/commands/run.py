"""`batchgen run MANIFEST`: validate, record, submit, poll, download, report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from batchgen.adapters.lock import StateLock
from batchgen.adapters.s3client import is_store_url, parse_store_url
from batchgen.commands import common, execution, images, recorded
from batchgen.runsettings import record_manifest
from batchgen.ui.progress import ticker

if TYPE_CHECKING:
    from batchgen.manifest import Manifest


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        allow_abbrev=False,
        help="run a manifest to finished MP4 files (resumes where the last run stopped)",
        description="Submit every job of MANIFEST, poll, download the results, write a report. "
        "Running it again continues from the state file: nothing done is redone, nothing is "
        "paid twice.",
    )
    p.add_argument("manifest", metavar="MANIFEST", help="YAML or CSV manifest")
    p.add_argument(
        "--output",
        metavar="DIR|s3://BUCKET/PREFIX",
        help="output folder, or a bucket: results go to PREFIX/<file name>, verified and "
        "never overwritten (default: the manifest's output.dir, read against the manifest's "
        "folder, else output/<name> here)",
    )
    p.add_argument(
        "--state",
        metavar="FILE",
        help="state file (default: <output>/batchgen.db; with a bucket output, "
        "output/<name>/batchgen.db)",
    )
    p.add_argument(
        "--add-to-state",
        action="store_true",
        help="add this manifest's jobs to a state file another manifest already ran in (one "
        "with the same name and output); without it that is an error (exit 2), untouched",
    )
    p.add_argument(
        "--resubmit-changed",
        action="store_true",
        help="replace jobs whose body changed under the same id (pays for them again)",
    )
    common.add_run_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # One run per state file: when the state path is known without reading the manifest,
    # a second run exits 4 before it validates anything; otherwise right after.
    early = Path(args.state) if args.state else None
    if early is None and args.output and not is_store_url(args.output):
        early = Path(args.output) / "batchgen.db"
    if early is not None:
        with StateLock(early):
            return _run(args)
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    from batchgen.manifest import load_manifest, notify_block

    mode = execution.progress_mode(args)
    every = getattr(args, "progress_every", None)
    with ticker(sys.stderr, mode, f"validating {args.manifest}", interval=every):
        manifest = load_manifest(args.manifest)
    images.settle_store(args, manifest)  # exit 2 before anything is sent if a store is missing
    output_dir, result_store = _where(args, manifest)
    state_path = Path(args.state) if args.state else output_dir / "batchgen.db"
    recorded.check_same_world(state_path, bool(args.sandbox))
    opts = common.options_from_args(
        args,
        state_path=state_path,
        output_dir=output_dir,
        model=manifest.model,
        filename_template=manifest.filename_template,
        budget=manifest.budget,
        result_store=result_store,
        notify=notify_block(manifest),
    )
    with StateLock(state_path):  # re-entrant: already held when taken early
        with ticker(sys.stderr, mode, f"recording {len(manifest.jobs)} jobs", interval=every):
            sync = record_manifest(
                manifest,
                opts,
                resubmit_changed=args.resubmit_changed,
                add_to_state=args.add_to_state,
                also=lambda store: recorded.record(store, args, opts.api.base_url),
            )
        if sync.changed:
            shown = ", ".join(sync.changed[:5]) + (" ..." if len(sync.changed) > 5 else "")
            print(
                f"warning: {len(sync.changed)} job(s) changed in the manifest under the same id "
                f"and were left as they were: {shown} (use --resubmit-changed to run them again)",
                file=sys.stderr,
            )
        if not args.quiet and args.log_format == "text":
            print(
                f"{manifest.path}: {len(manifest.jobs)} jobs ({sync.added} new); "
                f"state {state_path}; output {result_store or output_dir}",
                file=sys.stderr,
            )
        return execution.execute_with_sandbox(args, opts)


def _where(args: argparse.Namespace, manifest: Manifest) -> tuple[Path, str | None]:
    """The local folder (state file, spool, results.jsonl) and the bucket output, if any
    (batchgen/manifest/where.py: --output here, else output.dir by the manifest, else
    output/<name> here). With a bucket the local folder is where the state file goes:
    --state's folder, else output/<name>, where a local output would have been by default."""
    from batchgen.manifest import where

    chosen = where.output_of(manifest, args.output)
    if not is_store_url(chosen):
        if not args.output:
            where.check_former_output(manifest, chosen, args.state)
        return Path(chosen), None
    bucket, prefix = parse_store_url(chosen, "--output")
    local = Path(args.state).parent if args.state else Path("output") / manifest.name
    return local, f"s3://{bucket}/{prefix}".rstrip("/")
