"""The account options of `run` and `resume`: the account database runs of one account share
its limits through (--account-db, --account), and several accounts in one run (--accounts)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from batchgen.accounts.accountsfile import load_accounts, with_keys
from batchgen.accounts.identity import account_of
from batchgen.errors import UsageError


def add(g: argparse._ArgumentGroup) -> None:
    """The options, in the API group of `run` and `resume` (commands/common.py)."""
    g.add_argument(
        "--account-db",
        metavar="PATH|URL|none",
        help="the account database that runs of one account share its limits through: an "
        "SQLite file, a postgresql:// URL (several machines), or none (default: "
        "$BATCHGEN_ACCOUNT_DB or ~/.local/state/batchgen/accounts.db; none with --sandbox)",
    )
    g.add_argument(
        "--account",
        metavar="NAME",
        help="the account's name, for several keys of one account (they share its limits); "
        "default: the key itself (by a fingerprint, never stored)",
    )
    # Tests: this process's clock for the account database is off by SECONDS (skew).
    g.add_argument("--account-clock-offset", type=float, help=argparse.SUPPRESS)
    g.add_argument(
        "--accounts",
        metavar="FILE",
        help="spread the jobs over several accounts: a YAML file naming each account, where "
        "its key is (an environment variable or a key file, never the key) and its own "
        "rate_limit, max_in_flight and max_spend (docs/accounts.md); resume needs it again",
    )


def fields(args: argparse.Namespace) -> dict[str, Any]:
    """--account-db, --account and --accounts, checked before any work (exit 2)."""
    fields: dict[str, Any] = {}
    if getattr(args, "account_db", None) is not None:
        if not args.account_db.strip():
            raise UsageError("--account-db needs a path, a postgresql:// URL or none")
        fields["account_db"] = args.account_db
    name = getattr(args, "account", None)
    if name is not None:
        try:
            account_of("http://x", "", name)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        fields["account_name"] = name
    if getattr(args, "account_clock_offset", None) is not None:
        fields["account_clock_offset_s"] = args.account_clock_offset
    accounts = _accounts_file(args)
    if accounts is not None:
        fields["accounts_file"] = accounts
    return fields


def _accounts_file(args: argparse.Namespace) -> str | None:
    """The accounts file, its keys read once now so a missing one says so (exit 2) before
    anything is written; the run reads them again when it starts."""
    path = getattr(args, "accounts", None)
    if path is None:
        return None
    if getattr(args, "account", None) is not None:
        raise UsageError("--account names one account of several keys; --accounts lists several")
    if getattr(args, "api_key_file", None):
        raise UsageError("--api-key-file: with --accounts each account names its own key")
    with_keys(load_accounts(path))
    return os.path.abspath(path)
