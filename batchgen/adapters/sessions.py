"""The HTTP sessions of a run, made in one place so that every request batchgen sends (API
calls and result downloads today; image preflight and uploads must use `Sessions.cdn` and
`Sessions.proxies` the same way) follows the same rules:

- no cookie jar: neither the API nor a CDN needs cookies, and one host's answer must not change
  what we send to another;
- `trust_env=False`: aiohttp would read ~/.netrc too and send those credentials to any host a
  result URL names; proxies come from batchgen.adapters.proxies instead, passed with each request;
- the API's idle connections live `api_keepalive_s` (settings.API_KEEPALIVE_S says why). Through
  a proxy the pooled connection is to the proxy (plain http) or a tunnel through it (https):
  proxies keep idle clients far longer (squid 2 min, nginx 75 s), so the rule still holds, and
  a POST a proxy cannot deliver comes back as the proxy's 502, which the client treats as any
  gateway's;
- result downloads have their own connections, guarded by PublicOnlyResolver when result hosts
  must be public. The proxies' own hosts are exempt from that guard: they are the user's
  choice, not the API's, and usually sit on the user's own network.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp

from batchgen.adapters.netguard import PublicOnlyResolver
from batchgen.adapters.proxies import Proxies

if TYPE_CHECKING:
    from batchgen.settings import RunOptions

USER_AGENT = "batchgen"


@dataclass
class Sessions:
    api: aiohttp.ClientSession
    cdn: aiohttp.ClientSession
    proxies: Proxies


def run_proxies(opts: RunOptions) -> Proxies:
    """--proxy, else the environment's proxies, unless told to ignore those (--no-proxy-env)."""
    return Proxies(enabled=opts.api.proxy_env, proxy=opts.api.proxy)


@contextlib.asynccontextmanager
async def open_sessions(
    opts: RunOptions, *, public_only: bool, proxies: Proxies | None = None
) -> AsyncIterator[Sessions]:
    proxies = proxies if proxies is not None else run_proxies(opts)
    api = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=opts.api.api_keepalive_s),
        headers={"User-Agent": USER_AGENT},
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
    )
    resolver = PublicOnlyResolver(trusted=proxies.proxy_hosts()) if public_only else None
    cdn = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=max(4, opts.limits.download_concurrency * 2), resolver=resolver
        ),
        headers={"User-Agent": USER_AGENT},
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
    )
    try:
        yield Sessions(api, cdn, proxies)
    finally:
        await api.close()
        await cdn.close()
