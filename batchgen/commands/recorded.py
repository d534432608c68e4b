"""The run settings a state file remembers, so `batchgen resume STATE` talks to the server the
batch was created on, at the pace it was run with.

The tasks of a batch live at one API: resuming against any other (the default host, a stale
$APIXO_BASE_URL) finds none of them. So `run` records its settings in the state file's meta
table and `resume` takes each one from there unless the command line names it. Never recorded:
the API key or its file, and per-invocation controls (--no-wait, --max-runtime,
--resubmit-ambiguous, output format).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from batchgen import store as st
from batchgen.sandbox import refuse_other_world

META_KEY = "run_args"

# argparse dests of `add_run_options` that `resume` takes from the record when not given.
RECORDED = (
    "base_url",
    "sandbox",
    "time_scale",
    "rate_limit",
    "max_in_flight",
    "poll_after",
    "poll_every",
    "download_concurrency",
    "max_file_size",
    "allow_private_result_hosts",
    "stuck_after",
    "status_outage",
    "poll_backoff_cap",
    "backoff",
    "rate_pause",
    "no_proxy_env",
    "callback_listen",
    "callback_url",
    "trust_callbacks",
    "callback_grace",
    "callback_poll_every",
    "callback_guard",
    "connect_timeout",
    "read_timeout",
    "stall_timeout",
    "drain",
    "preflight",
    "image_store",
    "image_url_ttl",
    "no_learn_prices",
    "resubmit_codes",
    "max_resubmits",
    "account",  # the account's name groups its keys; never --account-db (a URL may hold a password)
)


def record(store: st.Store, args: argparse.Namespace, base_url: str) -> None:
    """Save this run's settings (`base_url`: the API it really uses, flag or environment)."""
    values = {name: getattr(args, name) for name in RECORDED if hasattr(args, name)}
    values["base_url"] = None if getattr(args, "sandbox", False) else base_url
    store.set_meta(META_KEY, json.dumps(values))


def unset_for_resume(p: argparse.ArgumentParser) -> None:
    """Make every recorded option default to None on `p`, so `fill` can tell a flag the user
    gave from one left out; the usual defaults are kept aside for what the record lacks."""
    defaults = {name: p.get_default(name) for name in RECORDED}
    p.set_defaults(**{name: None for name in RECORDED}, recorded_defaults=defaults)


def load(store: st.Store, state_path: Path) -> dict[str, Any]:
    """The recorded settings; for a state file written before they were recorded, the base URL
    alone (and a sandbox, if the simulator's task journal lies beside it)."""
    text = store.get_meta(META_KEY)
    if text is not None:
        try:
            values = json.loads(text)
        except ValueError:
            values = None
        if isinstance(values, dict):
            # JSON has no tuples: N/PERIOD, HOST:PORT and BASE,CAP come back as lists.
            return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    from batchgen.simulator.journal import journal_path  # the simulator only when needed

    if os.path.exists(journal_path(state_path)):
        return {"sandbox": True}
    base_url = store.get_meta("base_url")
    return {"base_url": base_url} if base_url else {}


def fill(args: argparse.Namespace, saved: dict[str, Any]) -> list[str]:
    """Give each option the user left out its recorded value, else its usual default. Returns
    the names whose recorded value differs from the default. An explicit API choice
    (--base-url, --api-key-file, --sandbox) replaces the recorded one as a whole."""
    defaults: dict[str, Any] = getattr(args, "recorded_defaults", {})
    saved = dict(saved)
    if args.base_url is not None or args.api_key_file is not None or args.sandbox:
        saved.pop("base_url", None)
        saved.pop("sandbox", None)
    if getattr(args, "no_wait", False):  # a cron pass does not listen for callbacks
        saved.pop("callback_listen", None)
        saved.pop("callback_url", None)
    if saved.get("sandbox"):
        saved.pop("base_url", None)
    taken = []
    for name in RECORDED:
        if not hasattr(args, name) or getattr(args, name) is not None:
            continue
        if saved.get(name) is not None:
            setattr(args, name, saved[name])
            if saved[name] != defaults.get(name):
                taken.append(name)
        else:
            setattr(args, name, defaults.get(name))
    return taken


def check_same_world(state_path: Path, sandbox: bool, saved: dict[str, Any] | None = None) -> None:
    """A sandbox's state file is never continued against the API, nor the other way round
    (batchgen/sandbox.py); the record says which world made its tasks."""
    if not state_path.exists():
        return
    if saved is None:
        store = st.Store(state_path, readonly=True)
        try:
            saved = load(store, state_path)
        finally:
            store.close()
    refuse_other_world(state_path, sandbox, bool(saved.get("sandbox")))
