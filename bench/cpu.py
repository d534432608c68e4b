"""Client CPU per 1,000 jobs: batchgen's engine against the bare-aiohttp floor, side by side.

    .venv/bin/python bench/cpu.py [--jobs 5000] [--cap 500] [--scale 0.02] [--rounds 3]

Each round runs the same mixed batch twice, alternately, each against a fresh simulator
process: once through the real engine (state file, limiter, logging, verified downloads),
once through `bench/floor.py`'s minimal client that also writes and fsyncs each file
(`spread+write`). Alternating rounds share whatever else the machine is doing, so the ratio
is fairer than two figures taken minutes apart. Prints each round and the median ratio; the
issue's aim is a ratio of at most 1.5.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import floor  # noqa: E402
import scenarios  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--cap", type=int, default=500)
    ap.add_argument("--scale", type=float, default=0.02)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--account-db",
        default=None,
        help="as run's --account-db; 'none' measures without it (default: a fresh SQLite "
        "file per round, the admission a run does by default)",
    )
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    rows = []
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="bench-cpu-") as tmp:
            eng = asyncio.run(
                scenarios._batch(
                    Path(tmp),
                    args.jobs,
                    args.cap,
                    args.scale,
                    tag=f"c{r}",
                    account_db=args.account_db,
                )
            )
        bare = floor.measure("spread+write", args.jobs, args.cap, args.scale)
        e, f = eng["cpu_s_per_1000_jobs"], bare["cpu_s_per_1000_jobs"]
        rows.append({"engine": e, "floor": f, "ratio": e / f, "done": eng["done"]})
        print(
            f"round {r + 1}: batchgen {e:.2f}  floor(+write) {f:.2f}  CPU s/1000 jobs"
            f"  ratio {e / f:.2f}  ({eng['done']}/{args.jobs} done)",
            flush=True,
        )
    med = statistics.median(x["ratio"] for x in rows)
    print(
        f"median: batchgen {statistics.median(x['engine'] for x in rows):.2f}, floor "
        f"{statistics.median(x['floor'] for x in rows):.2f}, ratio {med:.2f} (aim <= 1.5)"
    )
    if args.json:
        figures = {"rounds": rows, "median_ratio": med, "account_db": args.account_db or "sqlite"}
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
