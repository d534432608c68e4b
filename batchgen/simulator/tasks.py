"""Task lifecycle, pure given a clock reading: no timers, so 100k tasks cost only memory.

A task's whole life is drawn when it is created, from a `random.Random` seeded with
`(seed, task_id)`: its state at any time is a function of `now - created`. Generation time
(createTime to completeTime, also `costTime`) follows the model's spec (Kling 2.1: 60-90 s
for a 5 s video, 90-120 s for a 10 s video); the first 2-10 s of it are `pending`, the rest
`processing`.
Failures end early: INVALID_IMAGE_URL 1-5 s after pending ends, CONTENT_VIOLATION part way
through processing. Every service second is multiplied by `time_scale`.

Prompt markers give tests exact control (they override the configured fractions):
  [sim:content_violation]  the task fails with CONTENT_VIOLATION
  [sim:invalid_image]      the task fails with INVALID_IMAGE_URL
  [sim:two_results]        a success carries two result URLs
  [sim:slow]               generation takes the top of the documented range (90 s or 120 s)
  [sim:transient]          the task fails with a transient code (PROCESSING_TIMEOUT,
                           MODEL_UNAVAILABLE or GENERATION_FAILED)
  [sim:transient:N]        the first N tasks with this prompt fail so, later ones do not
                           (counted per simulator, and again in the same order from a journal)
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from batchgen import models
from batchgen.models import DEFAULT_MODEL
from batchgen.simulator.config import SimConfig

GENERATION_RANGE_S = {5: (60.0, 90.0), 10: (90.0, 120.0)}
PENDING_RANGE_S = (2.0, 10.0)
FAIL_MESSAGES = {
    "CONTENT_VIOLATION": "Content does not meet safety guidelines",
    "INVALID_IMAGE_URL": "Image URL could not be fetched",
    "PROCESSING_TIMEOUT": "Task processing exceeded time limit",
    "MODEL_UNAVAILABLE": "Model temporarily unavailable",
    "GENERATION_FAILED": "Video generation failed, please retry",
    "TASKID_ERROR": "taskId is invalid, expired, not finished or not from the parent model",
}
TRANSIENT_CODES = ("PROCESSING_TIMEOUT", "MODEL_UNAVAILABLE", "GENERATION_FAILED")
_TRANSIENT_N = re.compile(r"\[sim:transient:(\d+)\]")
MARKERS = (
    "[sim:content_violation]",
    "[sim:invalid_image]",
    "[sim:two_results]",
    "[sim:slow]",
    "[sim:stuck]",  # processing for ever: a task the provider never finishes
    "[sim:transient]",
    "[sim:transient:N]",
)
STATES = ("pending", "processing", "success", "failed")


@dataclass(slots=True)
class Task:
    task_id: str
    created: float  # monotonic seconds (the simulator's clock)
    create_ms: int  # Unix ms
    pending_s: float  # real (scaled) seconds spent pending
    end_s: float  # real (scaled) seconds from creation to success/failure
    fail_code: str | None
    n_results: int
    token: str  # unguessable part of the result URLs
    expired_status: int
    callback_url: str | None = None
    versions: list[int] = field(default_factory=list)
    model: str = DEFAULT_MODEL  # its status is only at this model's endpoint
    owner: str = ""  # a fingerprint of the API key that made it (never the key); "": unknown

    @property
    def ends(self) -> float:
        return self.created + self.end_s

    @property
    def complete_ms(self) -> int:
        return self.create_ms + round(self.end_s * 1000)

    def state_at(self, now: float) -> str:
        # absolute comparisons, so that state_at(task.ends) is final despite float rounding
        if now < self.created + self.pending_s:
            return "pending"
        if now < self.ends:
            return "processing"
        return "failed" if self.fail_code else "success"

    def status_data(self, now: float, origin: str) -> dict[str, Any]:
        """The `data` object of the status envelope at `now`."""
        state = self.state_at(now)
        data: dict[str, Any] = {"taskId": self.task_id, "state": state}
        data["createTime"] = self.create_ms
        if state == "success":
            data["resultJson"] = _json({"resultUrls": self.result_urls(origin)})
        elif state == "failed":
            data["failCode"] = self.fail_code
            data["failMsg"] = FAIL_MESSAGES[self.fail_code or ""]
        if state in ("success", "failed"):
            data["completeTime"] = self.complete_ms
            data["costTime"] = self.complete_ms - self.create_ms
        return data

    def result_urls(self, origin: str) -> list[str]:
        return [f"{origin}/cdn/{self.token}/{i}.mp4" for i in range(self.n_results)]


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def task_id_for(seed: int, n: int) -> str:
    return "task_" + hashlib.sha256(f"batchgen-sim:{seed}:{n}".encode()).hexdigest()[:16]


def draw_task(
    config: SimConfig,
    task_id: str,
    body: dict[str, Any],
    now: float,
    now_ms: int,
    earlier: int = 0,
    model: str = DEFAULT_MODEL,
) -> Task:
    """Decide a new task's whole life. Pure: same config, id, body and `earlier` (tasks with
    the same prompt before this one) give the same task."""
    rng = random.Random(f"{config.seed}:{task_id}")
    inp = body.get("input") or {}
    prompt = str(inp.get("prompt", ""))
    spec = models.find(model)
    if spec is not None:
        lo, hi = spec.generation_for(inp)  # by duration, or resolution (wan, ltx), or one row
    else:
        lo, hi = GENERATION_RANGE_S.get(inp.get("duration"), GENERATION_RANGE_S[5])
    total = hi if "[sim:slow]" in prompt else rng.uniform(lo, hi)
    pending = rng.uniform(*PENDING_RANGE_S)
    u = rng.random()
    if "[sim:content_violation]" in prompt:
        fail: str | None = "CONTENT_VIOLATION"
    elif "[sim:invalid_image]" in prompt:
        fail = "INVALID_IMAGE_URL"
    elif u < config.p_content_violation:
        fail = "CONTENT_VIOLATION"
    elif u < config.p_content_violation + config.p_invalid_image:
        fail = "INVALID_IMAGE_URL"
    elif u < config.p_content_violation + config.p_invalid_image + config.p_transient:
        fail = rng.choice(TRANSIENT_CODES)
    else:
        fail = None
    forced = _TRANSIENT_N.search(prompt)
    if "[sim:transient]" in prompt or (forced and earlier < int(forced.group(1))):
        fail = TRANSIENT_CODES[earlier % len(TRANSIENT_CODES)]
    cut = rng.random()
    if "[sim:stuck]" in prompt:
        fail, total = None, math.inf
    elif fail == "INVALID_IMAGE_URL":
        total = pending + 1.0 + 4.0 * cut
    elif fail is not None:  # content, or transient: part way through processing
        total = pending + (total - pending) * (0.2 + 0.4 * cut)
    n_results = 2 if "[sim:two_results]" in prompt else config.results_per_task
    expired = config.expired_status or rng.choice((403, 404))
    token = hashlib.sha256(f"cdn:{config.seed}:{task_id}".encode()).hexdigest()[:32]
    callback = body.get("callback_url") if body.get("request_type") == "callback" else None
    return Task(
        task_id=task_id,
        created=now,
        create_ms=now_ms,
        pending_s=config.scaled(pending),
        end_s=config.scaled(total),
        fail_code=fail,
        n_results=n_results,
        token=token,
        expired_status=expired,
        callback_url=callback,
        versions=[0] * n_results,
        model=model,
    )


class TaskStore:
    """All tasks, with an O(log n) count of those still pending or processing."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.tasks: dict[str, Task] = {}
        self.by_token: dict[str, Task] = {}
        self._live: list[float] = []  # heap of end times of tasks that may still be in flight
        self.max_in_flight_seen = 0
        self.on_create: Callable[[Task, dict[str, Any]], None] | None = None
        self._prompts: Counter[str] = Counter()  # tasks per prompt, for [sim:transient:N]

    def create(
        self,
        body: dict[str, Any],
        now: float,
        now_ms: int,
        model: str = DEFAULT_MODEL,
        owner: str = "",
    ) -> Task:
        task_id = task_id_for(self.config.seed, len(self.tasks))
        task = self.restore(task_id, body, now, now_ms, model, owner)
        if self.on_create is not None:
            self.on_create(task, body)
        return task

    def restore(
        self,
        task_id: str,
        body: dict[str, Any],
        created: float,
        create_ms: int,
        model: str = DEFAULT_MODEL,
        owner: str = "",
    ) -> Task:
        """Add a task with a known id and creation time: a new one, or one remembered from an
        earlier simulator with the same seed (the sandbox's journal). Its life is redrawn
        identically, since draw_task is pure."""
        inp = body.get("input") if isinstance(body.get("input"), dict) else {}
        prompt = str(inp.get("prompt", ""))
        earlier = self._prompts[prompt]
        self._prompts[prompt] += 1
        task = draw_task(self.config, task_id, body, created, create_ms, earlier, model)
        task.owner = owner
        self._check_parent(task, inp, created)
        self.tasks[task.task_id] = task
        self.by_token[task.token] = task
        heapq.heappush(self._live, task.ends)
        self.max_in_flight_seen = max(self.max_in_flight_seen, self.in_flight(created))
        return task

    def _check_parent(self, task: Task, inp: dict[str, Any], now: float) -> None:
        """A task that builds on another (veo-3-1-extend's taskId; grok-video's task_id when
        given) fails soon with TASKID_ERROR unless its parent is a task of the parent model,
        made with the same API key, that had succeeded when it was made
        (apixo-video-models.md: "the source task must be completed"; another account's id
        is as good as an invalid one)."""
        spec = models.find(task.model)
        if spec is None or not spec.parent_field or inp.get(spec.parent_field) is None:
            return
        parent = self.tasks.get(str(inp.get(spec.parent_field)))
        if (
            parent is None
            or parent.model != spec.parent_model
            or parent.state_at(now) != "success"
            or (parent.owner and task.owner and parent.owner != task.owner)
        ):
            task.fail_code, task.n_results = "TASKID_ERROR", 0
            task.end_s = min(task.end_s, task.pending_s + self.config.scaled(1.0))

    def in_flight(self, now: float) -> int:
        live = self._live
        while live and live[0] <= now:
            heapq.heappop(live)
        return len(live)

    def next_free(self, now: float) -> float:
        """Seconds until the next in-flight task ends (0.0 if none is in flight; a minute, scaled,
        if only stuck tasks are, which never end)."""
        if not self.in_flight(now):
            return 0.0
        soonest = self._live[0]
        return self.config.scaled(60.0) if math.isinf(soonest) else max(0.0, soonest - now)

    def get(self, task_id: str) -> Task | None:
        return self.tasks.get(task_id)

    def counts(self, now: float) -> dict[str, int]:
        c = Counter(t.state_at(now) for t in self.tasks.values())
        return {s: c.get(s, 0) for s in STATES}

    def by_model(self) -> dict[str, int]:
        """Tasks created per model (each at its own model's endpoint)."""
        return dict(Counter(t.model for t in self.tasks.values()))

    def __len__(self) -> int:
        return len(self.tasks)

    def __repr__(self) -> str:
        return f"<TaskStore {len(self.tasks)} tasks, {len(self._live)} maybe in flight>"
