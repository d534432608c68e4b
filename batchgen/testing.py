"""Fakes for your own tests: what batchgen's suite drives its engine with, shipped so code
that builds on batchgen can be tested the same way, without sockets or waiting.

- `FakeClock`: the run's clock, moved by the test (`advance`, `run_for`, `settle`); an engine
  built with `clock=` and `wall=` on it waits on no real time.
- `ScriptedClient`: the API client's two calls (`submit`, `status`) answering from scripts:
  an exception in a script is raised, anything else returned. It records the fake time of
  every call, so a test asserts exact schedules.
- `toy_model(folder)`: a small third model (its spec and request schema written to `folder`),
  to try a manifest or the simulator with a model that is not Kling; `batchgen.models.register`
  it, and `unregister` it after.
- `on_fake_time(clock, coro)`: run a coroutine to its end, jumping the clock from timer to timer.

    from batchgen.testing import FakeClock, ScriptedClient, on_fake_time
    clock = FakeClock(start=1_700_000_000.0)
    client = ScriptedClient(["task-1"], [TaskStatus("task-1", "success", "success", ...)], clock)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from batchgen.adapters.answers import TaskStatus
from batchgen.clock import FakeClock
from batchgen.errors import SubmitSkipped
from batchgen.models.base import ModelSpec

__all__ = ["FakeClock", "ScriptedClient", "on_fake_time", "toy_model"]

T = TypeVar("T")


class ScriptedClient:
    """Answers each call with the next item of its script: an exception is raised, anything
    else returned. Records the fake time of each call (`submit_times`, `status_times`)."""

    def __init__(
        self, submits: list[Any], statuses: list[Any] | None = None, clock: FakeClock | None = None
    ) -> None:
        self._submits: Iterator[Any] = iter(submits)
        self._statuses: Iterator[Any] = iter(statuses or [])
        self.clock = clock
        self.submit_calls = 0
        self.status_calls = 0
        self.alive_answers = 0  # answers in the API's own words (the submit gate reads it)
        self.submit_times: list[float] = []
        self.status_times: list[float] = []
        self.tasks_in_flight = lambda: 0

    def _now(self) -> float:
        return self.clock.now() if self.clock is not None else 0.0

    async def submit(
        self, body: dict[str, Any], *, before_send: Any = None, model: Any = None
    ) -> str:
        if before_send is not None and not await before_send():
            raise SubmitSkipped()
        self.submit_calls += 1
        self.submit_times.append(self._now())
        answer = next(self._submits)
        if isinstance(answer, BaseException):
            raise answer
        self.alive_answers += 1
        return str(answer)

    async def status(self, task_id: str, *, model: Any = None, priority: int = 0) -> TaskStatus:
        self.status_calls += 1
        self.status_times.append(self._now())
        answer = next(self._statuses)
        if isinstance(answer, BaseException):
            raise answer
        self.alive_answers += 1
        return answer  # type: ignore[no-any-return]


async def on_fake_time(clock: FakeClock, coro: Coroutine[Any, Any, T], steps: int = 5000) -> T:
    """Run `coro` to its end, moving the clock from one timer to the next whenever every task
    is waiting on it. With no timer due, something else is awaited (a state file's fsync in a
    worker thread): a moment of real time is given to it."""
    task = asyncio.ensure_future(coro)
    for _ in range(steps):
        await clock.settle()
        if task.done():
            return task.result()
        due = clock.next_deadline()
        if due is None:
            await asyncio.sleep(0.001)
            continue
        clock.advance(max(0.0, due - clock.now()))
    task.cancel()
    raise AssertionError(f"not finished after {steps} timers")


TOY_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["input"],
    "properties": {
        "request_type": {"enum": ["async", "callback"]},
        "callback_url": {"type": "string", "pattern": "^https?://"},
        "input": {
            "type": "object",
            "additionalProperties": False,
            "required": ["style", "prompt", "seconds"],
            "properties": {
                "style": {"enum": ["sketch", "clay"], "default": "sketch"},
                "prompt": {"type": "string", "minLength": 1, "maxLength": 100},
                "seconds": {"type": "integer", "enum": [3, 6]},
            },
        },
    },
}


def toy_model(folder: Path, model_id: str = "toy-clip") -> ModelSpec:
    """A small model (`style`, `prompt`, `seconds` of 3 or 6; 20 to 30 s to generate 3 s),
    its request schema written to `folder`. Not registered: `batchgen.models.register` it."""
    folder.mkdir(parents=True, exist_ok=True)
    schema = folder / f"{model_id}.request.schema.json"
    schema.write_text(json.dumps(TOY_SCHEMA, indent=1), encoding="utf-8")
    return ModelSpec(
        id=model_id,
        schema=str(schema.resolve()),
        title="Toy Clip (a test model)",
        generation_s={3: (20.0, 30.0), 6: (30.0, 45.0)},
        display=("style", "seconds"),
    )
