"""Shared pieces of the benchmarks: the simulator in its own process, state files, a sampler
that records the engine's in-flight count and request count every 100 ms, the bounds.

The engine always runs in the benchmark's process (in-process `execute()`), the simulator in a
separate process (`python -m batchgen simulate`), both on loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from batchgen import store as st  # noqa: E402
from batchgen.core.schedule import PollSchedule, first_poll_delay, next_poll_delay  # noqa: E402
from batchgen.engine import Engine, RunOutcome  # noqa: E402
from batchgen.hooks import RunHooks  # noqa: E402
from batchgen.runner import execute  # noqa: E402
from batchgen.settings import RunOptions  # noqa: E402
from batchgen.simulator.samples import MODES, sample_body  # noqa: E402
from batchgen.simulator.tasks import GENERATION_RANGE_S  # noqa: E402

KEY = "sk-bench-0123456789"

# A benchmark's runs (and the simulators and CLIs it starts, which inherit the environment)
# keep the account database on, as a user's runs do, but in a folder of their own: runs on
# random loopback ports must not leave accounts in the user's ~/.local/state/batchgen.
if not os.environ.get("BATCHGEN_ACCOUNT_DB"):
    import tempfile

    os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="batchgen-bench-state-")
# -- jobs and state files ---------------------------------------------------------------------


def duration_of(i: int) -> int:
    """Two 5 s videos for every 10 s one (job i is 10 s when i % 3 == 0)."""
    return 10 if i % 3 == 0 else 5


def job_body(i: int, tag: str = "") -> dict[str, Any]:
    prompt = f"{tag}bench job {i}: waves rolling onto dark rocks at dusk"
    return sample_body(i, MODES[i % 4], prompt, duration_of(i))


def make_state(folder: Path, n: int, tag: str = "") -> Path:
    out = folder / "out"
    out.mkdir(parents=True, exist_ok=True)
    state = out / "batchgen.db"
    store = st.Store(state)
    try:
        store.jobs.sync((f"job-{i:06d}", "kling-2-1", job_body(i, tag)) for i in range(n))
        store.set_meta_many(
            {"output_dir": str(out), "filename_template": "{id}.mp4", "model": "kling-2-1"}
        )
    finally:
        store.close()
    return state


def options(folder: Path, base_url: str, scale: float, **overrides: Any) -> RunOptions:
    """Run options with every service time scaled like the simulator's."""
    out = folder / "out"
    opts = RunOptions.from_flat(
        state_path=out / "batchgen.db",
        output_dir=out,
        base_url=base_url,
        api_key=KEY,
        drain_s=2.0,
        seed=7,
        write_results=False,
    ).scaled(scale)
    quick = {"backoff_base_s": max(0.01, scale), "backoff_cap_s": max(0.5, 60 * scale)}
    return opts.replace(**{**quick, **overrides})  # TypeError on an unknown field


# -- the simulator in its own process ---------------------------------------------------------


class SimProcess:
    """`python -m batchgen simulate` in a child process; `stats()` reads /_sim/stats."""

    def __init__(self, scale: float, *, seed: int = 11, **knobs: Any) -> None:
        self.scale = scale
        self.args = [
            sys.executable,
            "-m",
            "batchgen",
            "simulate",
            "--port",
            "0",
            "--time-scale",
            repr(scale),
            "--seed",
            str(seed),
            "--api-key",
            KEY,
            "--quiet",
        ]
        for name, value in knobs.items():
            if value is None:
                continue
            flag = "--" + name.replace("_", "-")
            if value is True:
                self.args.append(flag)
            else:
                self.args += [flag, str(value)]
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.origin = ""
        self._cpu0: tuple[float, float] | None = None

    def __enter__(self) -> SimProcess:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http"):
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.proc.kill()
            raise RuntimeError(f"the simulator did not start: {line!r} {err[-2000:]}")
        self.base_url = line
        self.origin = line.removesuffix("/api/v1")
        return self

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.origin}/_sim/stats", timeout=30) as resp:
            return json.loads(resp.read())

    def cpu_seconds(self) -> float | None:
        """User + system CPU of the simulator process so far (Linux /proc), for context."""
        if self.proc is None:
            return None
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


# -- running the engine with a sampler beside it ----------------------------------------------


@dataclass
class Sample:
    t: float  # seconds since the run started
    in_flight: int
    requests: int  # API requests the client has sent so far
    finished: int  # jobs that reached done/failed/ambiguous/expired in this run


@dataclass
class EngineRun:
    outcome: RunOutcome
    elapsed: float
    cpu_s: float
    samples: list[Sample] = field(default_factory=list)
    requests_sent: int = 0
    max_in_flight: int = 0
    rate_limited: int = 0
    first_request_s: float | None = None


def _finished(engine: Engine) -> int:
    s = engine.stats
    return s.done + s.failed + s.ambiguous + s.expired


