"""Notifications around one run: the start ping, the metrics file while it runs, and at its
end the metrics, the end ping, the JSON summaries and the messages.

`runner.execute` (where both the CLI and the Python API finish a run) drives it. Nothing here
changes the run's outcome: every send is bounded (NotifySettings.tries within its deadline,
else the run's --drain) and a failure is one warning naming the receiver's scheme and host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from batchgen import exitcodes
from batchgen import store as st
from batchgen.hooks import RunHooks
from batchgen.notify import apprise_send, deliver, json_post, metrics, ping
from batchgen.notify.summary import RunFacts, message, outcome_of, summary
from batchgen.settings import METRICS_EVERY_PER_POLL_AFTER, NotifySettings, RunOptions
from batchgen.store import views

if TYPE_CHECKING:
    from batchgen.engine import Engine

log = logging.getLogger("batchgen.notify")
CRASHED = exitcodes.CRASHED  # an exit without an outcome, as the runs table records it


def batch_name(store: st.Store, opts: RunOptions) -> str:
    """The manifest's name as `run` recorded it, else the output folder's."""
    return store.get_meta("batch") or opts.files.output_dir.name or "batch"


class RunNotices:
    """What one run tells the outside world. Does nothing when no notifier is asked for."""

    def __init__(self, opts: RunOptions, store: st.Store, run_number: int) -> None:
        self.settings: NotifySettings = opts.notify or NotifySettings()
        self.opts = opts
        self.store = store
        self.run_number = run_number
        self.rid = str(uuid.uuid4())
        self.started_at = time.time()
        self.batch = batch_name(store, opts) if self.settings else ""
        self.engine: Engine | None = None
        self.report: str | None = None  # where results.jsonl was uploaded (--output s3://)
        self._http: Any = None
        self._start: asyncio.Task[bool] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._base: dict[str, float] = {}
        # A ticker write still in its thread must never land after the final one.
        self._write_lock = threading.Lock()
        self._final = False
        paced = opts.paced()
        self._pause_s = paced.backoff_base_s or 0.0
        self._deadline_s = self.settings.deadline_s or opts.timing.drain_s
        self._every_s = self.settings.metrics_every_s or (
            METRICS_EVERY_PER_POLL_AFTER * opts.timing.poll_after_s
        )

    def watching(self, hooks: RunHooks) -> RunHooks:
        """`hooks` and one that lets the metrics count the run's API requests."""
        if not self.settings.metrics_file:
            return hooks

        def keep(engine: Engine) -> None:
            self.engine = engine

        return hooks.with_engine(keep)

    def _budget(self) -> deliver.Budget:
        deadline = asyncio.get_running_loop().time() + self._deadline_s
        return deliver.Budget(self.settings.tries, self._pause_s, deadline)

    async def started(self) -> None:
        """The start ping (in the background: the run does not wait for it) and the ticker."""
        s = self.settings
        if s.ping_url or s.json_urls:
            self._http = deliver.session(self.opts.api.proxy_env, self.opts.api.connect_timeout_s)
        if s.ping_url:
            self._start = asyncio.create_task(
                ping.ping(self._http, s.ping_url, self.rid, None, self._budget())
            )
        if s.metrics_file:
            self._base = metrics.previous(s.metrics_file, self.batch)
            self._ticker = asyncio.create_task(self._tick())

    def _requests(self) -> float:
        sent = getattr(getattr(self.engine, "client", None), "requests_sent", 0)
        return self._base.get(metrics.REQUESTS, 0.0) + float(sent or 0)

    def _write_metrics(self, store: st.Store, end: metrics.RunEnd | None) -> None:
        path = self.settings.metrics_file
        assert path is not None
        last = {k: v for k, v in self._base.items() if k != metrics.REQUESTS}
        if end is not None:
            last[metrics.LAST_RUN] = end.ended_at
            last[metrics.LAST_EXIT] = float(end.exit_code)
            last[metrics.LAST_DURATION] = end.duration_s
            if end.exit_code == 0:
                last[metrics.LAST_SUCCESS] = end.ended_at
        spent = store.ledger.spent() / 1_000_000
        ours = metrics.samples(self.batch, store.jobs.counts(), spent, self._requests(), last)
        metrics.write(path, self.batch, ours)

    def _write_while_running(self) -> None:
        with self._write_lock:
            if self._final:
                return
            reader = st.Store(self.opts.files.state_path, readonly=True)  # this thread's own
            try:
                self._write_metrics(reader, None)
            finally:
                reader.close()

    def _write_final(self, end: metrics.RunEnd) -> None:
        with self._write_lock:
            self._final = True
            self._write_metrics(self.store, end)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            try:
                await asyncio.to_thread(self._write_while_running)
            except Exception as exc:  # a metrics file never stops a run
                log.warning("cannot write the metrics file: %s", type(exc).__name__)

    def _facts(self, exit_code: int, how: str, ended_at: float) -> RunFacts:
        total, failed = views.unsuccessful(self.store.db, 50)
        cap = self.store.get_meta("max_spend_micros") or ""
        report = self.report
        if report is None and self.opts.files.write_results:
            report = str(self.opts.files.output_dir / "results.jsonl")
        return RunFacts(
            batch=self.batch,
            run_id=self.rid,
            run_number=self.run_number,
            exit_code=exit_code,
            how=how,
            counts=self.store.jobs.counts(),
            failures_total=total,
            failures=failed,
            spent_micros=self.store.ledger.spent(),
            cap_micros=int(cap) if cap.isdigit() else None,
            started_at=self.started_at,
            ended_at=ended_at,
            report=report,
        )

    def _stop_ticker(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()

    async def ended(self, exit_code: int, how: str) -> None:
        """Everything the end of the run sends, within one deadline; never raises."""
        if not self.settings:
            return
        self._stop_ticker()
        try:
            await self._send_end(exit_code, how)
        except Exception as exc:  # a notifier never changes the outcome
            log.warning("notifications failed: %s", type(exc).__name__)
        finally:
            if self._http is not None:
                await self._http.close()

    async def _send_end(self, exit_code: int, how: str) -> None:
        s = self.settings
        ended_at = time.time()
        facts = self._facts(exit_code, how, ended_at)
        if s.metrics_file:
            end = metrics.RunEnd(exit_code, ended_at, ended_at - self.started_at)
            try:
                self._write_final(end)
            except OSError as exc:
                log.warning("cannot write the metrics file: %s", type(exc).__name__)
        title, text = message(facts)
        budget = self._budget()
        sends: list[Awaitable[Any]] = []
        if s.ping_url:
            sends.append(self._end_ping(exit_code, text, budget))
        if outcome_of(exit_code) in s.on:
            if s.json_urls:
                sends.append(json_post.post_all(self._http, s.json_urls, summary(facts), budget))
            sends += [apprise_send.send(u, title, text, budget) for u in s.apprise_urls]
        await asyncio.gather(*sends)

    async def _end_ping(self, exit_code: int, text: str, budget: deliver.Budget) -> None:
        """After the start ping (never overtaking it), within the end's deadline."""
        if self._start is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(max(budget.left(), 0)):
                    await asyncio.shield(self._start)
        await ping.ping(self._http, self.settings.ping_url or "", self.rid, exit_code, budget, text)

    def abandoned(self, exit_code: int) -> None:
        """The run is cut short (a cancel, KeyboardInterrupt): no sends, but the metrics file
        still says how it ended. Blocking and quick."""
        self._stop_ticker()
        if self._start is not None:
            self._start.cancel()
        if self.settings.metrics_file:
            now = time.time()
            with contextlib.suppress(Exception):
                self._write_final(metrics.RunEnd(exit_code, now, now - self.started_at))
