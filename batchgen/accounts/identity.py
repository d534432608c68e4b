"""Who an account is, without ever holding its key: the API's base URL plus a fingerprint of
the key (or the name given with `--account`, which groups several keys of one account), and
where the account database lives.

The fingerprint is a keyed hash truncated to 12 hex digits: enough to tell keys apart in a
listing, useless to recover or try keys against (an HMAC with a fixed label, never stored
with anything that could reverse it)."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yarl

DB_ENV = "BATCHGEN_ACCOUNT_DB"
"""The environment variable naming the account database (a path, a postgresql:// URL, or
`none`)."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def fingerprint(api_key: str) -> str:
    """12 hex digits that name a key in listings; the key itself is never stored or shown."""
    return hmac.new(b"batchgen-account-v1", api_key.encode(), hashlib.sha256).hexdigest()[:12]


def normal_base(base_url: str) -> str:
    """The base URL as one account key: scheme and host lower-cased, no trailing slash."""
    url = yarl.URL(base_url.strip())
    text = str(url.with_scheme((url.scheme or "https").lower()).with_host((url.host or "").lower()))
    return text.rstrip("/")


@dataclass(frozen=True)
class AccountId:
    """One account: `key` is what the database is keyed on, `label` what people see."""

    base_url: str
    key_fp: str
    name: str | None = None

    @property
    def key(self) -> str:
        who = f"name:{self.name}" if self.name else f"key:{self.key_fp}"
        return f"{normal_base(self.base_url)}#{who}"

    @property
    def label(self) -> str:
        who = self.name if self.name else f"key {self.key_fp}"
        return f"{who} at {normal_base(self.base_url)}"


def account_of(base_url: str, api_key: str, name: str | None = None) -> AccountId:
    """The account a run uses. Raises ValueError for a name that is not a plain word."""
    if name is not None and not _NAME.match(name):
        raise ValueError(
            f"invalid --account {name!r}: use letters, digits, '.', '_', '@' or '-' "
            "(at most 64 characters)"
        )
    return AccountId(normal_base(base_url), fingerprint(api_key), name)


def default_db_path(env: dict[str, str] | None = None) -> Path:
    """`$XDG_STATE_HOME/batchgen/accounts.db`, i.e. ~/.local/state/batchgen/accounts.db."""
    env = dict(os.environ) if env is None else env
    base = env.get("XDG_STATE_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "state"
    return root / "batchgen" / "accounts.db"


def db_location(option: str | None, env: dict[str, str] | None = None) -> str | None:
    """Where the account database is: `--account-db`, else $BATCHGEN_ACCOUNT_DB, else the
    default file. None: opted out (`none`)."""
    env = dict(os.environ) if env is None else env
    chosen = option if option is not None else env.get(DB_ENV)
    if chosen is None or chosen.strip() == "":
        return str(default_db_path(env))
    if chosen.strip().lower() in ("none", "off"):
        return None
    return chosen.strip()


def is_postgres(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))
