"""The image store: local files uploaded once, by content, to S3-compatible storage, and
presigned GET URLs for the provider to fetch them.

Library: obstore (Rust, no Python dependencies, async, presigns; see README "Images from your
disk" for the measurement against aiobotocore). The client, its credentials (the AWS_*
variables and shared files, never printed, logged or stored) and its proxy come from the one
factory the result sink shares: batchgen/adapters/s3client.py.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from batchgen.adapters import s3client
from batchgen.adapters.proxies import Proxies
from batchgen.adapters.s3client import aws_settings, safe_message
from batchgen.inputs.local import read_verified
from batchgen.inputs.sniff import CONTENT_TYPES
from batchgen.inputs.videofile import CONTENT_TYPES as VIDEO_TYPES
from batchgen.inputs.videofile import EXTENSIONS as VIDEO_EXTENSIONS

__all__ = ["ImageStore", "StoreError", "aws_settings", "parse_store_url", "safe_message"]

_KIND_OF_EXT = {".jpg": "jpeg", ".png": "png", ".webp": "webp"}


class StoreError(Exception):
    """An upload or a signature failed; the message is safe to show."""


def parse_store_url(url: str) -> tuple[str, str]:
    """`s3://BUCKET/PREFIX` -> (bucket, prefix without slashes at its ends)."""
    return s3client.parse_store_url(url, "--image-store")


class ImageStore:
    """One bucket and prefix. Objects are named `<sha256><ext>`: the same file is the same
    object in every run and every batch, so it is uploaded once."""

    def __init__(
        self,
        url: str,
        ttl_s: float,
        *,
        env: dict[str, str] | None = None,
        proxies: Proxies | None = None,
    ) -> None:
        self.url = url
        self._proxies = proxies if proxies is not None else Proxies(enabled=False)
        self.bucket, self.prefix = parse_store_url(url)
        self.ttl_s = ttl_s
        self._env = env
        self._store: Any = None
        self.uploads = 0  # files sent in this run (tests, the summary)

    def __repr__(self) -> str:  # never the credentials
        return f"<ImageStore s3://{self.bucket}/{self.prefix} uploads={self.uploads}>"

    def key(self, name: str) -> str:
        """`s3://bucket/prefix/name`: what the state file records (no signature)."""
        return f"s3://{self.bucket}/{self.prefix + '/' if self.prefix else ''}{name}"

    def _open(self) -> Any:
        if self._store is None:
            self._store = s3client.open_store(
                self.bucket, self.prefix, env=self._env, proxies=self._proxies
            )
        return self._store

    def client_options(self, settings: dict[str, str]) -> dict[str, Any]:
        """obstore's client options for `settings` under the run's proxy rule."""
        return s3client.client_options(settings, self._proxies)

    async def ensure(self, name: str, path: str, sha256: str) -> str:
        """Upload `path` as `name` unless the object is there already; returns its key.
        The file must still hold the content the job was made from."""
        import obstore
        from obstore.exceptions import NotFoundError

        store = self._open()
        try:
            await obstore.head_async(store, name)
            return self.key(name)
        except (NotFoundError, FileNotFoundError):  # obstore raises the builtin for a 404
            pass
        except Exception as exc:
            raise StoreError(f"cannot reach the image store: {safe_message(exc)}") from None
        data = await asyncio.to_thread(read_verified, path, sha256)
        if data is None:
            raise StoreError(f"{path} changed or vanished since the manifest was read")
        suffix = Path(name).suffix
        video = next((k for k, e in VIDEO_EXTENSIONS.items() if e == suffix), None)
        if video is not None:
            content_type = VIDEO_TYPES[video]
        else:
            content_type = CONTENT_TYPES[_KIND_OF_EXT.get(suffix, "png")]
        try:
            await obstore.put_async(store, name, data, attributes={"Content-Type": content_type})
        except Exception as exc:
            raise StoreError(f"upload of {path} failed: {safe_message(exc)}") from None
        self.uploads += 1
        return self.key(name)

    async def presign(self, name: str) -> str:
        import obstore

        try:
            return await obstore.sign_async(
                self._open(), "GET", name, timedelta(seconds=self.ttl_s)
            )
        except Exception as exc:
            raise StoreError(f"cannot sign a URL for {name}: {safe_message(exc)}") from None
