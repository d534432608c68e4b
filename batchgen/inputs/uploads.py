"""Local image references -> URLs the provider can fetch, made right before each submit.

With an image store: each distinct file is uploaded once (`ImageStore.ensure`, shared by the
jobs that use it; an object already in the store is not sent again) and every submit gets a
presigned GET URL made at that moment, so a later resubmit (`retry`) gets a fresh one. The
state file records each file's hash and key, never a signature. In a `--sandbox` run without
a store, `localserve.LocalServer` serves the files itself.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from batchgen.inputs.local import VIDEO_EXTS, parse_ref
from batchgen.inputs.objectstore import ImageStore, StoreError
from batchgen.inputs.prepare import InputRejected
from batchgen.inputs.sniff import HEAD_BYTES, size_warnings, sniff
from batchgen.store.images import ImageRecords

FAIL_CODE = "IMAGE_UPLOAD"
log = logging.getLogger("batchgen.images")


class Server(Protocol):
    async def url_for(self, name: str, path: str, sha256: str) -> str: ...


class LocalUploads:
    def __init__(
        self,
        records: ImageRecords,
        *,
        store: ImageStore | None = None,
        server: Server | None = None,
    ) -> None:
        self.records = records
        self.store = store
        self.server = server
        self._uploads: dict[str, asyncio.Future[str]] = {}
        self._warnings: dict[str, list[str]] = {}  # sha256 -> Kling's size rules it breaks

    def __repr__(self) -> str:
        return f"<LocalUploads store={self.store!r} files={len(self._uploads)}>"

    async def __call__(self, ref: str) -> str:
        parsed = parse_ref(ref)
        known = self.records.local(parsed[0]) if parsed else None
        if parsed is None or known is None:
            raise InputRejected(
                "an image file of this job is not recorded in the state file; "
                "run the manifest again",
                FAIL_CODE,
            )
        sha256, ext = parsed
        _, path, _, _ = known
        name = f"{sha256}{ext}"
        if self.store is None:
            if self.server is None:
                raise InputRejected(
                    "local image files need --image-store s3://BUCKET/PREFIX", FAIL_CODE
                )
            return await self.server.url_for(name, path, sha256)
        future = self._uploads.get(sha256)
        if future is None:
            future = self._uploads[sha256] = asyncio.ensure_future(self._upload(name, path, sha256))
        try:
            await asyncio.shield(future)
            return await self.store.presign(name)
        except StoreError as exc:
            raise InputRejected(str(exc), FAIL_CODE) from None

    def warnings(self, ref: str) -> list[str]:
        """Kling's size rules for a local file, as the preflight says them for a URL: read
        from the file's header once per file, logged once, then noted on each job."""
        parsed = parse_ref(ref)
        known = self.records.local(parsed[0]) if parsed else None
        if parsed is None or known is None:
            return []
        sha256 = parsed[0]
        if parsed[1] in VIDEO_EXTS:
            return []  # Kling's size rules are about images
        if sha256 not in self._warnings:
            path = known[1]
            try:
                with open(path, "rb") as f:
                    found = sniff(f.read(HEAD_BYTES))
            except OSError:
                found = sniff(b"")
            self._warnings[sha256] = size_warnings(found.width, found.height)
            for warning in self._warnings[sha256]:
                log.warning("image %s: %s", path, warning)
        return self._warnings[sha256]

    async def _upload(self, name: str, path: str, sha256: str) -> str:
        assert self.store is not None
        key = await self.store.ensure(name, path, sha256)
        self.records.mark_uploaded(sha256, key)
        return key
