"""A resolver for the download session that refuses names leading off the public internet.

Result URLs come from the API, so a hostile or broken server could name a host on the user's
own network (a router page, cloud metadata at 169.254.169.254). Checking the name before the
request is not enough: it may resolve differently at connect time (DNS rebinding). This
resolver is what aiohttp connects with, so the check and the connection see the same answer.
"""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from batchgen.paths import is_public_address


class PublicOnlyResolver(AbstractResolver):
    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        public = [r for r in found if is_public_address(r["host"])]
        if not public:
            raise OSError(f"{host} resolves only to private or local addresses; refused")
        return public

    async def close(self) -> None:
        await self._inner.close()

    def __repr__(self) -> str:
        return f"<PublicOnlyResolver {self._inner!r}>"
