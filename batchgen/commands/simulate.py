"""`batchgen simulate`: run the fake APIXO service until Ctrl-C (or SIGTERM).

The first line on stdout is the base URL (`http://127.0.0.1:PORT/api/v1`), flushed, so a parent
process can read it; `--ready-file` also writes it to a file once the server listens. Every
SimConfig knob is an option (`--p-5xx 0.1`, `--rate-limit 100`, ...); see `--help`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import signal
import sys
from pathlib import Path
from typing import Any

from batchgen.commands.argtypes import SafeParser
from batchgen.errors import UsageError
from batchgen.simulator import SimConfig, Simulator
from batchgen.simulator.keys import add_own_account, parse_own_account

_FLAG_NAMES = {"api_keys": "--api-key", "log_path": "--log"}
_OPTIONAL_INT = {"credits", "result_size", "expired_status"}
_OPTIONAL_FLOAT = {"balance"}


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "simulate",
        allow_abbrev=False,
        help="run a local fake of the APIXO video API (for trying batchgen without a key)",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    defaults = SimConfig()
    for f in dataclasses.fields(SimConfig):
        flag = _FLAG_NAMES.get(f.name, "--" + f.name.replace("_", "-"))
        default = getattr(defaults, f.name)
        kw: dict[str, Any] = {"dest": f.name, "help": f.metadata.get("help", "")}
        if f.name == "api_keys":
            kw.update(
                action="append",
                metavar="KEY",
                default=None,
                help="accepted Bearer key (repeatable; default sk-sim-demo)",
            )
        elif isinstance(default, bool):
            kw.update(action="store_true")
        elif f.name in _OPTIONAL_INT:
            kw.update(type=int, default=None)
        elif f.name in _OPTIONAL_FLOAT:
            kw.update(type=float, default=None, metavar="USD")
        elif f.name == "callback_retry_delays_s":
            kw.update(type=_floats, default=default, metavar="S,S,S")
        elif f.name == "log_path":
            kw.update(default=None, metavar="FILE")
        else:
            kw.update(type=type(default), default=default)
        parser.add_argument(flag, **kw)
    parser.add_argument(
        "--own-account",
        dest="own_account_keys",  # a key's option: its value is never refused for its shape
        action="append",
        default=[],
        metavar="KEY,in_flight=N,...",
        help="a key with an account of its own: own rate window (rate=N per --rate-period-s), "
        "in-flight cap (in_flight=N), balance (balance=USD); revoke_after=N revokes it after N "
        "tasks (revoke_status=401|403), label=NAME names it in stats (repeatable)",
    )
    parser.add_argument(
        "--ready-file", metavar="PATH", help="write the base URL to this file once listening"
    )
    parser.add_argument("--quiet", action="store_true", help="print only the base URL")
    parser.set_defaults(handler=run)
    return parser


def config_from_args(args: argparse.Namespace) -> SimConfig:
    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(SimConfig)
        if hasattr(args, f.name)
    }
    if not values.get("api_keys"):
        values.pop("api_keys", None)
    try:
        return SimConfig(**values)
    except ValueError as exc:
        raise UsageError(f"bad simulator option: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    try:
        own = [parse_own_account(text) for text in args.own_account_keys]
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return asyncio.run(serve(config, ready_file=args.ready_file, quiet=args.quiet, own=own))


async def serve(
    config: SimConfig,
    ready_file: str | None = None,
    quiet: bool = False,
    own: list[tuple[str, dict[str, Any]]] | None = None,
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sim = Simulator(config)
    for key, opts in own or []:
        add_own_account(sim.keys, key, opts)
    try:
        await sim.start()
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}; "
            "choose another --port (0 picks a free one)"
        ) from exc
    try:
        print(sim.base_url, flush=True)
        if ready_file:
            _write_ready(ready_file, sim.base_url)
        if not quiet:
            keys = ", ".join(sorted(config.api_keys))
            print(
                f"batchgen simulate: listening on {sim.base_url} (API key: {keys}; "
                f"time scale {config.time_scale:g}; stats: {sim.origin}/_sim/stats). "
                "Ctrl-C stops.",
                file=sys.stderr,
                flush=True,
            )
        await stop.wait()
    finally:
        stats = sim.stats()
        await sim.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if not quiet:
        summary = {
            k: stats[k]
            for k in (
                "requests",
                "tasks",
                "max_requests_in_window",
                "max_in_flight",
                "rate_limited",
            )
        }
        print(f"batchgen simulate: stopped. {json.dumps(summary)}", file=sys.stderr, flush=True)
    return 0


def _write_ready(path: str, base_url: str) -> None:
    """Atomically, so a watcher never reads half a line."""
    tmp = Path(path + ".tmp")
    tmp.write_text(base_url + "\n", encoding="utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    """`python -m batchgen.commands.simulate ...`: the same command without the other ones."""
    parser = SafeParser(prog="batchgen")
    add_parser(parser.add_subparsers(dest="command", required=True, parser_class=SafeParser))
    args = parser.parse_args(["simulate", *(sys.argv[1:] if argv is None else argv)])
    try:
        return run(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
