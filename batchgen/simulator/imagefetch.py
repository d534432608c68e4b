"""The simulator fetching each task's images as the provider does (`fetch_images` knob).

APIXO fetches the images itself once a task starts; one it cannot fetch, or that is not an
image, fails the task with INVALID_IMAGE_URL. With this on, the simulator does the same, so a
run against it proves that the URLs batchgen sends (presigned store URLs, the sandbox's own
file server) really work. `loopback` fetches only URLs on loopback hosts (the sandbox: no
network) and takes any other URL as fine; `all` fetches every URL.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import yarl

from batchgen.core.urls import is_loopback_host
from batchgen.inputs.sniff import HEAD_BYTES, MAX_IMAGE_BYTES, image_kind

MODES = ("off", "loopback", "all")


class ImageFetcher:
    def __init__(self, mode: str, timeout_s: float = 10.0) -> None:
        if mode not in MODES:
            raise ValueError(f"fetch_images must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.timeout_s = timeout_s
        self.fetched: list[tuple[str, int | str]] = []  # (url, status or error): for tests
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def wants(self, url: str) -> bool:
        if self.mode == "off":
            return False
        if self.mode == "all":
            return True
        return is_loopback_host(yarl.URL(url).host or "")

    def check_later(self, urls: list[Any], on_bad: Any, *, video: bool = False) -> None:
        """Fetch `urls` in the background; call `on_bad()` once if one of them fails (a
        video must at least start as one: ISO BMFF `ftyp` or EBML)."""
        wanted = [u for u in urls if isinstance(u, str) and self.wants(u)]
        if not wanted:
            return
        task = asyncio.ensure_future(self._check(wanted, on_bad, video))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _check(self, urls: list[str], on_bad: Any, video: bool = False) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False)
        for url in urls:
            if not await self._ok(url, video):
                on_bad()
                return

    async def _ok(self, url: str, video: bool = False) -> bool:
        assert self._session is not None
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self._session.get(yarl.URL(url, encoded=True)) as resp:
                    self.fetched.append((url, resp.status))
                    if resp.status != 200:
                        return False
                    head = await resp.content.read(HEAD_BYTES)
                    if video:
                        return head[4:8] == b"ftyp" or head[:4] == b"\x1a\x45\xdf\xa3"
                    size = len(head) + len(await resp.content.read(MAX_IMAGE_BYTES))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self.fetched.append((url, exc.__class__.__name__))
            return False
        return image_kind(head) is not None and size <= MAX_IMAGE_BYTES

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
