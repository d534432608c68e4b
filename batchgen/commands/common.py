"""Options shared by `run` and `resume`, and the sandbox wrapper around a run."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from batchgen.adapters.lock import StateLock
from batchgen.adapters.proxies import Proxies
from batchgen.commands import (
    account_options,
    callback_options,
    money_options,
    notify_options,
    output_options,
)
from batchgen.commands.argtypes import backoff as _backoff
from batchgen.commands.argtypes import id_list, proxy_url
from batchgen.commands.argtypes import pause as _pause
from batchgen.commands.argtypes import positive_int as _positive_int
from batchgen.commands.argtypes import rate as _rate
from batchgen.commands.argtypes import seconds as _seconds
from batchgen.commands.argtypes import size as _size
from batchgen.errors import UsageError
from batchgen.settings import (
    DEFAULT_BASE_URL,
    SANDBOX_KEY,
    SANDBOX_TIME_SCALE,
    RunOptions,
    check_base_url,
    read_api_key,
)
from batchgen.store import Store, state_file

_D = RunOptions.from_flat(state_path=Path(), output_dir=Path())  # the defaults, for help texts


def add_api_options(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Where the API is and how it is reached: every command that talks to it (run, resume,
    doctor, balance) takes these the same way."""
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
    add_proxy_option(g)
    return g


def add_proxy_option(g: argparse._ActionsContainer) -> None:
    g.add_argument(
        "--proxy",
        type=proxy_url,
        metavar="URL",
        help="send API calls, downloads and image checks through this http:// or https:// "
        "proxy, over the environment's (NO_PROXY still applies, unless --no-proxy-env). "
        "user:password@ in it is never printed, logged or stored; resume needs it again",
    )


