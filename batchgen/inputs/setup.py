"""RunOptions -> the engine's input hook (batchgen.inputs.prepare.Inputs), or None."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from batchgen.core.policy import Backoff
from batchgen.inputs.local import is_ref
from batchgen.inputs.localserve import LocalServer
from batchgen.inputs.objectstore import ImageStore
from batchgen.inputs.preflight import Preflight
from batchgen.inputs.prepare import Inputs
from batchgen.inputs.uploads import LocalUploads
from batchgen.store.images import ImageRecords

if TYPE_CHECKING:
    from batchgen.adapters.sessions import Sessions
    from batchgen.settings import Pace, RunOptions


def prepare_inputs(
    opts: RunOptions,
    pace: Pace,
    records: ImageRecords,
    sessions: Sessions,
    *,
    public_only: bool,
    preflight: bool,
) -> Inputs:
    """Checks follow the run's options: each step waits at most --connect-timeout (a real
    network deadline, not scaled), retries pace like the downloader's (half the API's
    backoff), and as many URLs are checked at once as files are downloaded. `records` is the
    state file's image part (`store.images`)."""
    check = None
    if preflight:
        check = Preflight(
            sessions.cdn,
            timeout_s=opts.api.connect_timeout_s,
            backoff=Backoff(base=pace.backoff_base_s / 2, cap=pace.backoff_cap_s / 2),
            concurrency=opts.limits.download_concurrency,
            public_only=public_only,
            proxies=sessions.proxies,
            rng=random.Random(opts.seed),
            lookup=records.cached_check,
            save=records.save_check,
        )
    uploads = None
    if opts.files.image_store:
        store = ImageStore(
            opts.files.image_store, opts.files.image_url_ttl_s, proxies=sessions.proxies
        )
        uploads = LocalUploads(records, store=store)
    elif opts.files.serve_local_images:
        uploads = LocalUploads(records, server=LocalServer())
    return Inputs(records, preflight=check, is_local=is_ref, resolve_local=uploads)
