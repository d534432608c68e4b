"""The command line: argparse subcommands and the one error boundary.

Each subcommand lives in `batchgen/commands/<name>.py` with `add_parser(subparsers)` and
`run(args) -> int`. This module is the only place that maps exceptions to exit codes; nothing
below it prints a traceback to a user.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from batchgen import __version__, exitcodes
from batchgen.errors import BatchgenError, ManifestError

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
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchgen",
        description="Turn a manifest of video jobs into MP4 files through APIXO's video API.",
    )
    parser.add_argument("--version", action="version", version=f"batchgen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"batchgen.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"batchgen.commands.{name}":
                continue  # not built yet
            raise
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        try:
            return int(args.handler(args) or 0)
        except BaseExceptionGroup as group:
            raise _first_batchgen_error(group) from group
    except ManifestError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        n = len(exc.problems)
        print(f"{n} problem{'s' if n != 1 else ''} found; nothing was sent.", file=sys.stderr)
        return exc.exit_code
    except BatchgenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return exitcodes.INTERRUPTED
    except BrokenPipeError:
        return 0


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
