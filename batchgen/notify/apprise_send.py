"""--notify URL: a message through apprise, so one URL syntax reaches Slack, Discord, Telegram,
ntfy, email, Matrix and the rest. apprise is an optional extra (`batchgen[notify]`).

apprise is synchronous, so each send runs on a daemon thread the run does not wait for past
its deadline: a hung service cannot hold the process open. apprise's own log is silenced
(its lines may name the service's URL); batchgen says what failed, by scheme and host only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from batchgen.notify.config import APPRISE_MISSING, redact
from batchgen.notify.deliver import Budget, retrying

log = logging.getLogger("batchgen.notify")


def _quiet_apprise() -> None:
    logger = logging.getLogger("apprise")
    logger.propagate = False
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())


def _in_thread(loop: asyncio.AbstractEventLoop, call: Any) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():  # the run stopped waiting (its deadline)
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def work() -> None:
        result, error = None, None
        try:
            result = call()
        except Exception as exc:  # reported by the waiting side, by class only
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="batchgen-apprise", daemon=True).start()
    return future


async def send(url: str, title: str, body: str, budget: Budget) -> bool:
    """One apprise URL, tried up to budget.tries times within the deadline."""
    try:
        import apprise
    except ImportError:
        log.warning("%s", APPRISE_MISSING)
        return False
    _quiet_apprise()
    target = apprise.Apprise()
    if not target.add(url):
        log.warning("--notify %s: apprise does not understand this URL", redact(url))
        return False
    loop = asyncio.get_running_loop()

    async def one_try() -> str | None:
        ok = await _in_thread(loop, lambda: target.notify(body=body, title=title))
        return None if ok else "the service refused it"

    return await retrying(budget, one_try, errors=(Exception,), what="message", url=url)
