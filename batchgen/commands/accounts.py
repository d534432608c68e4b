"""`batchgen accounts [--json]`: the account database's accounts, their runs, slots and
tasks (never a key: an account is named by its base URL and a key fingerprint, or --account)."""

from __future__ import annotations

import argparse
import json
import sys

from batchgen.accounts import report
from batchgen.accounts.db import AccountDbError
from batchgen.errors import StateError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "accounts",
        help="show the accounts in the account database: their runs, slots and tasks",
        description="Show the accounts runs share through the account database. Safe during runs.",
    )
    p.add_argument(
        "--account-db",
        metavar="PATH|URL",
        help="the account database (default: $BATCHGEN_ACCOUNT_DB or "
        "~/.local/state/batchgen/accounts.db)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        location, accounts = report.listing(args.account_db)
    except AccountDbError as exc:
        raise StateError(str(exc)) from None
    if args.json:
        print(json.dumps({"database": location, "accounts": accounts}, indent=2))
    else:
        sys.stdout.write(report.render(location, accounts))
    return 0
