"""The sandbox's stand-in for an image store: the run serves its local image and video files
itself on loopback, so `--sandbox` with such files needs no cloud account. URLs carry a token made
with a per-run secret (like a presigned URL), and only files of this run are served."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets

from aiohttp import web

from batchgen.inputs.local import read_verified
from batchgen.inputs.sniff import CONTENT_TYPES
from batchgen.inputs.videofile import CONTENT_TYPES as VIDEO_TYPES
from batchgen.inputs.videofile import EXTENSIONS as VIDEO_EXTENSIONS

_TYPES = {
    ".jpg": CONTENT_TYPES["jpeg"],
    ".png": CONTENT_TYPES["png"],
    ".webp": "image/webp",
    **{ext: VIDEO_TYPES[kind] for kind, ext in VIDEO_EXTENSIONS.items()},
}


class LocalServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._secret = secrets.token_bytes(32)
        self._files: dict[str, tuple[str, str]] = {}  # name -> (path, sha256)
        self._runner: web.AppRunner | None = None
        self._base = ""
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<LocalServer {self._base or 'not started'} files={len(self._files)}>"

    def _token(self, name: str) -> str:
        return hmac.new(self._secret, name.encode(), hashlib.sha256).hexdigest()[:32]

    async def url_for(self, name: str, path: str, sha256: str) -> str:
        async with self._lock:
            if self._runner is None:
                app = web.Application()
                app.router.add_get("/images/{name}", self._serve)
                self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
                await self._runner.setup()
                site = web.TCPSite(self._runner, self.host, 0)
                await site.start()
                port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
                self._base = f"http://{self.host}:{port}"
        self._files[name] = (path, sha256)
        return f"{self._base}/images/{name}?t={self._token(name)}"

    async def _serve(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        given = request.query.get("t", "")
        if name not in self._files or not hmac.compare_digest(given, self._token(name)):
            return web.Response(status=403, text="forbidden")
        path, sha256 = self._files[name]
        data = await asyncio.to_thread(read_verified, path, sha256)
        if data is None:
            return web.Response(status=404, text="gone")
        ext = name[name.rfind(".") :]
        return web.Response(body=data, content_type=_TYPES.get(ext, "application/octet-stream"))

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
