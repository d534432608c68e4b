"""`batchgen validate --check-images`: the run's preflight over every distinct remote image
URL of the manifests, with nothing submitted."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import aiohttp

from batchgen.adapters.netguard import PublicOnlyResolver
from batchgen.adapters.proxies import Proxies
from batchgen.adapters.sessions import USER_AGENT
from batchgen.core.urls import describe_url
from batchgen.errors import ManifestProblem
from batchgen.inputs.preflight import Preflight
from batchgen.manifest import Manifest

# The run's defaults (RunOptions: --connect-timeout, --download-concurrency, backoff).
TIMEOUT_S = 10.0
CONCURRENCY = 8


def remote_urls(manifests: Iterable[Manifest], is_local=lambda u: False) -> dict[str, str]:
    """Each distinct remote image URL -> where it is first used (the job's place)."""
    found: dict[str, str] = {}
    for manifest in manifests:
        for job in manifest.jobs:
            urls = job.body.get("input", {}).get("image_urls") or []
            for n, url in enumerate(urls):
                if isinstance(url, str) and not is_local(url) and url not in found:
                    found[url] = f"{job.where}: image_urls[{n}]"
    return found


async def check_images(
    urls: dict[str, str], *, public_only: bool = True, proxies: Proxies | None = None
) -> tuple[list[ManifestProblem], list[str]]:
    """(problems, warnings) for the URLs, checked as a run would check them."""
    proxies = proxies if proxies is not None else Proxies(enabled=True)
    resolver = PublicOnlyResolver(trusted=proxies.proxy_hosts()) if public_only else None
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=CONCURRENCY * 2, resolver=resolver),
        headers={"User-Agent": USER_AGENT},
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
    ) as session:
        preflight = Preflight(
            session,
            timeout_s=TIMEOUT_S,
            concurrency=CONCURRENCY,
            public_only=public_only,
            proxies=proxies,
        )
        checks = await asyncio.gather(*(preflight.check(url) for url in urls))
    problems: list[ManifestProblem] = []
    warnings: list[str] = []
    for check in checks:
        where = urls[check.url]
        place, _, path = where.rpartition(": ")
        if check.error is not None:
            problems.append(
                ManifestProblem(place, path, f"image {describe_url(check.url)}: {check.error}")
            )
        for warning in check.warnings:
            warnings.append(f"{where}: image {describe_url(check.url)}: {warning}")
    return problems, warnings