def add_run_options(p: argparse.ArgumentParser) -> None:
    g = add_api_options(p)
    account_options.add(g)
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
        metavar="DURATION",
        help="first poll after the submit (default 60s; longer for 10 s videos)",
    )
    g.add_argument(
        "--poll-every",
        type=_seconds,
        default=5.0,
        metavar="DURATION",
        help="then poll every DURATION, jittered (default 5s)",
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
        help="how long a presigned image URL stays valid (default "
        f"{_D.files.image_url_ttl_s / 3600:g}h or the manifest's images.url_ttl)",
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
        "--limit",
        type=_positive_int,
        metavar="N",
        help="submit at most N jobs in this run (the rest stay pending): try a few first",
    )
    g.add_argument(
        "--only",
        type=id_list,
        metavar="ID,...",
        help="submit only these jobs in this run (the rest stay pending)",
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
        metavar="DURATION",
        help="give up connecting to the API after DURATION "
        f"(default {_D.api.connect_timeout_s:g}s)",
    )
    g.add_argument(
        "--read-timeout",
        type=_seconds,
        metavar="DURATION",
        help="give up waiting for an API answer after DURATION (a submit then turns ambiguous; "
        f"default {_D.api.read_timeout_s:g}s)",
    )
    g.add_argument(
        "--stall-timeout",
        type=_seconds,
        metavar="DURATION",
        help="cut a download that received nothing for DURATION; it resumes where it stopped "
        f"(default {_D.timing.download_stall_s:g}s)",
    )
    g.add_argument(
        "--drain",
        type=_seconds,
        metavar="DURATION",
        help="on a stop (signal, --max-runtime), let calls on the wire finish this long "
        f"(default {_D.timing.drain_s:g}s)",
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
    g.add_argument(
        "--time-scale",
        type=float,
        default=SANDBOX_TIME_SCALE,
        metavar="S",
        help="with --sandbox: the simulator's time runs S times real time, and the run's "
        f"waits with it (default {SANDBOX_TIME_SCALE:g}: a 75 s generation takes "
        f"{75 * SANDBOX_TIME_SCALE:g} s)",
    )
    callback_options.add_cli_options(p)
    money_options.add_options(p)
    notify_options.add_options(p)
    output_options.add_output_options(p)


def options_from_args(
    args: argparse.Namespace,
    *,
    state_path: Path,
    output_dir: Path,
    model: str,
    filename_template: str,
    budget: dict[str, Any] | None = None,
    result_store: str | None = None,
    notify: dict[str, Any] | None = None,
) -> RunOptions:
    limit, period = args.rate_limit
    if args.poll_backoff_cap is not None and args.poll_backoff_cap <= 0:
        raise UsageError("--poll-backoff-cap must be more than 0")
    fields: dict[str, Any] = dict(
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
        proxy=getattr(args, "proxy", None),
        resubmit_ambiguous=args.resubmit_ambiguous,
        no_wait=args.no_wait,
        max_runtime_s=args.max_runtime,
        submit_limit=getattr(args, "limit", None),
        only_ids=getattr(args, "only", None),
        stuck_after_s=args.stuck_after,  # None: follows --poll-after; 0: never
        status_outage_s=args.status_outage,  # None: follows --poll-after; 0: never
        poll_backoff_cap_s=args.poll_backoff_cap,
        seed=args.seed,
        preflight=getattr(args, "preflight", None),
        image_store=getattr(args, "image_store", None),
        result_store=result_store,
    )
    if result_store and args.max_file_size > 5 * 1024**3:
        raise UsageError("--max-file-size: a bucket output takes results of at most 5G (one PUT)")
    if getattr(args, "image_url_ttl", None):
        fields["image_url_ttl_s"] = args.image_url_ttl
    if args.backoff:
        fields["backoff_base_s"], fields["backoff_cap_s"] = args.backoff
    # Given: the user's; not given: RunOptions' defaults, written there only.
    for name, attr in (
        ("connect_timeout", "connect_timeout_s"),
        ("read_timeout", "read_timeout_s"),
        ("stall_timeout", "download_stall_s"),
        ("drain", "drain_s"),
    ):
        if getattr(args, name, None) is not None:
            fields[attr] = getattr(args, name)
    if args.rate_pause:
        fields["rate_pause_base_s"], fields["rate_pause_cap_s"] = args.rate_pause
    fields |= account_options.fields(args)
    if args.sandbox and fields.get("accounts_file"):
        raise UsageError("--accounts: the sandbox is one simulated key; run against a server")
    if args.sandbox:
        fields["account_db"] = "none"  # the run's own simulator: no other run shares it
        fields["api_key"] = SANDBOX_KEY
        fields["serve_local_images"] = True  # image files without a store: served on loopback
        fields["proxy_env"] = False  # the simulator and its files are on loopback
        fields["proxy"] = None
    else:
        fields["base_url"] = check_base_url(
            args.base_url or os.environ.get("APIXO_BASE_URL") or DEFAULT_BASE_URL
        )
        # Several accounts: each key from where the accounts file says (account_options).
        if not fields.get("accounts_file"):
            fields["api_key"] = read_api_key(args.api_key_file)
    fields |= callback_options.fields(args)
    fields |= money_options.fields(args, model, budget)
    fields |= notify_options.fields(args, notify)  # never recorded: URLs hold tokens
    opts = RunOptions.from_flat(**fields)  # built once, frozen: nothing changes it afterwards
    Proxies(enabled=opts.api.proxy_env, proxy=opts.api.proxy)  # one batchgen cannot use: exit 2 now
    return opts.scaled(args.time_scale) if args.sandbox else opts


@contextlib.contextmanager
def locked_store(path: str) -> Iterator[Store]:
    """The state file, opened for writing under its run lock (exit 4 if a run holds it)."""
    if not Path(path).exists():
        raise UsageError(f"{path}: no such state file")
    state_path = state_file(path)  # a run's folder: its batchgen.db, locked as the run locks it
    with StateLock(state_path):
        store = Store(state_path)
        try:
            yield store
        finally:
            store.close()
