"""Is the output bucket usable? Asked before any submit, so that a batch never pays for videos
it cannot put anywhere: write a small object under the prefix (only if absent), read it back,
delete it. `probe_output` is the one entry point, for `run`, `resume` and `batchgen doctor`.

A missing bucket, refused credentials or an unreachable endpoint raise OutputStoreUnusable
(exit 3); no credentials anywhere batchgen looks raise OutputStoreNotConfigured (exit 2). The
messages name the bucket and the endpoint, and what to fix; never a key or a signature.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from typing import Any

from batchgen.adapters import s3client
from batchgen.adapters.proxies import Proxies
from batchgen.errors import OutputStoreNotConfigured, OutputStoreUnusable

__all__ = ["PROBE_TIMEOUT_S", "probe_output"]

PROBE_TIMEOUT_S = 30.0
_NO_CREDENTIALS = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL for R2 or MinIO), "
    "or name a profile of ~/.aws/credentials with AWS_PROFILE"
)


async def probe_output(
    url: str,
    *,
    env: dict[str, str] | None = None,
    proxies: Proxies | None = None,
    timeout_s: float = PROBE_TIMEOUT_S,
    store: Any = None,
    option: str = "--output",
) -> list[str]:
    """Write, read back and delete a small object under `url`'s prefix. Returns what was
    checked, one line each (for `doctor`); raises OutputStoreUnusable when a step fails."""
    bucket, prefix = s3client.parse_store_url(url, option)
    settings = s3client.store_settings(env)
    endpoint = settings.get("endpoint") or "AWS S3"
    where = f"s3://{bucket} at {endpoint}"
    source = s3client.credentials_source(env)
    if store is None:
        store = s3client.open_store(
            bucket,
            prefix,
            env=env,
            proxies=proxies,
            retry_config={"max_retries": 2, "retry_timeout": timedelta(seconds=timeout_s)},
        )
    name = f".batchgen-probe-{secrets.token_hex(8)}"
    body = b"batchgen probe: safe to delete\n"
    done: list[str] = [f"credentials: {source or 'instance metadata (none named)'}"]
    try:
        async with asyncio.timeout(timeout_s):
            await _step(store, "write", name, body, where, source, option)
            done.append(f"write: {s3client.object_url(bucket, prefix, name)}")
            back = await _step(store, "read", name, body, where, source, option)
            if back != body:
                raise OutputStoreUnusable(
                    f"{where}: the probe object read back differs from what was written"
                )
            done.append("read back: same bytes")
            await _step(store, "delete", name, body, where, source, option)
            done.append("delete: done")
    except TimeoutError:
        raise OutputStoreUnusable(
            f"{where}: no answer within {timeout_s:g} s; check AWS_ENDPOINT_URL, the network "
            "and the proxy (NO_PROXY, --no-proxy-env)"
        ) from None
    return done


async def _step(
    store: Any,
    step: str,
    name: str,
    body: bytes,
    where: str,
    source: str | None,
    option: str = "--output",
) -> bytes:
    import obstore
    from obstore.exceptions import NotSupportedError

    try:
        if step == "write":
            try:
                await obstore.put_async(store, name, body, mode="create", use_multipart=False)
            except NotSupportedError:  # no conditional writes: the sink says so, and checks
                await obstore.put_async(store, name, body, use_multipart=False)
        elif step == "read":
            got = await obstore.get_async(store, name)
            return bytes(await got.bytes_async())
        else:
            await obstore.delete_async(store, name)
    except Exception as exc:
        raise _explain(exc, step, where, source, option) from None
    return b""


_WHERE_SET = {
    "--output": "--output / output.dir",
    "--image-store": "--image-store / images.store",
}


def _explain(
    exc: BaseException, step: str, where: str, source: str | None, option: str = "--output"
) -> Exception:
    """The store's refusal in words a person can act on (never its secrets)."""
    text = str(exc)
    codes = ("NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied")
    code = next((c for c in codes if c in text), "")
    if code == "NoSuchBucket":
        return OutputStoreUnusable(
            f"{where}: the bucket does not exist. Create it, or fix the bucket name in "
            f"{_WHERE_SET.get(option, option)}, or AWS_ENDPOINT_URL if it lives elsewhere"
        )
    if source is None and ("169.254.169.254" in text or "credential" in text.lower()):
        return OutputStoreNotConfigured(f"{where}: no credentials found; {_NO_CREDENTIALS}")
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return OutputStoreUnusable(
            f"{where}: the store refused the credentials from {source} ({code}): the access "
            "key is unknown there or the secret does not match; fix them and run again"
        )
    if code == "AccessDenied" or "PermissionDenied" in type(exc).__name__:
        return OutputStoreUnusable(
            f"{where}: the credentials from {source} may not {step} objects under the "
            f"prefix (AccessDenied); batchgen needs PutObject, GetObject and DeleteObject there"
        )
    return OutputStoreUnusable(
        f"{where}: the probe could not {step} a small object: {s3client.safe_message(exc)}"
    )
