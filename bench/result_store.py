"""Benchmark of the bucket output (issue 28), side by side in one run against the same test
S3 server (moto on loopback, signatures checked: tests/s3kit.py) and the same files:

1. upload MB/s: batchgen's publish (HEAD, one conditional PUT with a sha256 checksum, HEAD
   again) beside boto3's `upload_file` (its default transfer: multipart over 8 MB, 10
   threads), one file after another; then the ratio (goal: at least 0.9);
2. peak memory (VmHWM of the `batchgen run` process, read from /proc while it runs) of a
   batch of 20 MB results with the default download concurrency, to the bucket beside the
   same batch to a local folder.

    .venv/bin/python bench/result_store.py [--files 20] [--mb 20] [--jobs 200]

Needs boto3 (a moto dependency in the test extra; `pip install -e .[bench]` too). Prints
figures and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from batchgen.adapters.sinks.objectstore import ObjectSinks  # noqa: E402
from batchgen.simulator import Simulator  # noqa: E402
from tests.s3kit import S3Server  # noqa: E402

KEY = "sk-bench-0123456789"
SCALE = 0.01


def uploads(server: S3Server, folder: Path, files: int, mb: float) -> None:
    paths = []
    for i in range(files):
        path = folder / f"{i}.mp4"
        path.write_bytes(os.urandom(int(mb * 1e6)))
        paths.append(path)
    total = sum(p.stat().st_size for p in paths) / 1e6
    sinks = ObjectSinks(f"s3://{server.bucket}/batchgen", folder, env=server.env())

    async def ours() -> None:
        for path in paths:
            data = path.read_bytes()
            await sinks.publish(path.name, path, len(data), hashlib.sha256(data).hexdigest())

    t0 = time.perf_counter()
    asyncio.run(ours())
    mine = time.perf_counter() - t0
    client = server.client()
    t0 = time.perf_counter()
    for path in paths:
        client.upload_file(str(path), server.bucket, f"boto3/{path.name}")
    theirs = time.perf_counter() - t0
    print(f"uploads: {files} files of {mb:g} MB ({total:.0f} MB), one after another, moto:")
    print(f"  batchgen publish (HEAD, PUT If-None-Match, sha256, HEAD): {total / mine:6.1f} MB/s")
    print(f"  boto3 upload_file (multipart, 10 threads):               {total / theirs:6.1f} MB/s")
    print(f"  ratio batchgen / boto3: {theirs / mine:.2f} (goal >= 0.9)")


def peak_memory(server: S3Server, folder: Path, jobs: int, mb: float) -> None:
    manifest = folder / "m.yaml"
    lines = ["name: bench", "defaults: {duration: 5, mode: master-text-to-video,"]
    lines += ["  aspect_ratio: '16:9'}", "jobs:"]
    lines += [f"  - {{id: j{i}, prompt: 'sea {i}'}}" for i in range(jobs)]
    manifest.write_text("\n".join(lines) + "\n")
    env = {**os.environ, **server.env(), "APIXO_API_KEY": KEY, "HOME": "/nonexistent"}

    async def batch(output: str, state: Path) -> tuple[int, float, int]:
        async with Simulator(
            api_keys=frozenset({KEY}), time_scale=SCALE, result_size=int(mb * 1e6)
        ) as sim:
            argv = [sys.executable, "-m", "batchgen", "run", str(manifest), "--quiet"]
            argv += ["--state", str(state), "--output", output, "--base-url", sim.base_url]
            argv += ["--poll-after", "0.6", "--poll-every", "0.05", "--rate-limit", "10000/0.6s"]
            argv += ["--allow-private-result-hosts", "--max-in-flight", str(jobs)]
            t0 = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(*argv, env=env)
            peak = 0
            while proc.returncode is None:
                peak = max(peak, _peak_rss_kb(proc.pid))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 0.05)
            return proc.returncode, time.perf_counter() - t0, peak

    results = {}
    for label, output, state in (
        ("bucket", f"s3://{server.bucket}/mem", folder / "b" / "batchgen.db"),
        ("local folder", str(folder / "l"), folder / "l" / "batchgen.db"),
    ):
        code, took, peak_kb = asyncio.run(batch(output, state))
        results[label] = (code, took, peak_kb / 1024)
    print(f"peak memory: {jobs} jobs x {mb:g} MB results, --download-concurrency 8 (default):")
    for label, (code, took, rss) in results.items():
        print(f"  to a {label:12s}: exit {code}, {took:5.1f} s, peak RSS {rss:6.0f} MB")
    bucket, local = results["bucket"][2], results["local folder"][2]
    print(f"  ratio bucket / local folder: {bucket / local:.2f}")


def _peak_rss_kb(pid: int) -> int:
    """VmHWM (the process's peak resident set so far) from /proc, in kB; 0 if unreadable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--mb", type=float, default=20.0)
    ap.add_argument("--jobs", type=int, default=200)
    args = ap.parse_args()
    server = S3Server("bench-results").start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            uploads(server, Path(tmp), args.files, args.mb)
        with tempfile.TemporaryDirectory() as tmp:
            peak_memory(server, Path(tmp), args.jobs, args.mb)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
