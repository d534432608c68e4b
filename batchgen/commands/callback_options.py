"""The callback options of `run` and `resume`: argparse in, RunOptions fields out. The
receiver itself (batchgen/callbacks.py) never sees argparse."""

from __future__ import annotations

import argparse
from typing import Any

from batchgen.callbacks import check_public_base, parse_listen
from batchgen.commands.argtypes import seconds as _seconds
from batchgen.core.urls import is_loopback_host
from batchgen.errors import UsageError


def _duration(text: str) -> float:
    return _seconds(text)


def _listen(text: str) -> tuple[str, int]:
    try:
        return parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_cli_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "callbacks",
        "Callback (webhook) mode: the provider POSTs each finished task to a receiver inside "
        "this run; polling only backs up lost callbacks.",
    )
    g.add_argument(
        "--callback-listen",
        type=_listen,
        metavar="HOST:PORT",
        help="run the callback receiver on HOST:PORT (port 0 picks a free one)",
    )
    g.add_argument(
        "--callback-url",
        metavar="PUBLIC_BASE",
        help="public http(s) base that reaches the listener (reverse proxy or tunnel); "
        "default on a loopback listener: http://HOST:PORT",
    )
    g.add_argument(
        "--trust-callbacks",
        action="store_true",
        help="act on a callback's body without confirming it with a status request "
        "(saves one request per job; anyone holding the URL can then fail or finish jobs)",
    )
    g.add_argument(
        "--callback-grace",
        type=_duration,
        metavar="DURATION",
        help="poll a task whose callback is this late after its expected end "
        "(default: --poll-after, 60s)",
    )
    g.add_argument(
        "--callback-poll-every",
        type=_duration,
        metavar="DURATION",
        help="then poll it every DURATION until it ends (default: 6 x --poll-every, 30s)",
    )
    g.add_argument(
        "--callback-guard",
        type=_duration,
        metavar="DURATION",
        help="confirm a task's callbacks with at most one status request per DURATION; news "
        "within it is confirmed when it ends, never dropped (default: --poll-every / 10, 0.5s)",
    )


def fields(args: argparse.Namespace) -> dict[str, Any]:
    """RunOptions' callback fields (in real seconds: --sandbox scales them with every other
    service time, see RunOptions.scaled; those not given follow the poll schedule, see
    RunOptions.paced)."""
    listen = getattr(args, "callback_listen", None)
    public = getattr(args, "callback_url", None)
    if public is not None and listen is None:
        raise UsageError(
            "--callback-url needs --callback-listen HOST:PORT (the address the public URL "
            "forwards to)"
        )
    if listen is not None and getattr(args, "no_wait", False):
        raise UsageError(
            "--callback-listen needs a run that waits for its tasks; drop --no-wait "
            "(cron runs collect results by polling)"
        )
    if listen is not None and public is None and not is_loopback_host(listen[0]):
        raise UsageError(
            "--callback-listen on a non-loopback address needs --callback-url: the public "
            "https base that your reverse proxy or tunnel forwards to this listener"
        )
    return {
        "callback_listen": listen,
        "callback_public_url": check_public_base(public) if public is not None else None,
        "trust_callbacks": bool(getattr(args, "trust_callbacks", False)),
        # None: follows the poll schedule (RunOptions.paced)
        "callback_grace_s": getattr(args, "callback_grace", None),
        "callback_poll_every_s": getattr(args, "callback_poll_every", None),
        "callback_guard_s": getattr(args, "callback_guard", None),
    }
