"""Presigned HTTPS links to results in the output bucket, for `report --presign` and the
gallery: made only when the user asks, valid for a stated time, and shown only where asked.
A link also dies with the credentials that signed it (temporary ones: STS, instance roles)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

import yarl

from batchgen.adapters import s3client
from batchgen.adapters.proxies import Proxies
from batchgen.errors import OutputStoreUnusable, UsageError

__all__ = ["MAX_LINK_TTL_S", "Links", "presign"]

MAX_LINK_TTL_S = 7 * 24 * 3600.0  # SigV4's longest: a presigned URL lives at most 7 days


@dataclass(frozen=True)
class Links:
    """Presigned GET links by object path below the prefix, and when they stop working."""

    urls: dict[str, str]
    expires_at: float  # Unix time

    @property
    def origin(self) -> str | None:
        """scheme://host[:port] of the links (what a page's media-src must allow)."""
        first = next(iter(self.urls.values()), None)
        if first is None:
            return None
        url = yarl.URL(first)
        return str(url.origin())


async def presign(
    store_url: str,
    rels: list[str],
    ttl_s: float,
    *,
    env: dict[str, str] | None = None,
    proxies: Proxies | None = None,
) -> Links:
    """One link per path (signing is local: no request is sent)."""
    import obstore

    if not 0 < ttl_s <= MAX_LINK_TTL_S:
        raise UsageError("a presigned link lives more than 0 s and at most 7 days (7d)")
    bucket, prefix = s3client.parse_store_url(store_url, "--output")
    expires_at = time.time() + ttl_s
    if not rels:
        return Links({}, expires_at)
    store = s3client.open_store(bucket, prefix, env=env, proxies=proxies)
    try:
        signed = await obstore.sign_async(store, "GET", rels, timedelta(seconds=ttl_s))
    except Exception as exc:
        raise OutputStoreUnusable(
            f"s3://{bucket}: cannot sign links: {s3client.safe_message(exc)}"
        ) from None
    return Links(dict(zip(rels, signed, strict=True)), expires_at)
