"""One HTTP request to a notifier, tried a bounded number of times within a shared deadline.

A notifier never changes a run's outcome: a receiver that is down, slow or erroring costs at
most the deadline (the run's options: NotifySettings.deadline_s, else --drain), then one
warning that names its scheme and host only (its path and query often hold a token).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import aiohttp

from batchgen.notify.config import redact

log = logging.getLogger("batchgen.notify")


@dataclass(frozen=True)
class Budget:
    """How hard to try: `tries` per request, pauses from `pause_s` doubling, and everything
    over by `deadline` (the event loop's clock)."""

    tries: int
    pause_s: float
    deadline: float

    def left(self) -> float:
        return self.deadline - asyncio.get_running_loop().time()


def session(proxy_env: bool, connect_timeout_s: float) -> aiohttp.ClientSession:
    """A session of its own: notifiers are not the API, and must not share its pace."""
    return aiohttp.ClientSession(
        trust_env=proxy_env, timeout=aiohttp.ClientTimeout(sock_connect=connect_timeout_s)
    )


class Final(str):
    """Why a try failed, when trying again is no use (the receiver refuses the request as
    such): `retrying` stops at it."""


async def retrying(
    budget: Budget,
    one_try: Callable[[], Awaitable[str | None]],
    *,
    errors: tuple[type[Exception], ...],
    what: str,
    url: str,
) -> bool:
    """The one bounded retry of every notifier: `one_try()` (None: delivered, else why not)
    up to budget.tries times within the deadline, each try given its share of the time left
    (a slow first one leaves room for more), pauses doubling between. `errors` are failed
    tries, named by class only (never str(exc): it may quote the URL). False after one
    warning; a notifier never changes the run's outcome."""
    last = "no time left"
    tries = 0
    for attempt in range(budget.tries):
        left = budget.left()
        if left <= 0:
            break
        tries += 1
        try:
            async with asyncio.timeout(left / (budget.tries - attempt)):
                why = await one_try()
            if why is None:
                return True
            last = why
            if isinstance(why, Final):
                break
        except TimeoutError:
            last = "no answer in time"
        except errors as exc:
            last = type(exc).__name__
        if attempt + 1 < budget.tries:
            pause = min(budget.pause_s * 2**attempt, budget.left())
            if pause > 0:
                await asyncio.sleep(pause)
    log.warning(
        "%s to %s not delivered (%d %s, %s); the run's exit code is unchanged",
        what,
        redact(url),
        tries,
        "try" if tries == 1 else "tries",
        last,
    )
    return False


async def send(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    budget: Budget,
    *,
    what: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> bool:
    """True once a 2xx answers. A 4xx other than 408/429 is not tried again (the receiver
    refuses this request as such); errors, 5xx and timeouts are, while tries and time last."""

    async def one_try() -> str | None:
        async with http.request(method, url, data=body, headers=headers) as resp:
            await resp.read()
        if 200 <= resp.status < 300:
            return None
        if 400 <= resp.status < 500 and resp.status not in (408, 429):
            return Final(f"HTTP {resp.status}")
        return f"HTTP {resp.status}"

    return await retrying(
        budget, one_try, errors=(aiohttp.ClientError, OSError), what=what, url=url
    )
