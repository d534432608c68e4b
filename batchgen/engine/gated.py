"""Submits through the submit gate (batchgen/engine/gate.py holds its pure state): while a
submit's fate is in doubt, submits wait for a sign of life from the API, probing a task this
state file knows, and then go single file. An answer that cannot be read counts toward the
status outage, so an API down for good ends the run instead of probing for ever."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from batchgen.adapters.client import ApiClient
from batchgen.core import verdicts
from batchgen.core.policy import backoff_delay
from batchgen.core.verdicts import Act
from batchgen.engine.context import RunContext
from batchgen.engine.gate import SubmitGate
from batchgen.engine.stops import StopReason
from batchgen.errors import ApiConnectionError, ApiError, ServerError, SubmitSkipped

log = logging.getLogger("batchgen.engine")


class GatedSubmits:
    """`client.submit` through the run's one SubmitGate."""

    def __init__(self, run: RunContext, client: ApiClient) -> None:
        self.run = run
        self.client = client
        self.gate = SubmitGate()

    def __repr__(self) -> str:
        return f"<GatedSubmits {self.gate!r}>"

    async def submit(
        self,
        body: dict,
        before_send: Callable[[], Awaitable[bool]],  # type: ignore[type-arg]
        model: str | None = None,
        client: ApiClient | None = None,
    ) -> str:
        """client.submit through the submit gate (batchgen/engine/gate.py): while a submit's fate is
        in doubt, submits wait for a sign of life and then go single file. `client`: the
        submit's account's (several accounts; one gate: they share one API)."""
        gate = self.gate
        while True:
            while gate.in_doubt:
                await gate.lock.acquire()
                try:
                    if gate.in_doubt:
                        if not await self._sign_of_life():
                            raise SubmitSkipped()  # stopping: nothing was sent
                        return await self._judged_submit(body, before_send, model, client)
                finally:
                    gate.lock.release()
            closed = False

            async def unless_closed() -> bool:
                # The gate may have closed while this submit queued for the rate limiter:
                # it must not go out into the outage; it goes back to wait at the gate.
                nonlocal closed
                if gate.in_doubt:
                    closed = True
                    return False
                return await before_send()

            try:
                return await self._judged_submit(body, unless_closed, model, client)
            except SubmitSkipped:
                if not closed:
                    raise

    async def _judged_submit(
        self,
        body: dict,
        before_send: Callable[[], Awaitable[bool]],  # type: ignore[type-arg]
        model: str | None = None,
        client: ApiClient | None = None,
    ) -> str:
        """One submit; its answer opens or closes the gate."""
        try:
            task_id = await (client or self.client).submit(
                body, before_send=before_send, model=model
            )
        except Exception as exc:
            verdict = verdicts.on_submit(exc)
            if verdict is None or verdict.act in (Act.WAIT, Act.SKIPPED):
                raise  # a bug; or no word on the API behind whoever refused
            if verdict.act is Act.AMBIGUOUS:
                self.gate.doubt(self._alive())
                self._api_unreadable(exc)  # with no task to probe, the submits are the probes
            elif verdict.act is not Act.RETRY or isinstance(exc, ApiError):
                self.gate.answered()  # the API's own word (a refused connection says none)
            raise
        self.gate.answered()
        return task_id

    async def _sign_of_life(self) -> bool:
        """Wait, backing off with the run's backoff, until the API has answered in its own
        words since the doubtful answer; ask it about a task this state file knows (a GET:
        it creates nothing) when nothing else did. With no task to ask about, the next
        submit itself goes, alone. A probe that cannot be read counts toward the status
        outage (batchgen/engine/outage.py): once nothing was readable for --status-outage, submits
        stop and the run ends 75 instead of probing for ever. False: stop."""
        run = self.run
        gate = self.gate
        while not gate.heard_since_doubt(self._alive()):
            if run.stops.submits.is_set():
                return False
            if gate.doubts == 1:
                log.warning(
                    "a submit's answer left its fate unknown: further submits wait for the "
                    "API to answer in its own words, then go one at a time"
                )
            delay = backoff_delay(gate.doubts - 1, run.config.backoff, run.rng)
            if not await run.sleep(delay, until=run.stops.submits):
                return False
            if gate.heard_since_doubt(self._alive()):
                break
            known = run.store.jobs.known_task()
            if known is None or known.task_id is None:
                return not run.stops.submits.is_set()
            await self._probe(known.seq, known.task_id, known.model)
            gate.doubts += 1  # heard or not, the next wait (if any) is longer
        return not run.stops.submits.is_set()

    def _alive(self) -> int:
        """Answers in the API's own words so far (over every account's client)."""
        pool = self.run.pool
        return pool.alive_answers() if pool is not None else self.client.alive_answers

    async def _probe(self, seq: int, task_id: str, model: str | None) -> None:
        """One status request as a sign of life, with the key of the task's own account; an
        unreadable answer feeds the outage watch (under no task: the probed task may be long
        done), and a lasting one stops submits."""
        run = self.run
        client = self.client if run.pool is None else run.pool.client_for(seq, task_id)
        try:
            await client.status(task_id, model=model)
        except (ServerError, ApiConnectionError) as exc:
            self._api_unreadable(exc)
        except ApiError:
            run.readable(None)  # its own words: an outage is over
        else:
            run.readable(None)

    def _api_unreadable(self, exc: Exception) -> None:
        """An answer of the submit gate's (a probe, a doubtful submit) that cannot be read
        counts toward the outage under no task; once nothing was readable for
        --status-outage, submits stop (exit 75): an API down for good ends the run instead
        of turning one job after another ambiguous, one per backoff step."""
        run = self.run
        now = run.wall()
        run.outage.unreadable(None, now, str(exc) or type(exc).__name__)
        if run.outage.over(now) and not run.stops.submits.is_set():
            note = f"no answer from the API readable for {now - (run.outage.since or now):.0f} s"
            log.warning("%s: no new submits in this run", note)
            run.stops.stop_submitting(StopReason.OUTAGE, note)
