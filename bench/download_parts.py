"""Where one-at-a-time download speed goes: a bare aiohttp client doing part of batchgen's work.

    .venv/bin/python bench/download_parts.py [--files 8] [--size-mb 64] [--runs 3]

The same server and files as bench/downloads.py, fetched one after another by a minimal
aiohttp client (no Downloader, no resume, no sidecar) that does only:
  receive          read the body and drop it
  receive+write    write each 2 MiB batch in a worker thread, sync_file_range, fsync at the end
  receive+sha256   hash each batch in a worker thread, write nothing
  receive+both     write and hash in the worker thread: what batchgen must do per byte
and, for scale, curl fetching the same files one after another, and batchgen's Downloader.
Best of --runs for each, MB/s and the ratio to curl. It shows the ceiling of this design on
this machine: if "receive+both" stays below 0.8 of curl, no tuning of the Downloader can
reach the one-at-a-time target (issue 8); the sha256 is the product's promise (issue 5).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import hashlib
import multiprocessing as mp
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench.downloads import MB, free_port, fresh, make_files, run_batchgen, run_curl, serve  # noqa: E402

BATCH = 2 * MB
MODES = ("receive", "receive+write", "receive+sha256", "receive+both")

try:
    _sfr = ctypes.CDLL(None, use_errno=True).sync_file_range
    _sfr.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
except (OSError, AttributeError):  # not Linux
    _sfr = None


def _work(fd: int | None, hasher: hashlib._Hash | None, chunks: list[bytes], at: int) -> None:
    for chunk in chunks:
        if fd is not None:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        if hasher is not None:
            hasher.update(chunk)
    if fd is not None and _sfr is not None:
        _sfr(fd, at, 0, 2)  # SYNC_FILE_RANGE_WRITE: start writeback, as batchgen does


async def fetch(session: aiohttp.ClientSession, url: str, dest: Path, mode: str) -> None:
    write, hash_ = (
        mode in ("receive+write", "receive+both"),
        mode in ("receive+sha256", "receive+both"),
    )
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) if write else None
    hasher = hashlib.sha256() if hash_ else None
    pending: asyncio.Future[None] | None = None
    at = 0
    try:
        async with session.get(url, read_bufsize=MB) as resp:
            batch: list[bytes] = []
            size = 0
            async for chunk, _ in resp.content.iter_chunks():
                if mode == "receive":
                    continue
                batch.append(chunk)
                size += len(chunk)
                if size >= BATCH:
                    if pending is not None:
                        await pending
                    pending = asyncio.ensure_future(asyncio.to_thread(_work, fd, hasher, batch, at))
                    at += size
                    batch, size = [], 0
            if pending is not None:
                await pending
            if batch:
                await asyncio.to_thread(_work, fd, hasher, batch, at)
        if fd is not None:
            await asyncio.to_thread(os.fsync, fd)
    finally:
        if fd is not None:
            os.close(fd)


async def run_mode(urls: list[str], out: Path, mode: str) -> float:
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        start = loop.time()
        for url in urls:
            await fetch(session, url, out / url.rsplit("/", 1)[1], mode)
        return loop.time() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--size-mb", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    total_mb = args.files * args.size_mb
    with tempfile.TemporaryDirectory(
        dir=ROOT / "output" if (ROOT / "output").is_dir() else None
    ) as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "out"
        src.mkdir()
        names = make_files(src, args.files, args.size_mb * MB)
        port = free_port()
        ready = mp.Event()
        server = mp.Process(target=serve, args=(str(src), port, ready), daemon=True)
        server.start()
        ready.wait(30)
        urls = [f"http://127.0.0.1:{port}/f/{name}" for name in names]
        best: dict[str, float] = {}
        try:
            for _ in range(args.runs):
                for what in ("curl", *MODES, "batchgen Downloader"):
                    folder = fresh(out)
                    if what == "curl":
                        seconds = run_curl(urls, folder, 1)
                    elif what == "batchgen Downloader":
                        seconds = asyncio.run(run_batchgen(urls, folder, 1))
                    else:
                        seconds = asyncio.run(run_mode(urls, folder, what))
                    best[what] = max(best.get(what, 0.0), total_mb / seconds)
        finally:
            server.terminate()
            server.join(5)
    curl = best["curl"]
    print(f"{args.files} files x {args.size_mb} MB, one at a time, loopback, best of {args.runs}:")
    for what, rate in best.items():
        print(f"  {what:22} {rate:8.1f} MB/s   {rate / curl:5.2f} x curl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
