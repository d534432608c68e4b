"""What a command prints and how: -q, -v, --gallery and the machine-readable spelling.

One word for JSON everywhere (issue 26): every command with a machine-readable output takes
`--json`; the older spellings (`run --log-format json`, `report --format jsonl`) stay as
aliases. `-v/--verbose` is given to every subcommand by the parser (cli.build_parser).
"""

from __future__ import annotations

import argparse
import logging
import sys

from batchgen.commands.argtypes import seconds as _seconds


def add_verbose(p: argparse.ArgumentParser) -> None:
    """-v/--verbose: batchgen's debug log on stderr (never a key, a proxy's password or a
    signature: log lines carry paths and hosts, not credentials)."""
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also print batchgen's debug log on stderr (every API request's method, path and "
        "answer; never a key)",
    )


def verbose_logging(args: argparse.Namespace) -> None:
    """For commands without a run's display: debug records of batchgen on stderr. A command
    without -v in the same process (tests, notebooks) gets the quiet default back."""
    logger = logging.getLogger("batchgen")
    mine = [h for h in logger.handlers if getattr(h, "batchgen_verbose", False)]
    if not getattr(args, "verbose", False):
        for handler in mine:
            logger.removeHandler(handler)
        if mine:
            logger.setLevel(logging.WARNING)
        return
    if not mine:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler.batchgen_cli = True  # type: ignore[attr-defined]  # a run's setup replaces it
        handler.batchgen_verbose = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.DEBUG)


def add_output_options(p: argparse.ArgumentParser) -> None:
    """run's and resume's output group."""
    g = p.add_argument_group("output")
    g.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    g.add_argument(
        "--gallery",
        action="store_true",
        help="also write <output>/gallery.html, a page to review every job's video by eye",
    )
    g.add_argument(
        "--json",
        dest="log_format",
        action="store_const",
        const="json",
        default="text",  # argparse takes a shared dest's default from its first option
        help="one JSON object per line on stderr (progress, log records, the summary), for "
        "log shippers and scripts (also spelled --log-format json)",
    )
    g.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="json: the same as --json (default: text)",
    )
    # Seconds between one-line summaries when stderr is not a terminal (default 10; tests).
    g.add_argument("--progress-every", type=_seconds, help=argparse.SUPPRESS)
