"""--ping URL: the healthchecks.io convention, which any compatible service understands.

URL/start when the run starts, then URL when it ends with 0 or 75 (work left is normal under
cron), else URL/<exit code>. Every ping of one run carries the same ?rid=<uuid>, so the
service pairs the start with its end and measures the run.
"""

from __future__ import annotations

import aiohttp
import yarl

from batchgen.notify.deliver import Budget, send


def ping_url(base: str, rid: str, exit_code: int | None) -> str:
    """The URL to ping: exit_code None is the start."""
    url = yarl.URL(base, encoded=False)
    path = url.path.rstrip("/")
    if exit_code is None:
        path += "/start"
    elif exit_code not in (0, 75):
        path += f"/{exit_code}"
    return str(url.with_path(path or "/").with_query(url.query).update_query(rid=rid))


async def ping(
    http: aiohttp.ClientSession,
    base: str,
    rid: str,
    exit_code: int | None,
    budget: Budget,
    text: str = "",
) -> bool:
    """One ping; at the end, the run's summary text goes along as the body (shown in the
    service's log of the check)."""
    which = "start ping" if exit_code is None else "end ping"
    body = text.encode("utf-8") if text else None
    return await send(http, "POST", ping_url(base, rid, exit_code), budget, what=which, body=body)
