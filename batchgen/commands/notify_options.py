"""The notification options of `run` and `resume`: argparse in, RunOptions' `notify` out.
None of them is recorded for `resume`: their URLs often hold tokens (give them again)."""

from __future__ import annotations

import argparse
from typing import Any

from batchgen.notify import config


def add_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "notifications",
        "Tell someone how a run ended. A receiver that is down or slow gets a few tries within "
        "a few seconds (--drain), then a warning: the exit code stays the run's. URLs are "
        "never printed, logged or stored beyond their scheme and host.",
    )
    g.add_argument(
        "--notify",
        action="append",
        metavar="URL",
        help="send a message through apprise (slack://, discord://, tgram://, ntfys://, "
        "mailto://, json://...); repeatable; needs pip install 'batchgen[notify]'",
    )
    g.add_argument(
        "--notify-json",
        action="append",
        metavar="URL",
        help="POST the run's summary as JSON (signed with X-Batchgen-Signature when "
        "BATCHGEN_NOTIFY_SECRET is set); repeatable",
    )
    g.add_argument(
        "--notify-on",
        metavar="WHEN",
        help="comma list of success (exit 0), failure (any other exit) and incomplete "
        "(exit 75, work left) for --notify and --notify-json (default: failure)",
    )
    g.add_argument(
        "--ping",
        metavar="URL",
        help="healthchecks-style pings: URL/start at the start, URL at exit 0 or 75, else "
        "URL/<exit code>, all with the same ?rid=",
    )
    g.add_argument(
        "--metrics-file",
        metavar="PATH",
        help="write Prometheus metrics (node_exporter textfile) at the end and every "
        "--poll-after while running; other batches' series in the file are kept",
    )


def fields(args: argparse.Namespace, block: Any = None) -> dict[str, Any]:
    """RunOptions' `notify` field: the command line's options over the manifest's block."""
    given = {
        "urls": getattr(args, "notify", None),
        "json": getattr(args, "notify_json", None),
        "on": getattr(args, "notify_on", None),
        "ping": getattr(args, "ping", None),
        "metrics_file": getattr(args, "metrics_file", None),
    }
    settings = config.combine(given, block)
    return {"notify": settings} if settings else {}
