"""A resolver for the download session that refuses names leading off the public internet.

Result URLs come from the API, so a hostile or broken server could name a host on the user's
own network (a router page, cloud metadata at 169.254.169.254). Checking the name before the
request is not enough: it may resolve differently at connect time (DNS rebinding). This
resolver is what aiohttp connects with, so the check and the connection see the same answer.

Through a proxy this resolver only ever sees the proxy's own name (`trusted`: the user chose
it, and it usually sits on the user's network); the result host's name is resolved by the
proxy. Then batchgen refuses private IP literals before the request (core/urls.check_public_host)
and gives up the rest: a name that leads to a private address, or rebinds to one, is the
proxy's to refuse (see README, "Proxies").
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING

import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from batchgen.core.urls import check_public_host, check_url, describe_url, is_public_address
from batchgen.errors import UnsafeUrl

if TYPE_CHECKING:
    from batchgen.adapters.proxies import Proxies


class PublicOnlyResolver(AbstractResolver):
    def __init__(
        self, inner: AbstractResolver | None = None, *, trusted: frozenset[str] = frozenset()
    ) -> None:
        self._inner = inner or DefaultResolver()
        self._trusted = frozenset(h.lower().rstrip(".") for h in trusted)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if host.lower().rstrip(".") in self._trusted:
            return found
        public = [r for r in found if is_public_address(r["host"])]
        if not public:
            raise OSError(f"{host} resolves only to private or local addresses; refused")
        return public

    async def close(self) -> None:
        await self._inner.close()

    def __repr__(self) -> str:
        return f"<PublicOnlyResolver {self._inner!r}>"


async def check_fetchable(
    url: str, *, public_only: bool, proxies: Proxies | None, what: str = "result URL"
) -> str:
    """check_url, and with `public_only` the host too: an IP literal must be public, and a
    name must resolve to a public address (so a refusal is a clear UnsafeUrl, not a retried
    connection error; the session's resolver still guards the connect itself). Used for
    result downloads and image preflight alike: one rule for every URL from outside."""
    check_url(url, what)
    if not public_only:
        return url
    check_public_host(url, what)
    if proxies is not None and proxies.for_url(url) is not None:
        return url  # the proxy resolves the name: see the module docstring
    host = yarl.URL(url).host or ""
    if not host.replace(".", "").isdigit() and ":" not in host:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None)
        except OSError:
            return url  # unresolvable now: the request fails and is retried as usual
        if not any(is_public_address(str(info[4][0])) for info in infos):
            raise UnsafeUrl(
                f"{what} host resolves only to private or local addresses: "
                f"{describe_url(url)} (--allow-private-result-hosts permits it)"
            )
    return url
