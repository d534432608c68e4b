"""Benchmark: `batchgen validate` on a generated 100,000-row CSV manifest.

Prints rows per second (wall time of the whole command, interpreter start-up included) and
the peak memory (max RSS) of the process. Target: >= 20,000 rows/s and < 300 MB.

    .venv/bin/python bench/validate.py [--rows N] [--keep FILE]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = [
    ("standard-image-to-video", 1),
    ("pro-image-to-video", 2),
    ("master-image-to-video", 1),
    ("master-text-to-video", 0),
]
WORDS = [
    "sunset",
    "harbor",
    "city",
    "neon",
    "forest",
    "river",
    "drone",
    "camera",
    "slowly",
    "gentle",
    "storm",
    "light",
]


def write_csv(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "id",
                "mode",
                "prompt",
                "duration",
                "image_urls",
                "aspect_ratio",
                "negative_prompt",
                "cfg_scale",
                "provider",
            ]
        )
        for i in range(rows):
            mode, images = MODES[i % 4]
            urls = "|".join(f"https://cdn.example.com/img/{i}-{k}.jpg" for k in range(images))
            prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30)))
            w.writerow(
                [
                    f"job-{i:06d}" if i % 2 else "",  # half the ids are derived
                    mode,
                    prompt,
                    rng.choice((5, 10)),
                    urls,
                    rng.choice(("16:9", "9:16", "1:1")) if images == 0 else "",
                    "blur, low quality" if i % 3 == 0 else "",
                    rng.choice(("", "0.3", "0.5", "0.7")),
                    rng.choice(("", "auto", "value")),
                ]
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="write the CSV here and keep it")
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "bench.csv"
        write_csv(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        cmd = [sys.executable, "-m", "batchgen", "validate", str(path)]
        env = {**os.environ, "PYTHONPATH": str(root)}
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root)
        elapsed = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    if done.returncode != 0:
        print(done.stdout, done.stderr[-2000:], sep="\n")
        print(f"batchgen validate failed with exit code {done.returncode}")
        return 1
    rate = args.rows / elapsed
    print(done.stdout.strip())
    print(f"rows: {args.rows} ({size_mb:.1f} MB of CSV)")
    print(f"time: {elapsed:.2f} s  ->  {rate:,.0f} rows/s (target >= 20,000)")
    print(f"peak memory (max RSS): {peak_mb:.0f} MB (target < 300 MB)")
    ok = rate >= 20_000 and peak_mb < 300
    print("PASS" if ok else "BELOW TARGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
