"""bench/cpu.py in several checkouts, alternately (A, B, A, B...), to tell a regression from
the noise of a shared machine: each side's figures are taken in the same half hour as the
other's, and the spread shows how far one run can be trusted.

    .venv/bin/python bench/cpu_ab.py --side old=/work/wt-old --side new=. \
        --side "new-no-db=. --account-db none" --pairs 3 --json bench/results/cpu_ab.json

A side is LABEL=CHECKOUT[ ARGS]: its own .venv runs its own bench/cpu.py with
`--jobs --rounds` and ARGS (an older checkout's cpu.py may not know newer options). Prints each
run's median and, per side, the median of the runs' medians and their range.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def side(text: str) -> tuple[str, Path, list[str]]:
    label, _, rest = text.partition("=")
    words = shlex.split(rest)
    if not label or not words:
        raise argparse.ArgumentTypeError(f"expected LABEL=CHECKOUT[ ARGS], got {text!r}")
    return label, Path(words[0]).resolve(), words[1:]


def one_run(checkout: Path, extra: list[str], jobs: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cpu-ab-") as tmp:
        out = Path(tmp) / "cpu.json"
        cmd = [str(checkout / ".venv" / "bin" / "python"), str(checkout / "bench" / "cpu.py")]
        cmd += ["--jobs", str(jobs), "--rounds", str(rounds), "--json", str(out), *extra]
        subprocess.run(cmd, cwd=checkout, check=True, stdout=subprocess.DEVNULL)
        got = json.loads(out.read_text())
    rows = got["rounds"]
    return {
        "engine": statistics.median(r["engine"] for r in rows),
        "floor": statistics.median(r["floor"] for r in rows),
        "ratio": got["median_ratio"],
        "at": time.strftime("%H:%M:%S"),
        "load": Path("/proc/loadavg").read_text().split()[0],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=side, action="append", required=True)
    ap.add_argument("--pairs", type=int, default=3, help="runs of each side, alternated")
    ap.add_argument("--jobs", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in args.side}
    for i in range(args.pairs):
        for label, checkout, extra in args.side:
            r = one_run(checkout, extra, args.jobs, args.rounds)
            runs[label].append(r)
            print(
                f"{i + 1} {label:>12}: batchgen {r['engine']:.2f}  floor {r['floor']:.2f}  "
                f"ratio {r['ratio']:.2f}  (load {r['load']})",
                flush=True,
            )
    summary = {}
    for label, checkout, extra in args.side:
        rs = runs[label]
        figures = {
            key: {
                "median": statistics.median(r[key] for r in rs),
                "min": min(r[key] for r in rs),
                "max": max(r[key] for r in rs),
            }
            for key in ("engine", "floor", "ratio")
        }
        summary[label] = {"checkout": str(checkout), "args": extra, **figures, "runs": rs}
        e, q = figures["engine"], figures["ratio"]
        print(
            f"{label:>12}: batchgen CPU s/1000 jobs {e['median']:.2f} ({e['min']:.2f}-"
            f"{e['max']:.2f}), ratio {q['median']:.2f} ({q['min']:.2f}-{q['max']:.2f})"
        )
    if args.json:
        head = {"command": " ".join(sys.argv), "jobs": args.jobs, "rounds": args.rounds}
        args.json.write_text(json.dumps({**head, "sides": summary}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
