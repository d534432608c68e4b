"""Which manifests a state file belongs to, so two manifests with one `name` (hence one
default output folder) never merge into one state file without a word.

The state file records the resolved path of each manifest that ran in it (`manifests`, a JSON
list). Another manifest is refused (exit 2, the state file untouched) with the two ways out:
its own `--output`/`--state`, or `--add-to-state` to add its jobs on purpose. A manifest that
was moved or renamed (the recorded file no longer exists) takes over its state file.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from batchgen import store as st
from batchgen.errors import UsageError
from batchgen.manifest.jobs import Manifest
from batchgen.manifest.where import shown

log = logging.getLogger("batchgen.manifest")

KEY = "manifests"


def identity(manifest: Manifest) -> str:
    return os.path.realpath(manifest.path)


def recorded(store: st.Store) -> list[str]:
    """The manifests of a state file; one written before issue 26 has only the last."""
    try:
        paths = json.loads(store.get_meta(KEY) or "[]")
    except ValueError:
        paths = []
    if not isinstance(paths, list) or not paths:
        last = store.get_meta("manifest")
        return [last] if last else []
    return [str(p) for p in paths]


def check(state_path: Path, manifest: Manifest, add: bool = False) -> list[str]:
    """The manifests the state file will belong to once this one runs; raises UsageError
    (before anything is written) when another manifest owns it and `add` is not given."""
    me = identity(manifest)
    if not state_path.exists():
        return [me]
    store = st.Store(state_path, readonly=True)
    try:
        owners = recorded(store)
    finally:
        store.close()
    # realpath both ways: a state file written before issue 26 holds an abspath.
    if not owners or me in {os.path.realpath(p) for p in owners}:
        return owners or [me]
    if add:
        return [*owners, me]
    if not any(os.path.exists(p) for p in owners):  # moved or renamed: it takes over
        log.info("%s: its state file was %s's, which is gone: taken over", manifest.path,
                 owners[-1])  # fmt: skip
        return [p for p in owners[:-1]] + [me]
    raise UsageError(
        f"state file {shown(state_path)} belongs to {shown(owners[-1])}"
        + (f" (and {len(owners) - 1} more)" if len(owners) > 1 else "")
        + f", not to {shown(manifest.path)}: its jobs would merge into that batch. Give it "
        "its own with --output DIR (or --state FILE), or add its jobs to that state file on "
        "purpose with --add-to-state"
    )


def record(store: st.Store, owners: list[str]) -> None:
    store.set_meta_many({KEY: json.dumps(owners)})
