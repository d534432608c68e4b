"""Options shared by `run` and `resume`, and the sandbox wrapper around a run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, TextIO

from batchgen.adapters.lock import StateLock
from batchgen.adapters.proxies import Proxies
from batchgen.adapters.signals import StopOnSignal
from batchgen.commands import callback_options, money_options
from batchgen.commands.argtypes import backoff as _backoff
from batchgen.commands.argtypes import pause as _pause
from batchgen.commands.argtypes import positive_int as _positive_int
from batchgen.commands.argtypes import rate as _rate
from batchgen.commands.argtypes import seconds as _seconds
from batchgen.commands.argtypes import size as _size
from batchgen.engine import Engine, RunOutcome, describe
from batchgen.errors import UsageError
from batchgen.runner import execute
from batchgen.settings import (
    DEFAULT_BASE_URL,
    SANDBOX_KEY,
    SANDBOX_TIME_SCALE,
    RunOptions,
    check_base_url,
    read_api_key,
)
from batchgen.store import Store
from batchgen.ui.progress import DisplayAwareHandler, JsonFormatter, Progress, emit_json

_D = RunOptions(state_path=Path(), output_dir=Path())  # the defaults, for help texts


def add_run_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("API")
    g.add_argument(
        "--base-url",
        metavar="URL",
        help=f"API base (default: $APIXO_BASE_URL or {DEFAULT_BASE_URL})",
    )
    g.add_argument(
        "--api-key-file",
        metavar="FILE",
        help="read the API key from FILE (default: $APIXO_API_KEY)",
    )
    g.add_argument(
        "--sandbox",
        action="store_true",
        help="run against the built-in simulator: no key, no network, time scaled",
    )
    g.add_argument(
        "--no-proxy-env",
        action="store_true",
        help="connect directly: ignore HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY "
        "(honoured by default for API calls and downloads)",
    )
    g = p.add_argument_group("pace")
    g.add_argument(
        "--rate-limit",
        type=_rate,
        default=(10_000, 60.0),
        metavar="N/PERIOD",
        help="at most N API requests in any window of PERIOD (default 10000/60s)",
    )
    g.add_argument(
        "--max-in-flight",
        type=_positive_int,
        default=1000,
        metavar="N",
        help="tasks pending or processing at the provider at once (default 1000)",
    )
    g.add_argument(
        "--rate-pause",
        type=_pause,
        metavar="BASE,CAP",
        help="after a 429 without Retry-After, every request waits BASE seconds, doubled "
        "while 429s continue, up to CAP (default: 1/60 of the rate window, then the window: "
        "1,60)",
    )
    g.add_argument(
        "--poll-after",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="first poll after the submit (default 60; longer for 10 s videos)",
    )
    g.add_argument(
        "--poll-every",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="then poll every SECONDS, jittered (default 5)",
    )
    g.add_argument(
        "--download-concurrency",
        type=_positive_int,
        default=8,
        metavar="N",
        help="downloads at once, separate from the API's rate (default 8)",
    )
    g.add_argument(
        "--allow-private-result-hosts",
        action="store_true",
        default=None,
        help="fetch result files from private or local addresses too (refused by default "
        "unless the API itself is on a local or private address: a hostile answer must not "
        "reach your own network)",
    )
    g.add_argument(
        "--max-file-size",
        type=_size,
        default=2 * 1024**3,
        metavar="SIZE",
        help="refuse a result larger than SIZE (default 2G)",
    )
    g = p.add_argument_group("input images")
    g.add_argument(
        "--preflight",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="check each remote image URL (JPG, PNG or WebP, at most 10 MB) before the first "
        "submit that uses it; a job whose image fails ends failed with IMAGE_PREFLIGHT and "
        "is never paid for (default: on, unless the API itself is on a local address)",
    )
    g.add_argument(
        "--image-store",
        metavar="s3://BUCKET/PREFIX",
        help="where local image files are uploaded (once each, by content) for the provider "
        "to fetch through presigned URLs; credentials and endpoint come from the usual AWS "
        "variables and files (AWS_ENDPOINT_URL for R2, MinIO...). Default: the manifest's "
        "images.store",
    )
    g.add_argument(
        "--image-url-ttl",
        type=_seconds,
        metavar="DURATION",
        help=f"how long a presigned image URL stays valid (default {_D.image_url_ttl_s / 3600:g}h"
        " or the manifest's images.url_ttl)",
    )
    g = p.add_argument_group("run control")
    g.add_argument(
        "--resubmit-ambiguous",
        action="store_true",
        help="submit again the jobs whose earlier submit may or may not have "
        "created a task (may pay twice for them)",
    )
    g.add_argument(
        "--no-wait",
        action="store_true",
        help="cron mode: submit what fits, collect what is finished, exit (75 if work remains)",
    )
    g.add_argument(
        "--max-runtime",
        type=_seconds,
        metavar="DURATION",
        help="stop cleanly after DURATION (e.g. 55m), exit 75 if work remains",
    )
    g.add_argument(
        "--stuck-after",
        type=_seconds,
        metavar="DURATION",
        help="stop polling, for this run, a task still unfinished this long after its submit "
        "(it stays in flight; the next run polls it again); 0: never "
        "(default: 60 x --poll-after, 1h)",
    )
    g.add_argument(
        "--backoff",
        type=_backoff,
        metavar="BASE,CAP",
        help="retries after an error wait up to BASE x 2^n seconds, jittered, at most CAP "
        "(default: --poll-every / 5 and --poll-after: 1,60)",
    )
    g.add_argument(
        "--connect-timeout",
        type=_seconds,
        metavar="SECONDS",
        help=f"give up connecting to the API after SECONDS (default {_D.connect_timeout_s:g})",
    )
    g.add_argument(
        "--read-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="give up waiting for an API answer after SECONDS (a submit then turns ambiguous; "
        f"default {_D.read_timeout_s:g})",
    )
    g.add_argument(
        "--stall-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="cut a download that received nothing for SECONDS; it resumes where it stopped "
        f"(default {_D.download_stall_s:g})",
    )
    g.add_argument(
        "--drain",
        type=_seconds,
        metavar="SECONDS",
        help="on a stop (signal, --max-runtime), let calls on the wire finish this long "
        f"(default {_D.drain_s:g})",
    )
    g.add_argument(
        "--status-outage",
        type=_seconds,
        metavar="DURATION",
        help="a task whose status stays unreadable (5xx, HTML pages, resets) this long is not "
        "polled again in this run, and submits stop once no status answer was readable for "
        "this long; such tasks stay in flight, never failed, and the next run polls them "
        "again; 0: keep asking for ever (default: 30 times --poll-after, 30m)",
    )
    g.add_argument(
        "--poll-backoff-cap",
        type=_seconds,
        metavar="DURATION",
        help="longest wait between two polls of a task whose status is unreadable "
        "(default: 5 times --poll-after, 5m)",
    )
    g.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    g.add_argument("--time-scale", type=float, default=SANDBOX_TIME_SCALE, help=argparse.SUPPRESS)
    callback_options.add_cli_options(p)
    money_options.add_options(p)
    g = p.add_argument_group("output")
    g.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    g.add_argument(
        "--gallery",
        action="store_true",
        help="also write <output>/gallery.html, a page to review every job's video by eye",
    )
    g.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="json: one JSON object per line on stderr (progress, log records, the summary), "
        "for log shippers (default: text)",
    )
    # Seconds between one-line summaries when stderr is not a terminal (default 10; tests).
    g.add_argument("--progress-every", type=_seconds, help=argparse.SUPPRESS)


def options_from_args(
    args: argparse.Namespace,
    *,
    state_path: Path,
    output_dir: Path,
    model: str,
    filename_template: str,
    budget: dict[str, Any] | None = None,
) -> RunOptions:
    limit, period = args.rate_limit
    if args.poll_backoff_cap is not None and args.poll_backoff_cap <= 0:
        raise UsageError("--poll-backoff-cap must be more than 0")
    opts = RunOptions(
        state_path=state_path,
        output_dir=output_dir,
        model=model,
        filename_template=filename_template,
        rate_limit=limit,
        rate_period_s=period,
        max_in_flight=args.max_in_flight,
        poll_after_s=args.poll_after,
        poll_every_s=args.poll_every,
        download_concurrency=args.download_concurrency,
        max_file_bytes=args.max_file_size,
        allow_private_result_hosts=args.allow_private_result_hosts,
        proxy_env=not args.no_proxy_env,
        resubmit_ambiguous=args.resubmit_ambiguous,
        no_wait=args.no_wait,
        max_runtime_s=args.max_runtime,
        stuck_after_s=args.stuck_after,  # None: follows --poll-after; 0: never
        status_outage_s=args.status_outage,  # None: follows --poll-after; 0: never
        poll_backoff_cap_s=args.poll_backoff_cap,
        seed=args.seed,
        preflight=getattr(args, "preflight", None),
        image_store=getattr(args, "image_store", None),
    )
    if getattr(args, "image_url_ttl", None):
        opts.image_url_ttl_s = args.image_url_ttl
    if args.backoff:
        opts.backoff_base_s, opts.backoff_cap_s = args.backoff
    # Given: the user's; not given: RunOptions' defaults, written there only.
    for name, attr in (
        ("connect_timeout", "connect_timeout_s"),
        ("read_timeout", "read_timeout_s"),
        ("stall_timeout", "download_stall_s"),
        ("drain", "drain_s"),
    ):
        if getattr(args, name, None) is not None:
            setattr(opts, attr, getattr(args, name))
    if args.rate_pause:
        opts.rate_pause_base_s, opts.rate_pause_cap_s = args.rate_pause
    if args.sandbox:
        opts.api_key = SANDBOX_KEY
    else:
        opts.base_url = check_base_url(
            args.base_url or os.environ.get("APIXO_BASE_URL") or DEFAULT_BASE_URL
        )
        opts.api_key = read_api_key(args.api_key_file)
    callback_options.apply_args(args, opts)
    money_options.apply(args, opts, budget)
    if args.sandbox:
        opts.serve_local_images = True  # image files without a store: served on loopback
        opts.proxy_env = False  # the simulator and its files are on loopback: nothing to proxy
    Proxies(enabled=opts.proxy_env)  # a proxy variable batchgen cannot use: exit 2 before work
    return opts.scaled(args.time_scale) if args.sandbox else opts


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
    logger.setLevel(logging.ERROR if getattr(args, "quiet", False) else logging.WARNING)
    # What is spent is said at the start and end of every run (balance, estimate, prices).
    for name in ("batchgen.money", "batchgen.money.spending", "batchgen.money.pricing"):
        logging.getLogger(name).setLevel(
            logging.ERROR if getattr(args, "quiet", False) else logging.INFO
        )
    logger.propagate = False


@contextlib.asynccontextmanager
async def _maybe_sandbox(args: argparse.Namespace, opts: RunOptions) -> AsyncIterator[None]:
    if not args.sandbox:
        yield
        return
    from batchgen.simulator import SimConfig, Simulator
    from batchgen.simulator.journal import TaskJournal, journal_path

    # The tasks of an earlier sandbox run on this state file live on: same seed, same port.
    journal = TaskJournal(journal_path(opts.state_path))
    header = journal.load(args.time_scale)
    if header is not None and args.seed is not None and header["seed"] != args.seed:
        journal = TaskJournal(journal.path)  # another --seed: another simulated world
        header = None
    config = SimConfig(
        time_scale=args.time_scale,
        seed=header["seed"] if header else _sandbox_seed(args),
        api_keys=frozenset({SANDBOX_KEY}),
        fetch_images="loopback",  # the sandbox proves its image URLs work, with no network
    )
    sim = Simulator(config, port=int(header.get("port", 0))) if header else Simulator(config)
    try:
        await sim.start()
    except OSError:  # the old port is taken: any port will do (recorded URLs may then fail)
        sim = Simulator(config)
        await sim.start()
    try:
        journal.attach(sim)
        opts.base_url = sim.base_url
        yield
    finally:
        journal.close()
        await sim.close()


@contextlib.contextmanager
def locked_store(path: str) -> Iterator[Store]:
    """The state file, opened for writing under its run lock (exit 4 if a run holds it)."""
    state_path = Path(path)
    if not state_path.exists():
        raise UsageError(f"{state_path}: no such state file")
    with StateLock(state_path):
        store = Store(state_path)
        try:
            yield store
        finally:
            store.close()


def _sandbox_seed(args: argparse.Namespace) -> int:
    """A fresh seed for a new sandbox unless --seed: task ids must not repeat those of another
    sandbox's tasks recorded in some other state file."""
    return args.seed if args.seed is not None else secrets.randbits(31)


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
        with StopOnSignal(loop, drain_s=opts.drain_s) as stopper:
            outer = opts.on_engine

            def on_engine(engine: Engine) -> None:
                stopper.attach(engine)
                progress.attach(engine)
                if outer is not None:
                    outer(engine)

            opts.on_engine = on_engine
            outcome: RunOutcome | None = None
            try:
                async with _maybe_sandbox(args, opts):
                    outcome = await execute(opts)
            finally:
                progress.close(outcome.counts if outcome is not None else None)
            return outcome

    outcome = asyncio.run(main())
    print_summary(args, opts, outcome)
    if args.gallery:
        write_run_gallery(args, opts)
    return outcome.exit_code


