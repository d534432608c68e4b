"""Tiny real images and a scripted image host (aiohttp on loopback) for the image tests."""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable

from aiohttp import web


def png(width: int = 400, height: int = 300, rgb: tuple[int, int, int] = (200, 120, 40)) -> bytes:
    """A valid solid-colour PNG (any decoder opens it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = b"\x00" + bytes(rgb) * width
    raw = zlib.compress(row * height, 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def jpeg_header(width: int, height: int, exif: int = 0) -> bytes:
    """The start of a baseline JPEG: SOI, an optional APP1 of `exif` bytes, then SOF0."""
    out = b"\xff\xd8"
    if exif:
        out += b"\xff\xe1" + struct.pack(">H", exif + 2) + b"\x00" * exif
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
    out += b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof
    return out + b"\xff\xda" + b"\x00" * 32


def webp_vp8x(width: int, height: int) -> bytes:
    data = (
        b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    )
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ImageHost:
    """Routes set per test; counts requests (method and path) and body bytes sent."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.hits: Counter[str] = Counter()
        self.runner: web.AppRunner | None = None
        self.base = ""

    async def __aenter__(self) -> ImageHost:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._dispatch)
        self.runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def serve(self, path: str, handler: Handler) -> str:
        self.routes[path.lstrip("/")] = handler
        return self.url(path)

    def file(self, path: str, data: bytes, *, ranges: bool = True, ctype: str = "image/png") -> str:
        """A static file: honours `Range: bytes=A-B` with 206 when `ranges`."""

        async def handler(request: web.Request) -> web.StreamResponse:
            rng = request.headers.get("Range", "")
            if ranges and rng.startswith("bytes="):
                start, _, end = rng[6:].partition("-")
                a, b = int(start), min(int(end or len(data) - 1), len(data) - 1)
                if a >= len(data):
                    return web.Response(status=416)
                headers = {"Content-Range": f"bytes {a}-{b}/{len(data)}"}
                return web.Response(status=206, body=data[a : b + 1], headers=headers,
                                    content_type=ctype)  # fmt: skip
            return web.Response(body=data, content_type=ctype)

        return self.serve(path, handler)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        self.hits[f"{request.method} /{path}"] += 1
        handler = self.routes.get(path)
        if handler is None:
            return web.Response(status=404, text="not found")
        return await handler(request)

    def requests(self, path: str | None = None) -> int:
        if path is None:
            return sum(self.hits.values())
        return sum(n for k, n in self.hits.items() if k.split(" ", 1)[1] == "/" + path.lstrip("/"))
