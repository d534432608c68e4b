"""Benchmark: what image preflight costs per 1,000 distinct URLs (requests, bytes, seconds).

A scripted image host on loopback (aiohttp, in this process) serves N distinct images of
about 2 MB each that honour Range; one Preflight checks them all, as a run would (concurrency
8, the run's default). A second pass over the same URLs on the same state file shows the
cache: no request at all.

    .venv/bin/python bench/preflight.py [--urls 1000] [--size 2000000] [--no-ranges]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from batchgen import store as st  # noqa: E402
from batchgen.inputs.preflight import Preflight  # noqa: E402
from tests.imagekit import ImageHost, png  # noqa: E402


async def main(n: int, size: int, ranges: bool) -> None:
    image = png(1280, 720)
    data = image + b"\x00" * max(0, size - len(image))
    async with ImageHost() as host:
        urls = [host.file(f"img-{i:05d}.png", data, ranges=ranges) for i in range(n)]
        with tempfile.TemporaryDirectory() as tmp:
            store = st.Store(Path(tmp) / "s.db")
            records = store.images
            for label in ("first run", "resumed run"):
                async with aiohttp.ClientSession() as session:
                    pf = Preflight(
                        session,
                        public_only=False,
                        concurrency=8,
                        lookup=records.cached_check,
                        save=records.save_check,
                    )
                    t0 = time.perf_counter()
                    checks = await asyncio.gather(*(pf.check(u) for u in urls))
                    seconds = time.perf_counter() - t0
                bad = sum(1 for c in checks if c.error)
                per = 1000 / n
                how = "ranged" if ranges else "no Range"
                print(
                    f"{label}: {n} URLs of {size / 1e6:.1f} MB ({how})"
                    f" -> per 1,000 URLs: {pf.stats.requests * per:.0f} requests, "
                    f"{pf.stats.body_bytes * per / 1e6:.1f} MB read, {seconds * per:.2f} s"
                    f" (cached {pf.stats.cached}, failed {bad})"
                )
            store.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--urls", type=int, default=1000)
    ap.add_argument("--size", type=int, default=2_000_000)
    ap.add_argument("--no-ranges", action="store_true")
    args = ap.parse_args()
    asyncio.run(main(args.urls, args.size, not args.no_ranges))