def write_run_gallery(args: argparse.Namespace, opts: RunOptions) -> None:
    from batchgen.store import Store
    from batchgen.ui.gallery import write_gallery

    store = Store(opts.state_path, readonly=True)
    try:
        page = write_gallery(store, opts.output_dir / "gallery.html", output_dir=opts.output_dir)
    finally:
        store.close()
    if not args.quiet:
        print(f"gallery: {page}", file=sys.stderr)


def print_summary(args: argparse.Namespace, opts: RunOptions, outcome: RunOutcome) -> None:
    results = opts.output_dir / "results.jsonl"
    if getattr(args, "log_format", "text") == "json":
        if not args.quiet or outcome.exit_code not in (0, 75):
            emit_json(
                sys.stderr,
                "summary",
                exit_code=outcome.exit_code,
                how=outcome.how,
                counts=outcome.counts,
                messages=outcome.messages[:20],
                results=str(results),
            )
        return
    if args.quiet and outcome.exit_code in (0, 75):
        return
    print(describe(outcome), file=sys.stderr)
    for message in outcome.messages[:20]:
        print(f"  {message}", file=sys.stderr)
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


def id_list(text: str) -> list[str]:
    """'a,b, c' -> ['a', 'b', 'c'] (argparse type for --ids and --codes)."""
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return items
