"""`Simulator`: the fake APIXO service as an async context manager that yields itself.

async with Simulator(time_scale=0.01, seed=1) as sim:
    client = Client(sim.base_url, api_key="sk-sim-demo")   # http://127.0.0.1:PORT/api/v1
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from batchgen.models import DEFAULT_MODEL
from batchgen.simulator.app import build_app, envelope
from batchgen.simulator.billing import Billing
from batchgen.simulator.callbacks import CallbackDispatcher
from batchgen.simulator.config import SimConfig
from batchgen.simulator.faults import FaultDice
from batchgen.simulator.files import result_file
from batchgen.simulator.imagefetch import ImageFetcher
from batchgen.simulator.keys import Keys
from batchgen.simulator.ratelimit import SlidingWindow
from batchgen.simulator.stats import Observer
from batchgen.simulator.tasks import Task, TaskStore


class Simulator:
    def __init__(self, config: SimConfig | None = None, **overrides: Any) -> None:
        config = config or SimConfig()
        self.config = config.replace(**overrides) if overrides else config.replace()
        c = self.config
        self.store = TaskStore(c)
        self.window = SlidingWindow(c.rate_limit, c.scaled(c.rate_period_s))
        self.dice = FaultDice(c)
        self.credits_left: int | None = c.credits
        self.billing = Billing(c.balance, c.prices, c.refund_failed)
        self.keys = Keys(self.window.period, c.prices, c.refund_failed)  # accounts of their own
        self.observer = Observer(self.window.period)
        self.callbacks = CallbackDispatcher(c, self.dice, self._final_envelope, self.now)
        self.images = ImageFetcher(c.fetch_images)
        self.base_url = ""
        self.origin = ""
        self._runner: web.AppRunner | None = None
        self._mono0 = time.monotonic()
        self._wall0_ms = time.time() * 1000

    # clock ---------------------------------------------------------------------------------
    def now(self) -> float:
        """Monotonic seconds (the same clock as the default event loop's `loop.time()`)."""
        return time.monotonic()

    def wall_ms(self, now: float) -> int:
        return round(self._wall0_ms + (now - self._mono0) * 1000)

    # lifecycle -----------------------------------------------------------------------------
    async def start(self) -> Simulator:
        c = self.config
        self.observer = Observer(self.window.period, c.log_path)
        runner = web.AppRunner(
            build_app(self),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=0.5,
            keepalive_timeout=c.keepalive_s,
        )
        await runner.setup()
        site = web.TCPSite(runner, c.host, c.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        port = runner.addresses[0][1]
        host = c.host if c.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        self.origin = f"http://{host}:{port}"
        self.base_url = f"{self.origin}/api/v1"
        await self.callbacks.start()
        return self

    async def close(self) -> None:
        await self.images.close()
        await self.callbacks.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.observer.close()

    async def __aenter__(self) -> Simulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # used by the routes ----------------------------------------------------------------------
    def create_task(
        self,
        body: dict[str, Any],
        now: float,
        model: str = DEFAULT_MODEL,
        billing: Billing | None = None,
        owner: str = "",
    ) -> Task:
        task = self.store.create(body, now, self.wall_ms(now), model, owner)
        self.charge(task, body, billing)
        if self.credits_left is not None:
            self.credits_left -= 1
        self.observer.submitted(body)
        inp = body.get("input") if isinstance(body.get("input"), dict) else {}
        for name in ("image_urls", "video_urls"):
            urls = inp.get(name)
            if isinstance(urls, list):
                video = name == "video_urls"
                self.images.check_later(urls, lambda: self._image_failed(task), video=video)
        if task.callback_url:
            self.callbacks.schedule(task)
        return task

    def _image_failed(self, task: Task) -> None:
        """An image the provider could not use: the task fails soon, INVALID_IMAGE_URL."""
        if task.fail_code is None and task.state_at(self.now()) in ("pending", "processing"):
            task.fail_code = "INVALID_IMAGE_URL"
            task.n_results = 0
            task.end_s = min(task.end_s, max(self.now() - task.created, task.pending_s))

    def charge(self, task: Task, body: dict[str, Any], billing: Billing | None = None) -> None:
        """Bill a task (a new one, or one restored from the sandbox's journal), to its key's
        own balance if it has one (simulator/keys.py)."""
        fails_at = task.ends if task.fail_code else None
        (billing or self.billing).charge(
            task.task_id, body, fails_at, task.model
        )  # at its model's price

    def _final_envelope(self, task: Task) -> dict[str, Any]:
        return envelope(200, "success", task.status_data(max(self.now(), task.ends), self.origin))

    # for tests and benchmarks ----------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        now = self.now()
        out = self.observer.summary()
        out["max_in_flight"] = self.store.max_in_flight_seen
        out["in_flight"] = self.store.in_flight(now)
        out["tasks"] = {"total": len(self.store), **self.store.counts(now)}
        out["tasks_by_model"] = self.store.by_model()
        out["callbacks"] = self.callbacks.summary()
        out["credits_left"] = self.credits_left
        out["billing"] = self.billing.summary(now)
        out["keys"] = self.keys.summary(now)  # keys with accounts of their own, by label
        out["faults_fired"] = {k: v for k, v in self.dice.fired.items() if v}
        out["rate_window"] = {"limit": self.window.limit, "period_s": self.window.period}
        return out

    def task_ids(self) -> list[str]:
        return list(self.store.tasks)

    def task(self, task_id: str) -> Task:
        return self.store.tasks[task_id]

    def _file(self, task_id: str, index: int):
        task = self.store.tasks.get(task_id)
        version = task.versions[index] if task is not None and index < len(task.versions) else 0
        return result_file(task_id, index, version, self.config.result_size)

    def expected_sha256(self, task_id: str, index: int = 0) -> str:
        return self._file(task_id, index).sha256

    def expected_bytes(self, task_id: str, index: int = 0) -> bytes:
        f = self._file(task_id, index)
        return f.read(0, f.size)

    def bump_file_version(self, task_id: str) -> None:
        """Change the bytes (and ETag) of the task's result files, as if regenerated."""
        task = self.store.tasks[task_id]
        task.versions = [v + 1 for v in task.versions]

    def set_faults(self, **probabilities: float) -> None:
        """Change fault probabilities (and outcome fractions) while the server runs."""
        self.dice.set(**probabilities)
        for name in ("p_content_violation", "p_invalid_image", "p_transient"):
            if name in probabilities:
                setattr(self.config, name, probabilities[name])

    def __repr__(self) -> str:
        return (
            f"<Simulator {self.base_url or 'not started'} tasks={len(self.store)} "
            f"in_flight={self.store.in_flight(self.now())} {self.window!r} {self.dice!r}>"
        )
