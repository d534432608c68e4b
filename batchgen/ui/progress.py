"""What a run shows while it works: a live display on a terminal, steady one-line summaries
elsewhere (cron, CI), or one JSON object per line for log shippers.

All figures come from the engine, read on the event loop between its steps (so no locking):
counts per state from the state file, tasks in flight against the cap, API requests in the
limiter's window against its limit, bytes downloaded. Rates are measured over the last few
seconds; the estimate of the time left divides the work left by the completion rate of the last
minute or so. Nothing here decides anything for the engine.

Modes: `live` (ANSI, redrawn in place ~4 times a second, log lines printed above it), `lines`
(one plain line every `interval` seconds), `json` (the same at the same pace, as JSON objects,
and log records as JSON too), `off` (--quiet: errors only).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

from batchgen.ui.snapshot import (
    Readings,
    Snapshot,
    _now_iso,
    fmt_duration,
    read_engine,
    render_json,
    render_line,
    render_live,
)

LIVE_INTERVAL_S = 0.25
LINES_INTERVAL_S = 10.0


class Progress:
    """Attach to an engine (`RunHooks(on_engine=progress.attach)`), `close()` at the end."""

    def __init__(
        self,
        stream: TextIO,
        mode: str,
        *,
        interval: float | None = None,
        width: Callable[[], int] | None = None,
    ) -> None:
        if mode not in ("live", "lines", "json", "off"):
            raise ValueError(f"unknown progress mode {mode!r}")
        self.stream = stream
        self.mode = mode
        self.interval = interval or (LIVE_INTERVAL_S if mode == "live" else LINES_INTERVAL_S)
        self._width = width or (lambda: shutil.get_terminal_size((100, 24)).columns)
        self.readings = Readings()
        self.engine: Any = None
        self.last: Snapshot | None = None
        self._task: asyncio.Task[None] | None = None
        self._drawn = 0  # lines of the live block currently on screen
        self.frames = 0

    def __repr__(self) -> str:
        return f"<Progress mode={self.mode} interval={self.interval:g}s frames={self.frames}>"

    def attach(self, engine: Any) -> None:
        self.engine = engine
        if self.mode == "off":
            return
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            if self.mode != "live":
                await asyncio.sleep(self.interval)
            if not self.tick():
                return
            if self.mode == "live":
                await asyncio.sleep(self.interval)

    def tick(self, counts: dict[str, int] | None = None) -> bool:
        """Read the engine and draw one frame; False once the state file is gone (closed)."""
        if self.engine is None:
            return False
        try:
            snap = read_engine(self.engine, self.readings, time.monotonic(), counts)
        except sqlite3.ProgrammingError:  # the run closed the state file: we are done
            return False
        self.last = snap
        self.draw(snap)
        return True

    def draw(self, snap: Snapshot, event: str = "progress") -> None:
        self.frames += 1
        if self.mode == "live":
            lines = render_live(snap, self._width())
            self._write(self._erase() + "".join(f"\x1b[2K{line}\n" for line in lines))
            self._drawn = len(lines)
        elif self.mode == "lines":
            self._write(render_line(snap) + "\n")
        elif self.mode == "json":
            self._write(render_json(snap, event) + "\n")

    def _erase(self) -> str:
        return f"\r\x1b[{self._drawn}A\x1b[J" if self._drawn else ""

    def clear(self) -> None:
        """Take the live block off the screen (before a log line is printed above it)."""
        if self._drawn:
            self._write(self._erase())
            self._drawn = 0

    def redraw(self) -> None:
        if self.mode == "live" and self.last is not None and self._task is not None:
            self.draw(self.last)

    def close(self, counts: dict[str, int] | None = None) -> None:
        """Stop the timer and draw the last frame with the run's final counts."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self.mode == "off" or self.engine is None:
            return
        snap = self.last
        if counts is not None:
            try:
                snap = read_engine(self.engine, self.readings, time.monotonic(), counts)
            except sqlite3.ProgrammingError:
                snap = self.last
        if snap is not None:
            self.last = snap
            self.draw(snap, event="final")

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.stream.write(text)
            self.stream.flush()


# -- log records --------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per log record: {"ts", "event": "log", "level", "logger", "message"}."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        return json.dumps(
            {
                "ts": ts.replace("+00:00", "Z"),
                "event": "log",
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            },
            ensure_ascii=False,
        )


class DisplayAwareHandler(logging.StreamHandler):
    """Prints a log line above the live display instead of through it."""

    def __init__(self, stream: TextIO, progress: Progress | None = None) -> None:
        super().__init__(stream)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        if self.progress is not None:
            self.progress.clear()
        super().emit(record)
        if self.progress is not None:
            self.progress.redraw()


def emit_json(stream: TextIO, event: str, **fields: Any) -> None:
    with contextlib.suppress(OSError, ValueError):
        stream.write(json.dumps({"ts": _now_iso(), "event": event, **fields}) + "\n")
        stream.flush()


# -- long synchronous steps (validating a big manifest) ----------------------------------------


@contextlib.contextmanager
def ticker(
    stream: TextIO, mode: str, what: str, *, interval: float | None = None, grace_s: float = 1.0
) -> Iterator[None]:
    """While a synchronous step runs, show that it is alive: `validating x.yaml ... 12s`.

    Silent for steps shorter than `grace_s`. A thread draws, so the step itself needs no hooks.
    """
    if mode == "off":
        yield
        return
    every = interval or (LIVE_INTERVAL_S if mode == "live" else LINES_INTERVAL_S)
    stop = threading.Event()
    started = time.monotonic()
    shown = threading.Event()

    def run() -> None:
        if stop.wait(grace_s):
            return
        while True:
            elapsed = time.monotonic() - started
            if mode == "live":
                text = f"\r\x1b[2K{what} ... {fmt_duration(elapsed)}"
            elif mode == "json":
                text = (
                    json.dumps(
                        {
                            "ts": _now_iso(),
                            "event": "working",
                            "step": what,
                            "elapsed_s": round(elapsed, 3),
                        }
                    )
                    + "\n"
                )
            else:
                text = f"{what} ... {fmt_duration(elapsed)} so far\n"
            with contextlib.suppress(OSError, ValueError):
                stream.write(text)
                stream.flush()
            shown.set()
            if stop.wait(every):
                return

    thread = threading.Thread(target=run, name="batchgen-ticker", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        if mode == "live" and shown.is_set():
            with contextlib.suppress(OSError, ValueError):
                stream.write("\r\x1b[2K")
                stream.flush()
