"""Webhook delivery for tasks submitted with `request_type: callback`.

When such a task ends, the status envelope is POSTed (JSON) to its `callback_url`. A delivery
counts when the receiver answers HTTP 200 within `callback_timeout_s` (scaled); otherwise it is
retried up to len(callback_retry_delays_s) times (default 3), after 30, 60 and 120 s (scaled).
`p_callback_fail` drops an attempt before sending it; `p_callback_duplicate` sends a delivered
callback a second time, as the provider's first retry would (it did not see our 200 in time);
`p_callback_early` sends it `callback_early_s` before the status endpoint shows the end (a
provider whose status reads lag its webhooks). `p_callback_notice` posts a `processing` notice
a quarter of the way through the generation; `p_callback_forged` posts a forged `success`
halfway through, as anyone holding the URL could (each sent once, never retried). The
reference promises neither a single delivery per task nor that the status agrees at once.
Only http(s) URLs are used, and only loopback hosts unless `callback_allow_remote` is set: the
simulator never posts to the internet by surprise.

No timer per task: one sweeper sleeps until the earliest due task, woken when an earlier one
is scheduled.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from batchgen.core.urls import is_loopback_host
from batchgen.simulator.config import SimConfig
from batchgen.simulator.faults import FaultDice
from batchgen.simulator.tasks import Task


class CallbackDispatcher:
    def __init__(
        self,
        config: SimConfig,
        dice: FaultDice,
        envelope: Callable[[Task], dict[str, Any]],
        now: Callable[[], float],
    ) -> None:
        self.config, self.dice, self.envelope, self.now = config, dice, envelope, now
        self.counts: Counter[str] = Counter()
        self._due: list[tuple[float, int, Task, str]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._active: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def schedule(self, task: Task) -> None:
        if math.isinf(task.ends):
            return  # a stuck task never ends, so it never calls back
        when = task.ends
        if self.dice.roll("p_callback_early"):
            when = max(task.created, when - self.config.scaled(self.config.callback_early_s))
        self._push(when, task, "final")
        span = task.ends - task.created
        if self.dice.roll("p_callback_notice"):
            self._push(task.created + span / 4, task, "notice")
        if self.dice.roll("p_callback_forged"):
            self._push(task.created + span / 2, task, "forged")

    def _push(self, when: float, task: Task, kind: str) -> None:
        heapq.heappush(self._due, (when, next(self._seq), task, kind))
        if self._due[0][2] is task:
            self._wake.set()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100), trust_env=False
        )
        self._sweeper = asyncio.create_task(self._sweep(), name="sim-callback-sweeper")

    async def close(self) -> None:
        tasks = [t for t in (self._sweeper, *self._active) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._session is not None:
            await self._session.close()

    def summary(self) -> dict[str, int]:
        return {
            "scheduled": self.counts["scheduled"],
            "delivered": self.counts["delivered"],
            "failed": self.counts["failed"],
            "retried": self.counts["retried"],
            "attempts": self.counts["attempts"],
            "dropped": self.counts["dropped"],
            "duplicates_sent": self.counts["duplicates_sent"],
            "refused_urls": self.counts["refused_urls"],
            "forged_sent": self.counts["forged_sent"],
            "notice_sent": self.counts["notice_sent"],
            "pending": len(self._due) + len(self._active),
        }

    async def _sweep(self) -> None:
        while True:
            now = self.now()
            while self._due and self._due[0][0] <= now:
                _, _, task, kind = heapq.heappop(self._due)
                job = asyncio.create_task(
                    self._deliver(task) if kind == "final" else self._side_post(task, kind)
                )
                self._active.add(job)
                job.add_done_callback(self._active.discard)
            self._wake.clear()
            timeout = self._due[0][0] - now if self._due else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _deliver(self, task: Task) -> None:
        url = task.callback_url or ""
        self.counts["scheduled"] += 1
        if urlsplit(url).scheme not in ("http", "https") or not (
            self.config.callback_allow_remote or is_loopback_host(urlsplit(url).hostname or "")
        ):
            self.counts["refused_urls"] += 1
            self.counts["failed"] += 1
            return
        delays = (0.0, *self.config.callback_retry_delays_s)
        for attempt, delay in enumerate(delays):
            if attempt:
                self.counts["retried"] += 1
                await asyncio.sleep(self.config.scaled(delay))
            if await self._attempt(task, url):
                self.counts["delivered"] += 1
                if self.dice.roll("p_callback_duplicate"):
                    retry_after = (*self.config.callback_retry_delays_s, 30.0)[0]
                    await asyncio.sleep(self.config.scaled(retry_after))
                    self.counts["duplicates_sent"] += 1
                    await self._attempt(task, url, duplicate=True)
                return
        self.counts["failed"] += 1

    async def _side_post(self, task: Task, kind: str) -> None:
        """A post that is not the task's final word: a `processing` notice, or a forgery
        claiming success with a result URL of its own. Sent once; its answer is only counted."""
        url = task.callback_url or ""
        if urlsplit(url).scheme not in ("http", "https") or not (
            self.config.callback_allow_remote or is_loopback_host(urlsplit(url).hostname or "")
        ):
            return
        body = self.envelope(task)
        data = dict(body.get("data") or {})
        for key in ("resultJson", "failCode", "failMsg", "completeTime", "costTime"):
            data.pop(key, None)
        if kind == "forged":
            data["state"] = "success"
            data["resultJson"] = '{"resultUrls": ["http://127.0.0.1:9/forged.mp4"]}'
        else:
            data["state"] = "processing"
        assert self._session is not None
        timeout = aiohttp.ClientTimeout(total=self.config.scaled(self.config.callback_timeout_s))
        self.counts[f"{kind}_sent"] += 1
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
            async with self._session.post(url, json={**body, "data": data}, timeout=timeout) as r:
                await r.read()

    async def _attempt(self, task: Task, url: str, duplicate: bool = False) -> bool:
        if not duplicate:
            self.counts["attempts"] += 1
            if self.dice.roll("p_callback_fail"):
                self.counts["dropped"] += 1
                return False
        assert self._session is not None
        timeout = aiohttp.ClientTimeout(total=self.config.scaled(self.config.callback_timeout_s))
        try:
            async with self._session.post(url, json=self.envelope(task), timeout=timeout) as r:
                await r.read()
                return r.status == 200
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    def __repr__(self) -> str:
        return f"<CallbackDispatcher due={len(self._due)} active={len(self._active)}>"
