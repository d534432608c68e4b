"""The engine's one hook into input images: called right before a job's submit.

It checks each remote image URL (preflight, once per URL) and turns each local file reference
into a presigned URL made now (so a later resubmit gets a fresh one). A job whose image fails
is failed here with IMAGE_PREFLIGHT and nothing is sent for it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from batchgen.core.urls import describe_url
from batchgen.inputs.preflight import FAIL_CODE, Preflight
from batchgen.store.images import ImageRecords

log = logging.getLogger("batchgen.images")

# A local file in a job body: the reference `inputs.local` writes, turned into a URL here.
Resolve = Callable[[str], Awaitable[str]]
PrepareInputs = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class InputRejected(Exception):
    """The job must not be sent: `code` and `message` become its fail code and message."""

    def __init__(self, message: str, code: str = FAIL_CODE) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Inputs:
    def __init__(
        self,
        records: ImageRecords,
        *,
        preflight: Preflight | None = None,
        is_local: Callable[[str], bool] = lambda url: False,
        resolve_local: Resolve | None = None,
    ) -> None:
        self.records = records
        self.preflight = preflight
        self.is_local = is_local
        self.resolve_local = resolve_local

    def __repr__(self) -> str:
        return f"<Inputs preflight={self.preflight!r} local={self.resolve_local is not None}>"

    async def aclose(self) -> None:
        """Stop what the hook started (the sandbox's file server)."""
        server = getattr(self.resolve_local, "server", None)
        if server is not None:
            await server.aclose()

    async def __call__(self, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """`body` with every image and local video ready to send; raises InputRejected."""
        inp = body.get("input")
        if not isinstance(inp, dict):
            return body
        warnings: list[str] = []
        ready = dict(inp)
        for name in ("image_urls", "video_urls"):
            urls = inp.get(name)
            if isinstance(urls, list) and urls:
                ready[name] = await self._ready(name, urls, warnings)
        if warnings:
            self.records.note_warning(job_id, "; ".join(warnings))
        return {**body, "input": ready}

    async def _ready(self, name: str, urls: list[Any], warnings: list[str]) -> list[Any]:
        """One media field's URLs: local files presigned (or served), remote images checked;
        a remote video goes as written (the provider fetches it, as before)."""
        ready: list[Any] = []
        what = "image" if name == "image_urls" else "video"
        for n, url in enumerate(urls):
            if not isinstance(url, str):
                ready.append(url)
            elif self.is_local(url):
                if self.resolve_local is None:
                    raise InputRejected(
                        f"{name}[{n}] is a local file: a run needs --image-store "
                        "s3://BUCKET/PREFIX (or images: {store: ...} in the manifest)",
                        "IMAGE_UPLOAD",
                    )
                ready.append(await self.resolve_local(url))
                local_warnings = getattr(self.resolve_local, "warnings", None)
                if local_warnings is not None:
                    warnings.extend(f"{what} {n + 1}: {w}" for w in local_warnings(url))
            else:
                if self.preflight is not None and what == "image":
                    check = await self.preflight.check(url)
                    if check.error is not None:
                        raise InputRejected(f"image {describe_url(url)}: {check.error}")
                    warnings.extend(f"image {n + 1}: {w}" for w in check.warnings)
                ready.append(url)
        return ready
