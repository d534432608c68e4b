"""The six benchmark scenarios of issue 8. Each returns a dict of figures.

    .venv/bin/python bench/scenarios.py NAME [--size full|quick|smoke] [--json OUT]

`bench/run_all.py` runs each scenario in a fresh process like this, so its CPU time and peak
memory (ru_maxrss) belong to that scenario alone. Tests call `run(name, "smoke", folder)`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from batchgen import store as st  # noqa: E402
from bench import floor, kit  # noqa: E402

SIZES: dict[str, dict[str, dict[str, Any]]] = {
    # jobs, cap, time scale; rate: requests per 60 service seconds (both sides) when it binds
    "full": {
        "cap_bound": {"jobs": 20_000, "cap": 1000, "scale": 0.1},
        "rate_bound": {"jobs": 20_000, "cap": 1000, "scale": 0.05, "rate": 1800},
        "cap_bound_callbacks": {"jobs": 5000, "cap": 1000, "scale": 0.1},
        "economy": {"jobs": 2000, "cap": 1000, "scale": 0.05},
        "limits": {"jobs": 1500, "cap": 1000, "scale": 0.05, "rate": 600},
        "overhead": {"jobs": 100_000, "cap": 1000, "scale": 0.02, "callback_jobs": 20_000},
        "resume": {"jobs": 100_000},
        "downloads": {"args": ["--files", "8", "--size-mb", "64", "--runs", "3"]},
    },
    "quick": {
        "cap_bound": {"jobs": 2000, "cap": 200, "scale": 0.05},
        "rate_bound": {"jobs": 2000, "cap": 200, "scale": 0.05, "rate": 400},
        "cap_bound_callbacks": {"jobs": 1000, "cap": 200, "scale": 0.05},
        "economy": {"jobs": 400, "cap": 200, "scale": 0.02},
        "limits": {"jobs": 400, "cap": 200, "scale": 0.02, "rate": 300},
        "overhead": {"jobs": 5000, "cap": 500, "scale": 0.02, "callback_jobs": 5000},
        "resume": {"jobs": 10_000},
        "downloads": {"args": ["--files", "4", "--size-mb", "16", "--runs", "1"]},
    },
    "smoke": {
        "cap_bound": {"jobs": 60, "cap": 20, "scale": 0.01},
        "rate_bound": {"jobs": 60, "cap": 20, "scale": 0.01, "rate": 150},
        "cap_bound_callbacks": {"jobs": 60, "cap": 20, "scale": 0.01},
        "economy": {"jobs": 40, "cap": 20, "scale": 0.01},
        "limits": {"jobs": 40, "cap": 20, "scale": 0.01, "rate": 100},
        "overhead": {"jobs": 60, "cap": 20, "scale": 0.01, "callback_jobs": 40},
        "resume": {"jobs": 400},
        "downloads": {"args": ["--files", "2", "--size-mb", "1", "--runs", "1"]},
    },
}

NAMES = ("throughput", "economy", "limits", "overhead", "resume", "downloads")


# -- 1. throughput ----------------------------------------------------------------------------


async def _batch(
    folder: Path,
    n: int,
    cap: int,
    scale: float,
    *,
    rate: int | None = None,
    callbacks: bool = False,
    tag: str = "",
    faults: dict[str, float] | None = None,
    account_db: str | None = None,
) -> dict[str, Any]:
    """One batch of n mixed jobs through the real engine against a simulator process whose cap
    (and rate, when given) equal the client's, with the simulator's `faults`. `account_db`
    as `--account-db` (None: a fresh SQLite file in `folder`, so the default admission is
    measured without touching the real home). Returns figures and the 100 ms timeline."""
    kit.make_state(folder, n, tag)
    sim_knobs: dict[str, Any] = {"max_in_flight": cap, **(faults or {})}
    opt_knobs: dict[str, Any] = {
        "max_in_flight": cap,
        "account_db": account_db or str(folder / "accounts.db"),
    }
    if rate is not None:
        sim_knobs.update(rate_limit=rate, rate_period_s=60.0)  # the simulator scales its period
        opt_knobs.update(rate_limit=rate, rate_period_s=60.0 * scale)
    if callbacks:
        opt_knobs["callback_listen"] = ("127.0.0.1", 0)
    with kit.SimProcess(scale, **sim_knobs) as sim:
        opts = kit.options(folder, sim.base_url, scale, **opt_knobs)
        run = await kit.run_engine(opts)
        stats = sim.stats()
        sim_cpu = sim.cpu_seconds()
    durations = [kit.duration_of(i) for i in range(n)]
    gen_s = kit.mean_generation_s(durations)
    econ = kit.poll_economy(durations)
    q = econ["requests_per_job"]
    cap_bound = cap / (gen_s * scale)
    period = 60.0 * scale
    rate_bound = (rate / period) / q if rate is not None else (10_000 / period) / q
    bound = min(cap_bound, rate_bound)
    req = stats["requests"]
    api_requests = sum(req.get("submit", {}).values()) + sum(req.get("status", {}).values())
    finished = run.samples[-1].finished
    steady = kit.steady_rate(run.samples, n)
    steady_req = kit.steady_requests_rate(run.samples, n)
    limit = rate if rate is not None else 10_000
    return {
        "jobs": n,
        "cap": cap,
        "time_scale": scale,
        "rate_limit": f"{limit}/{period:g}s",
        "exit_code": run.outcome.exit_code,
        "done": run.outcome.counts.get(st.DONE, 0),
        "finished": finished,
        "mean_generation_s": gen_s,
        "ideal_requests_per_job": q,
        "detect_lag_s": econ["detect_lag_s"],
        "cap_bound_jobs_s": cap_bound,
        "rate_bound_jobs_s": rate_bound,
        "bound_jobs_s": bound,
        "binds": "cap" if cap_bound <= rate_bound else "rate",
        "elapsed_s": run.elapsed,
        "end_to_end_jobs_s": n / run.elapsed,
        "steady_jobs_s": steady,
        "ratio_steady": steady / bound,
        "ratio_end_to_end": n / run.elapsed / bound,
        "steady_requests_s": steady_req,
        "rate_used": steady_req / (limit / period),
        "steady_requests_per_job": steady_req / steady if steady else None,
        "api_requests": api_requests,
        "client_requests": run.requests_sent,
        "requests_per_job": api_requests / n,
        "requests_by_endpoint": req,
        "client_cpu_s": run.cpu_s,
        "cpu_s_per_1000_jobs": run.cpu_s / n * 1000,
        "sim_cpu_s": sim_cpu,
        "peak_rss_mb": kit.peak_rss_mb(),
        "client_max_in_flight": run.max_in_flight,
        "server_max_in_flight": stats["max_in_flight"],
        "server_max_in_window": stats["max_requests_in_window"],
        "server_window": stats["rate_window"],
        "window_ratio": stats["max_requests_in_window"] / limit,
        "server_429s": stats["rate_limited"],
        "callbacks": stats.get("callbacks"),
        "timeline": [[s.t, s.in_flight, s.requests, s.finished] for s in run.samples],
    }


CALLBACK_HAZARDS = {
    # Issue 25: a `processing` notice early in each task's generation and every final word
    # delivered twice; then one forged `success` mid-generation per task on top.
    "notice_duplicate": {"p_callback_notice": 1.0, "p_callback_duplicate": 1.0},
    "notice_duplicate_forged": {
        "p_callback_notice": 1.0,
        "p_callback_duplicate": 1.0,
        "p_callback_forged": 1.0,
    },
}


def throughput(size: str, folder: Path) -> dict[str, Any]:
    cfg = SIZES[size]
    out: dict[str, Any] = {}
    for name in ("cap_bound", "rate_bound"):
        c = cfg[name]
        sub = folder / name
        out[name] = asyncio.run(
            _batch(sub, c["jobs"], c["cap"], c["scale"], rate=c.get("rate"), tag=name)
        )
    c = cfg["cap_bound_callbacks"]
    for name, faults in CALLBACK_HAZARDS.items():
        r = asyncio.run(
            _batch(
                folder / name,
                c["jobs"],
                c["cap"],
                c["scale"],
                callbacks=True,
                tag=name,
                faults=faults,
            )
        )
        r.pop("timeline")
        out[f"callbacks_{name}"] = r
    return out


# -- 2. request economy -----------------------------------------------------------------------


def economy(size: str, folder: Path) -> dict[str, Any]:
    c = SIZES[size]["economy"]
    polling = asyncio.run(_batch(folder / "poll", c["jobs"], c["cap"], c["scale"], tag="p"))
    cb = asyncio.run(
        _batch(folder / "cb", c["jobs"], c["cap"], c["scale"], callbacks=True, tag="c")
    )
    for r in (polling, cb):
        r.pop("timeline")
    ideal = polling["ideal_requests_per_job"]
    return {
        "jobs": c["jobs"],
        "polling_requests_per_job": polling["requests_per_job"],
        "ideal_requests_per_job": ideal,
        "polling_over_ideal": polling["requests_per_job"] / ideal,
        "callback_requests_per_job": cb["requests_per_job"],
        "polling": polling,
        "callback": cb,
    }


# -- 3. limits kept ---------------------------------------------------------------------------


def limits(size: str, folder: Path) -> dict[str, Any]:
    c = SIZES[size]["limits"]
    r = asyncio.run(_batch(folder, c["jobs"], c["cap"], c["scale"], rate=c["rate"], tag="l"))
    r.pop("timeline")
    return {
        "jobs": c["jobs"],
        "rate_limit": r["rate_limit"],
        "server_max_in_window": r["server_max_in_window"],
        "window_ratio": r["window_ratio"],
        "server_429s": r["server_429s"],
        "cap": c["cap"],
        "server_max_in_flight": r["server_max_in_flight"],
        "in_flight_ratio": r["server_max_in_flight"] / c["cap"],
        "done": r["done"],
        "run": r,
    }


# -- 4. overhead ------------------------------------------------------------------------------


def overhead(size: str, folder: Path) -> dict[str, Any]:
    """CPU and memory of the engine when polling (the big batch; its peak RSS is the memory
    figure), then CPU again in callback mode (2 API requests per job instead of ~4.2, plus one
    callback received), so the CPU figure is known for both ways of running."""
    c = SIZES[size]["overhead"]
    r = asyncio.run(_batch(folder / "poll", c["jobs"], c["cap"], c["scale"], tag="o"))
    r.pop("timeline")
    peak_rss = kit.peak_rss_mb()
    cb = asyncio.run(
        _batch(folder / "cb", c["callback_jobs"], c["cap"], c["scale"], callbacks=True, tag="k")
    )
    cb.pop("timeline")
    # The same request pattern from a bare aiohttp client (bench/floor.py): what any engine
    # built on aiohttp pays here before doing anything of its own.
    n_floor = min(c["jobs"], 5000)
    bare = floor.measure("spread", n_floor, c["cap"], c["scale"])
    bare_write = floor.measure("spread+write", n_floor, c["cap"], c["scale"])
    return {
        "jobs": c["jobs"],
        "cap": c["cap"],
        "client_cpu_s": r["client_cpu_s"],
        "cpu_s_per_1000_jobs": r["cpu_s_per_1000_jobs"],
        "requests_per_job": r["requests_per_job"],
        "peak_rss_mb": peak_rss,
        "elapsed_s": r["elapsed_s"],
        "done": r["done"],
        "sim_cpu_s": r["sim_cpu_s"],
        "callback_jobs": c["callback_jobs"],
        "callback_cpu_s_per_1000_jobs": cb["cpu_s_per_1000_jobs"],
        "callback_requests_per_job": cb["requests_per_job"],
        "callback_done": cb["done"],
        "floor_jobs": n_floor,
        "floor_cpu_s_per_1000_jobs": bare["cpu_s_per_1000_jobs"],
        "floor_write_cpu_s_per_1000_jobs": bare_write["cpu_s_per_1000_jobs"],
        "floor_requests_per_job": bare["requests_per_job"],
    }


# -- 5. resume --------------------------------------------------------------------------------


def build_half_done(folder: Path, n: int) -> Path:
    """A state file of n jobs, the first half done (their files on disk, recorded with size and
    mtime so the start-up audit finds them intact), the rest pending."""
    state = kit.make_state(folder, n, "r")
    out = state.parent
    half = n // 2
    body = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100
    now = time.time()
    rows = []
    for seq in range(1, half + 1):
        name = f"job-{seq - 1:06d}.mp4"
        path = out / name
        path.write_bytes(body)
        rows.append((seq, name, path.stat().st_mtime_ns))
    db = sqlite3.connect(state)
    with db:
        db.execute(
            "UPDATE jobs SET state=?, task_id='task_'||printf('%016x', seq), submitted_at=?,"
            " completed_at=?, expires_at=?, submit_attempts=1 WHERE seq<=?",
            (st.DONE, now - 3600, now - 3000, now + 14 * 86400, half),
        )
        db.executemany(
            "INSERT INTO files (job_seq, idx, url, path, bytes, sha256, mtime_ns, done_at)"
            " VALUES (?, 0, 'http://127.0.0.1:9/cdn/x/0.mp4', ?, ?, ?, ?, ?)",
            [(seq, name, len(body), "0" * 64, mt, now) for seq, name, mt in rows],
        )
    db.close()
    return state


def resume(size: str, folder: Path) -> dict[str, Any]:
    """`batchgen resume STATE` as a subprocess; the time from its start to the first request
    the simulator logs (the simulator writes one JSONL line with the wall time per request)."""
    n = SIZES[size]["resume"]["jobs"]
    t_build = time.perf_counter()
    state = build_half_done(folder, n)
    build_s = time.perf_counter() - t_build
    log = folder / "sim-requests.jsonl"
    env = dict(os.environ, APIXO_API_KEY=kit.KEY, PYTHONPATH=str(ROOT))
    first: float | None = None
    with kit.SimProcess(0.1, log=log) as sim:
        cmd = [sys.executable, "-m", "batchgen", "resume", str(state), "--base-url", sim.base_url]
        cmd += ["--seed", "1", "-q"]
        start = time.time()
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                if log.exists() and log.stat().st_size:
                    line = log.read_text().splitlines()[0]
                    first = json.loads(line)["time"]
                    break
                time.sleep(0.005)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            err = proc.stderr.read() if proc.stderr else ""
            if proc.stderr:
                proc.stderr.close()
    if first is None:
        raise RuntimeError(f"resume sent no request within 60 s: {err[-2000:]}")
    return {
        "jobs": n,
        "done_at_start": n // 2,
        "state_file_mb": state.stat().st_size / 1e6,
        "build_s": build_s,
        "first_request_s": first - start,
    }


# -- 6. downloads -----------------------------------------------------------------------------

_ROW = re.compile(
    r"^(parallel|one at a time|runner default) \(concurrency (\d+)\)"
    r"\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)"
)
_PART = re.compile(
    r"^(receive\+write|receive\+sha256|receive\+both)\s+([\d.]+) MB/s\s+([\d.]+) x curl"
)
UNTARGETED = frozenset({"runner default"})  # shown for information (bench/downloads.py)


def downloads(size: str, folder: Path) -> dict[str, Any]:
    """bench/downloads.py (issue 5's benchmark: batchgen's Downloader beside curl)."""
    args = SIZES[size]["downloads"]["args"]
    cmd = [sys.executable, str(ROOT / "bench" / "downloads.py"), *args, "--dir", str(folder)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    rows = {}
    for line in proc.stdout.splitlines():
        m = _ROW.match(line.strip())
        if m:
            rows[m.group(1)] = {
                "concurrency": int(m.group(2)),
                "batchgen_mb_s": float(m.group(3)),
                "curl_mb_s": float(m.group(4)),
                "ratio": float(m.group(5)),
            }
    if not rows:
        return {"error": f"exit {proc.returncode}: {(proc.stdout + proc.stderr)[-1500:]}"}
    counted = [r["ratio"] for mode, r in rows.items() if mode not in UNTARGETED]
    # The ceiling one file at a time: a bare aiohttp client doing part of the work per byte.
    cmd = [sys.executable, str(ROOT / "bench" / "download_parts.py"), *args]
    parts_proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    parts = {
        m.group(1): {"mb_s": float(m.group(2)), "ratio": float(m.group(3))}
        for line in parts_proc.stdout.splitlines()
        if (m := _PART.match(line.strip()))
    }
    return {"args": args, "modes": rows, "min_ratio": min(counted), "one_at_a_time_parts": parts}


SCENARIOS = {
    "throughput": throughput,
    "economy": economy,
    "limits": limits,
    "overhead": overhead,
    "resume": resume,
    "downloads": downloads,
}


def run(name: str, size: str, folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = SCENARIOS[name](size, folder)
    result["wall_s"] = time.perf_counter() - t0
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", choices=NAMES)
    p.add_argument("--size", choices=tuple(SIZES), default="full")
    p.add_argument("--json", type=Path, help="write the result here (default: stdout)")
    p.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix=f"bench-{args.name}-", dir=args.dir) as tmp:
        result = run(args.name, args.size, Path(tmp))
    text = json.dumps(result)
    if args.json:
        args.json.write_text(text, encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
