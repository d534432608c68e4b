"""Run every benchmark of issue 8 and write bench/results/latest.json, latest.md, throughput.png.

    .venv/bin/python bench/run_all.py [--quick] [--only NAME[,NAME]] [--out DIR]

Each scenario runs in a fresh process (bench/scenarios.py) with the engine in that process and
the simulator in another one, on loopback, time scaled; so each scenario's CPU time and peak
memory are its own. Scenarios: throughput, economy, limits, overhead, resume, downloads; then
bench/callbacks.py (issue 6's callback benchmark) is run as is and its output kept.
Exit status 0 when every target is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import kit, report  # noqa: E402
from bench.scenarios import NAMES  # noqa: E402

CALLBACK_ARGS = {
    "full": ["--jobs", "200", "--scale", "0.01", "--posts", "1000", "--rounds", "3"],
    "quick": ["--jobs", "60", "--scale", "0.01", "--posts", "200", "--rounds", "1"],
}


def run_scenario(name: str, size: str, work: Path) -> dict[str, Any]:
    out = work / f"{name}.json"
    cmd = [sys.executable, str(ROOT / "bench" / "scenarios.py"), name, "--size", size]
    cmd += ["--json", str(out), "--dir", str(work)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stdout + proc.stderr)[-3000:]
        return {"error": f"exit {proc.returncode}: {tail}", "wall_s": time.perf_counter() - t0}
    return json.loads(out.read_text(encoding="utf-8"))


def run_callbacks_bench(size: str) -> dict[str, Any]:
    script = ROOT / "bench" / "callbacks.py"
    if not script.exists():
        return {"skipped": "bench/callbacks.py not found"}
    cmd = [sys.executable, str(script), *CALLBACK_ARGS.get(size, CALLBACK_ARGS["quick"])]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 1800 s"}
    return {
        "command": " ".join(["bench/callbacks.py", *cmd[2:]]),
        "exit_code": proc.returncode,
        "output": proc.stdout.strip() + ("\n" + proc.stderr.strip() if proc.returncode else ""),
        "wall_s": time.perf_counter() - t0,
    }


def render(out: Path) -> int:
    """Rebuild targets, latest.md and throughput.png from latest.json and the timelines."""
    results = json.loads((out / "latest.json").read_text(encoding="utf-8"))
    tp = results["scenarios"].get("throughput") or {}
    for sub in ("cap_bound", "rate_bound"):
        path = out / f"throughput_{sub}_timeline.json"
        r = tp.get(sub)
        if not isinstance(r, dict) or not path.exists():
            continue
        rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
        samples = [kit.Sample(*row) for row in rows]
        if "rate_used" not in r:
            period = 60.0 * r["time_scale"]
            req_s = kit.steady_requests_rate(samples, r["jobs"])
            r["steady_requests_s"] = req_s
            r["rate_used"] = req_s / (int(r["rate_limit"].split("/")[0]) / period)
            r["steady_requests_per_job"] = req_s / r["steady_jobs_s"]
        if sub == "cap_bound":
            results["plot"] = report.plot(rows, r, out / "throughput.png")
    results["targets"] = report.judge(results["scenarios"])
    (out / "latest.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    md = report.markdown(results)
    (out / "latest.md").write_text(md, encoding="utf-8")
    print(md)
    return 0 if all(t["met"] for t in results["targets"] if t["met"] is not None) else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (a few minutes in all)")
    p.add_argument(
        "--only", metavar="NAME", help=f"comma-separated subset of: {', '.join(NAMES)}, callbacks"
    )
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--size", choices=("full", "quick", "smoke"), help=argparse.SUPPRESS)
    p.add_argument(
        "--render", action="store_true", help="only redo latest.md and the plot from latest.json"
    )
    args = p.parse_args(argv)
    if args.render:
        return render(args.out)
    size = args.size or ("quick" if args.quick else "full")
    wanted = [*NAMES, "callbacks"]
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = set(wanted) - {*NAMES, "callbacks"}
        if unknown:
            p.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    args.out.mkdir(parents=True, exist_ok=True)
    command = "bench/run_all.py" + (" --quick" if size == "quick" else "")
    if args.only:
        command += f" --only {args.only}"
    results: dict[str, Any] = {
        "command": command,
        "size": size,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": kit.machine(),
        "scenarios": {},
    }
    with tempfile.TemporaryDirectory(prefix="batchgen-bench-") as tmp:
        for name in wanted:
            print(f"running {name} ({size}) ...", flush=True)
            if name == "callbacks":
                res = run_callbacks_bench(size)
            else:
                res = run_scenario(name, size, Path(tmp))
            results["scenarios"][name] = res
            print(report.one_line(name, res), flush=True)
    timeline = None
    tp = results["scenarios"].get("throughput", {})
    for sub in ("cap_bound", "rate_bound"):
        if isinstance(tp.get(sub), dict) and "timeline" in tp[sub]:
            series = tp[sub].pop("timeline")
            if sub == "cap_bound":
                timeline = series
            (args.out / f"throughput_{sub}_timeline.json").write_text(
                json.dumps(
                    {
                        "columns": ["t_s", "in_flight", "requests", "finished"],
                        "cap": tp[sub]["cap"],
                        "rows": series,
                    }
                ),
                encoding="utf-8",
            )
    results["targets"] = report.judge(results["scenarios"])
    if timeline is not None:
        png = args.out / "throughput.png"
        msg = report.plot(timeline, tp["cap_bound"], png)
        results["plot"] = msg
        print(msg)
    (args.out / "latest.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    md = report.markdown(results)
    (args.out / "latest.md").write_text(md, encoding="utf-8")
    print(md)
    return 0 if all(t["met"] for t in results["targets"] if t["met"] is not None) else 1


if __name__ == "__main__":
    sys.exit(main())
