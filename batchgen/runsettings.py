"""What a run records in its state file before it starts, and what `resume` reads back: the
manifest's jobs, meta and local image files, and the run's settings (never a key, nor a
notifier's URL). Both front doors (the CLI's `run`, `batchgen.run`) record through here."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from batchgen import store as st
from batchgen.errors import UsageError
from batchgen.manifest import Manifest, owner
from batchgen.settings import RunOptions


def record_manifest(
    m: Manifest,
    opts: RunOptions,
    *,
    resubmit_changed: bool = False,
    also: Callable[[st.Store], None] | None = None,
    add_to_state: bool = False,
) -> st.SyncResult:
    """A manifest's jobs, their meta, their local image files and the run's settings, in the
    state file before a run: the one way both front doors (the CLI's `run`, `batchgen.run`)
    record a manifest. `also` adds what one door records besides (the CLI's options). A state
    file of another manifest is refused first, untouched, unless `add_to_state`."""
    owners = owner.check(opts.files.state_path, m, add=add_to_state)
    store = st.Store(opts.files.state_path)
    try:
        owner.record(store, owners)
        sync = store.jobs.sync(
            ((job.id, job.model, job.body) for job in m.jobs), resubmit_changed=resubmit_changed
        )
        store.job_meta.record((job.id, job.meta) for job in m.jobs)
        store.links.record((job.id, job.extends) for job in m.jobs)
        record_files(store, m)
        save_run_settings(store, opts, os.path.abspath(m.path), m.name)
        if also is not None:
            also(store)
        return sync
    finally:
        store.close()


def record_files(store: st.Store, m: Manifest) -> None:
    """Each local image's hash and place: what this run (and a resume) uploads or serves."""
    if not m.local_images:
        return

    records = store.images
    with store.transaction():
        for image in m.local_images.values():
            records.add_local(image.sha256, image.ext, image.path, image.size)


def save_run_settings(
    store: st.Store, opts: RunOptions, manifest_path: str | None, batch: str | None = None
) -> None:
    """What `batchgen resume STATE` needs to continue without the manifest (never the key,
    nor a notifier's URL); `batch` names it in notifications and metrics."""
    values = {
        "output_dir": str(opts.files.output_dir),
        "filename_template": opts.files.filename_template,
        "model": opts.model,
        "base_url": opts.api.base_url,
        "updated": str(time.time()),
    }
    if manifest_path is not None:
        values["manifest"] = manifest_path
    if opts.files.result_store:
        values["result_store"] = opts.files.result_store
    if batch:
        values["batch"] = batch
    store.set_meta_many(values)


def load_run_settings(store: st.Store) -> dict[str, str]:
    keys = ("output_dir", "filename_template", "model", "base_url", "manifest", "result_store")
    return {k: v for k in keys if (v := store.get_meta(k)) is not None}


def check_only(store: st.Store, opts: RunOptions) -> None:
    """--only names jobs of this state file: a typo is an error (exit 2), never a run that
    quietly submits nothing."""
    if not opts.limits.only_ids:
        return
    unknown = [job_id for job_id in opts.limits.only_ids if store.jobs.get(job_id) is None]
    if unknown:
        shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise UsageError(f"--only names no job of this state file: {shown}")
