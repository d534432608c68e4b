"""May a task be created now? The in-flight cap and the money (spend cap, prices, balance)
together (`run.admission`): what a submit takes before it is spawned (backpressure)."""

from __future__ import annotations

import asyncio
import contextlib

from batchgen.engine.inflight import InFlightCap
from batchgen.engine.stops import Stops
from batchgen.money import Money


class Admission:
    """The cap and the money of one run; `take_slot` waits for a slot unless submits stop."""

    def __init__(self, cap: InFlightCap, money: Money, stops: Stops, *, no_wait: bool) -> None:
        self.cap = cap
        self.money = money
        self._stops = stops
        self._no_wait = no_wait  # a cron run: take only what is free now

    def __repr__(self) -> str:
        return f"<Admission in_flight={self.cap.in_flight} no_wait={self._no_wait}>"

    async def take_slot(self, *, front: bool = False) -> bool:
        """An in-flight slot for the next submit (backpressure before spawning); False when
        submits stop first. A cron run takes only what is free now."""
        stop_submits = self._stops.submits
        if self._no_wait:
            return not stop_submits.is_set() and self.cap.try_acquire()
        acquire = asyncio.ensure_future(self.cap.acquire(front=front))
        stop = asyncio.ensure_future(stop_submits.wait())
        try:
            await asyncio.wait({acquire, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if acquire.done() and not acquire.cancelled() and acquire.exception() is None:
            if stop_submits.is_set():
                self.cap.unreserve()
                return False
            return True
        acquire.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await acquire
        if acquire.done() and not acquire.cancelled() and acquire.exception() is None:
            self.cap.unreserve()  # it was granted while we were cancelling it
        return False