async def run_engine(
    opts: RunOptions, *, every: float = 0.1, hooks: RunHooks | None = None
) -> EngineRun:
    """`execute(opts)` in this process, with a task sampling the engine every `every` s."""
    holder: dict[str, Engine] = {}

    def grab(engine: Engine) -> None:
        holder["engine"] = engine

    hooks = (hooks or RunHooks()).with_engine(grab)
    samples: list[Sample] = []
    t0 = time.perf_counter()

    async def sampler() -> None:
        while True:
            engine = holder.get("engine")
            if engine is not None:
                samples.append(
                    Sample(
                        round(time.perf_counter() - t0, 4),
                        engine.cap.in_flight,
                        engine.client.requests_sent,
                        _finished(engine),
                    )
                )
            await asyncio.sleep(every)

    cpu0 = time.process_time()
    task = asyncio.create_task(sampler())
    try:
        outcome = await execute(opts, hooks)
    finally:
        task.cancel()
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    engine = holder["engine"]
    last = Sample(
        round(elapsed, 4), engine.cap.in_flight, engine.client.requests_sent, _finished(engine)
    )
    samples.append(last)
    return EngineRun(
        outcome=outcome,
        elapsed=elapsed,
        cpu_s=cpu,
        samples=samples,
        requests_sent=engine.client.requests_sent,
        max_in_flight=engine.cap.max_seen,
        rate_limited=engine.stats.rate_limited,
    )


def time_at(samples: list[Sample], finished: float) -> float:
    """When the finished count first reached `finished` (linear between samples)."""
    prev = samples[0]
    for s in samples:
        if s.finished >= finished:
            if s.finished == prev.finished:
                return s.t
            frac = (finished - prev.finished) / (s.finished - prev.finished)
            return prev.t + frac * (s.t - prev.t)
        prev = s
    return samples[-1].t


def steady_rate(samples: list[Sample], n: int, lo: float = 0.1, hi: float = 0.9) -> float:
    """Jobs per second while the middle (hi - lo) of the jobs finished: the ramp-up (nothing
    can finish in the first generation time) and the drain (the cap empties) left out."""
    a, b = time_at(samples, lo * n), time_at(samples, hi * n)
    return (hi - lo) * n / (b - a) if b > a else 0.0


def steady_requests_rate(samples: list[Sample], n: int, lo: float = 0.1, hi: float = 0.9) -> float:
    """API requests per second over the same window as `steady_rate`."""
    a, b = time_at(samples, lo * n), time_at(samples, hi * n)
    if b <= a:
        return 0.0

    def requests_at(t: float) -> float:
        prev = samples[0]
        for s in samples:
            if s.t >= t:
                if s.t == prev.t:
                    return float(s.requests)
                return prev.requests + (t - prev.t) / (s.t - prev.t) * (s.requests - prev.requests)
            prev = s
        return float(samples[-1].requests)

    return (requests_at(b) - requests_at(a)) / (b - a)


# -- bounds -------------------------------------------------------------------------------------


def mean_generation_s(durations: list[int]) -> float:
    """The simulator's mean generation time (createTime -> completeTime): uniform over the
    documented range, whose first 2-10 s are the pending phase (inside the range, not added)."""
    means = [sum(GENERATION_RANGE_S[d]) / 2 for d in durations]
    return sum(means) / len(means)


def poll_economy(
    durations: list[int], sched: PollSchedule | None = None, draws: int = 200_000, seed: int = 1
) -> dict[str, float]:
    """Requests per job (1 submit + polls) and the mean lag between a task's end and the poll
    that sees it, when every poll goes out exactly on the engine's schedule (first poll after
    `poll_after` (x1.5 for 10 s videos) + 0-20%, then every `poll_every` +-20%) and generation
    time is uniform over the documented range. Monte Carlo over the same policy functions the
    engine calls, with the job mix's share of 5 s and 10 s videos."""
    sched = sched or PollSchedule()
    rng = random.Random(seed)
    share = {d: durations.count(d) / len(durations) for d in set(durations)}
    q = lag = 0.0
    for d, w in share.items():
        lo, hi = GENERATION_RANGE_S[d]
        n = max(1, int(draws * w))
        total_req = total_lag = 0.0
        for _ in range(n):
            gen = rng.uniform(lo, hi)
            t = first_poll_delay(d, sched, rng)
            polls = 1
            while t < gen:
                t += next_poll_delay(sched, rng)
                polls += 1
            total_req += 1 + polls
            total_lag += t - gen
        q += w * total_req / n
        lag += w * total_lag / n
    return {"requests_per_job": q, "detect_lag_s": lag}


# -- the machine ---------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model or platform.processor(),
        "ram_gb": ram_gb,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def peak_rss_mb() -> float:
    """This process's peak resident set (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
