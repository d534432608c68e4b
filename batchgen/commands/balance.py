"""`batchgen balance [STATE]`: the key's balance now, and what a state file spent.

The balance is the API's (`GET /apikeys/current-balance`); with a state file, beside it: what
that batch spent (its ledger), the estimate for the jobs left, its cap and learned prices,
as `batchgen status` shows them. `--json` gives numbers in USD and ISO times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from batchgen import diagnose, exitcodes
from batchgen import store as st
from batchgen.adapters.proxies import Proxies
from batchgen.commands import common
from batchgen.errors import UsageError
from batchgen.money.prices import usd
from batchgen.settings import DEFAULT_BASE_URL, SANDBOX_KEY, read_api_key


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "balance",
        help="the key's balance now, and what a state file spent",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("state", nargs="?", help="a state file: what its batch spent, beside it")
    common.add_api_options(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    spent = _spent(Path(args.state)) if args.state else None
    got = asyncio.run(_balance(args))
    micros = int(got.amount * 1_000_000) if got.amount is not None else None
    if args.json:
        out: dict[str, Any] = {"balance_usd": micros / 1e6 if micros is not None else None}
        if got.error or micros is None:
            out["error"] = got.error or f"HTTP {got.status}"
        if spent is not None:
            out["state"] = {
                "path": spent["path"],
                "spent_usd": spent["spent_micros"] / 1e6,
                "estimate_left_usd": spent["estimate_left_micros"] / 1e6,
                "cap_usd": spent["cap_micros"] / 1e6 if spent["cap_micros"] is not None else None,
            }
        json.dump(out, sys.stdout, indent=1)
        print()
    else:
        if micros is not None:
            print(f"balance {usd(micros)}")
        else:
            why = got.error or f"HTTP {got.status}"
            print(f"balance unreadable: {why}")
        if spent is not None:
            print(
                f"{args.state}: spent {usd(spent['spent_micros'])}; estimate for the jobs left "
                f"{usd(spent['estimate_left_micros'])}"
                + (f"; cap {usd(spent['cap_micros'])}" if spent["cap_micros"] is not None else "")
            )
    return exitcodes.OK if micros is not None else exitcodes.ACCOUNT


async def _balance(args: argparse.Namespace) -> diagnose.BalanceAnswer:
    proxies = Proxies(
        enabled=not args.no_proxy_env and not args.sandbox,
        proxy=None if args.sandbox else args.proxy,
    )
    if args.sandbox:
        from batchgen.simulator import SimConfig, Simulator

        async with Simulator(SimConfig(api_keys=frozenset({SANDBOX_KEY}))) as sim:
            return await diagnose.fetch_balance(sim.base_url, SANDBOX_KEY, proxies)
    base = args.base_url or os.environ.get("APIXO_BASE_URL") or DEFAULT_BASE_URL
    return await diagnose.fetch_balance(base, read_api_key(args.api_key_file), proxies)


def _spent(state: Path) -> dict[str, Any]:
    """What the state file's ledger says, read-only (a run may hold it)."""
    from batchgen.money.spending import Spending

    if not state.is_file():
        raise UsageError(f"no state file at {state}")
    store = st.Store(state, readonly=True)
    try:
        cap = store.get_meta("max_spend_micros") or ""
        spending = Spending(store, cap=int(cap) if cap.isdigit() else None)
        return {
            "path": str(state),
            "spent_micros": spending.total,
            "estimate_left_micros": spending.estimate_pending(),
            "cap_micros": spending.cap,
        }
    finally:
        store.close()
