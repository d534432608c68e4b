"""SIGINT/SIGTERM during a run: the first stops cleanly, the second exits at once.

First signal: `engine.request_stop("interrupted by SIGTERM")` - no new submits, pollers and
downloads stop at their next wait, calls on the wire get the engine's `drain_s` to finish, then
everything is recorded and the run exits 75 (work left). A signal that arrives before the
engine exists is remembered and applied the moment it is attached.

Second signal: `os._exit(130)` without unwinding. The state file stays consistent because
every transition is its own SQLite transaction in WAL mode: an uncommitted one simply never
happened, and a job caught in `submitting` becomes `ambiguous` on the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, Protocol

from batchgen import exitcodes

log = logging.getLogger("batchgen.adapters.signals")

EXIT_AT_ONCE = exitcodes.INTERRUPTED
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stoppable(Protocol):
    def request_stop(self, how: str = "stopped") -> None: ...


class StopOnSignal:
    """Installs loop signal handlers for the duration of a run (`with StopOnSignal(loop):`)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        drain_s: float = 5.0,
        exit_now: Callable[[int], Any] = os._exit,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.loop = loop
        self.drain_s = drain_s
        self.received: list[str] = []
        self._engine: Stoppable | None = None
        self._exit_now = exit_now
        self._notify = notify or (lambda text: log.warning("%s", text))
        self._installed: list[int] = []

    def __repr__(self) -> str:
        return f"<StopOnSignal received={self.received} engine={self._engine is not None}>"

    @property
    def how(self) -> str | None:
        return f"interrupted by {self.received[0]}" if self.received else None

    def attach(self, engine: Stoppable) -> None:
        """Called with the engine before it runs (RunHooks.on_engine)."""
        self._engine = engine
        if self.how is not None:
            engine.request_stop(self.how)

    def handle(self, signum: int) -> None:
        name = signal.Signals(signum).name
        self.received.append(name)
        if len(self.received) >= 2:
            # Flush what we can without awaiting anything, then leave at once.
            with contextlib.suppress(Exception):
                sys.stderr.write(f"{name} again: exiting now (exit {EXIT_AT_ONCE})\n")
                sys.stderr.flush()
            self._exit_now(EXIT_AT_ONCE)
            return
        how = f"interrupted by {name}"
        self._notify(
            f"{name}: no new submits; letting calls in flight finish (up to {self.drain_s:g} s), "
            f"then saving the state. Send it again to exit at once."
        )
        if self._engine is not None:
            self._engine.request_stop(how)

    def __enter__(self) -> StopOnSignal:
        for sig in SIGNALS:
            try:
                self.loop.add_signal_handler(sig, self.handle, int(sig))
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                continue
            self._installed.append(int(sig))
        return self

    def __exit__(self, *exc: object) -> None:
        for sig in self._installed:
            with contextlib.suppress(Exception):
                self.loop.remove_signal_handler(sig)
        self._installed.clear()
