"""The command line: argparse subcommands and the one error boundary.

Each subcommand lives in `batchgen/commands/<name>.py` with `add_parser(subparsers)` and
`run(args) -> int`. This module is the only place that maps exceptions to exit codes; nothing
below it prints a traceback to a user, and nothing it prints shows a word of the command line
that may be a secret (batchgen/redact.py).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from batchgen import __version__, exitcodes
from batchgen.commands.argtypes import SECRET_WORDS, SafeParser, refuse_secret_values
from batchgen.commands.output_options import add_verbose, verbose_logging
from batchgen.errors import BatchgenError, ManifestError
from batchgen.redact import redact, secret_words

COMMANDS = (
    "validate",
    "run",
    "resume",
    "simulate",
    "status",
    "report",
    "retry",
    "cancel",
    "gallery",
    "models",
    "doctor",
    "balance",
    "accounts",
)


def build_parser() -> argparse.ArgumentParser:
    parser = SafeParser(
        prog="batchgen",
        allow_abbrev=False,
        description="Turn a manifest of video jobs into MP4 files through APIXO's video API.",
    )
    parser.add_argument("--version", action="version", version=f"batchgen {__version__}")
    # parser_class: every subcommand's parser is a SafeParser too (no abbreviations, redacted
    # errors), whatever its module passes.
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=SafeParser
    )
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"batchgen.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"batchgen.commands.{name}":
                continue  # not built yet
            raise
        module.add_parser(sub)
    for command in sub.choices.values():  # one -v/--verbose, the same on every command
        if "--verbose" not in command._option_string_actions:
            add_verbose(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    secrets = secret_words(words)
    SECRET_WORDS.set(frozenset(secrets))  # argparse's own errors redact them too
    parser = build_parser()
    args = parser.parse_args(words)
    try:
        try:
            refuse_secret_values(args)
            verbose_logging(args)
            return int(args.handler(args) or 0)
        except BaseExceptionGroup as group:
            raise _first_batchgen_error(group) from group
    except ManifestError as exc:
        for problem in exc.problems:
            print(f"error: {redact(str(problem), secrets)}", file=sys.stderr)
        n = len(exc.problems)
        print(f"{n} problem{'s' if n != 1 else ''} found; nothing was sent.", file=sys.stderr)
        return exc.exit_code
    except BatchgenError as exc:
        print(f"error: {redact(str(exc), secrets)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return exitcodes.INTERRUPTED
    except BrokenPipeError:
        return 0


def run() -> None:
    """The console script and `python -m batchgen`: `main`, then exit with its code.

    obstore (the image store, bucket output, the doctor's probes) runs a shared Tokio runtime
    whose worker threads are never told to stop; one still busy (an HTTP client's retry or
    pool after a failed request) when the interpreter finalizes can abort the whole process
    with SIGABRT, turning a clean exit 3 into 134 for cron (seen 1 in 6 under load, after a
    probe of a missing bucket). A process that loaded it leaves with everything flushed and
    closed but without finalizing the interpreter (`os._exit`), as such short-lived clients
    of a Rust runtime do."""
    code = main()
    if "obstore" in sys.modules:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
    sys.exit(code)


def _first_batchgen_error(group: BaseExceptionGroup) -> BaseException:
    """A TaskGroup wraps what failed; users should see our error, not the group."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            inner = _first_batchgen_error(exc)
            if inner is not exc:
                return inner
        elif isinstance(exc, BatchgenError | KeyboardInterrupt):
            return exc
    return group
