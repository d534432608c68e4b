"""Download throughput: batchgen's Downloader beside curl, on the same files from the same server.

    .venv/bin/python bench/downloads.py [--files 8] [--size-mb 64] [--concurrency 4] [--runs 3]
                                        [--default-concurrency 8]

A local aiohttp server (in its own process, serving with web.FileResponse so sendfile does the
work) offers N files of deterministic bytes. Each round downloads all of them:
  - batchgen, concurrency C  vs  curl --parallel --parallel-max C   (like with like)
  - batchgen, concurrency 1  vs  curl fetching the files one after another in one process
  - batchgen at the runner's default download concurrency (DOWNLOAD_CONCURRENCY, 8)
    vs curl --parallel-max 8: shown for information, not part of the target (0 skips it)
The best of --runs rounds is kept for each, and printed as MB/s and a ratio to curl.
batchgen does more per byte than curl here: sha256 of every byte, fsync, rename, a sidecar;
curl only writes. Every batchgen file is checked against the expected sha256.

Then the CPU each party spent per GB (median over the runs, from getrusage and /proc): the
server, the client (batchgen's whole process, or curl), the rest of the machine (kernel
threads, interrupts), and for curl+sha256+fsync the hashing and the fsync separately; with the
cost of sha256 on cache-hot 1 MiB buffers, that gives the CPU-bound ceiling of anything that
receives, writes and hashes on this machine's cores, printed beside the target.
Exit status 0 if every ratio reaches --target (default 0.8), else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing as mp
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from batchgen.adapters.download.attempt import Downloader  # noqa: E402
from batchgen.adapters.sinks.local import LocalSinks  # noqa: E402
from batchgen.settings import DOWNLOAD_CONCURRENCY  # noqa: E402

MB = 1024 * 1024
GB = 1024 * MB
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def process_cpu(pid: int) -> float:
    """CPU seconds of another process (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_busy() -> float:
    """CPU seconds the whole machine spent not idle (Linux /proc/stat; 0 elsewhere)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return 0.0
    return (sum(ticks) - ticks[3] - ticks[4]) / _TICK  # minus idle and iowait


def sha256_hot_cpu_per_gb() -> float:
    """CPU seconds per GB of sha256 over a cache-hot 1 MiB buffer: the least hashing costs."""
    block, h = os.urandom(MB), hashlib.sha256()
    start = time.process_time()
    for _ in range(256):
        h.update(block)
    return (time.process_time() - start) * 4


def make_files(folder: Path, count: int, size: int) -> dict[str, str]:
    """Write `count` files of deterministic bytes shaped like an MP4 (an ftyp box, then one
    mdat box filling the rest: batchgen checks a result is a video); return name -> sha256."""
    hashes = {}
    for i in range(count):
        rng = random.Random(i)
        h = hashlib.sha256()
        path = folder / f"result-{i}.mp4"
        with open(path, "wb") as f:
            left = size
            while left:
                block = rng.randbytes(min(4 * MB, left))
                if left == size and size >= 32:
                    ftyp = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isommp41"
                    block = ftyp + (size - 24).to_bytes(4, "big") + b"mdat" + block[32:]
                f.write(block)
                h.update(block)
                left -= len(block)
        hashes[path.name] = h.hexdigest()
    return hashes


def serve(folder: str, port: int, ready, rate_mb: float = 0.0) -> None:
    async def handle(request: web.Request) -> web.StreamResponse:
        path = Path(folder) / request.match_info["name"]
        if not path.is_file():
            raise web.HTTPNotFound()
        if not rate_mb:
            return web.FileResponse(path)  # sendfile: the server is not the bottleneck
        # a CDN-like connection: at most rate_mb MB/s per connection, paced per 1 MB block
        resp = web.StreamResponse(headers={"ETag": '"bench"'})
        resp.content_length = path.stat().st_size
        await resp.prepare(request)
        start = time.perf_counter()
        sent = 0
        with open(path, "rb") as f:  # noqa: ASYNC230 - page-cached bench file
            while block := f.read(MB):
                await resp.write(block)
                sent += len(block)
                ahead = sent / (rate_mb * MB) - (time.perf_counter() - start)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/f/{name}", handle)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run_batchgen(urls: list[str], out: Path, concurrency: int) -> float:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        dl = Downloader(
            session, sinks=LocalSinks(), concurrency=concurrency, max_bytes=64 * 1024 * MB
        )
        start = time.perf_counter()
        results = await asyncio.gather(*(dl.fetch(u, out / u.rsplit("/", 1)[1]) for u in urls))
        elapsed = time.perf_counter() - start
    run_batchgen.results = results  # type: ignore[attr-defined]
    return elapsed


def run_curl(urls: list[str], out: Path, concurrency: int) -> float:
    cmd = ["curl", "--silent", "--show-error", "--fail", "--no-progress-meter"]
    if concurrency > 1:
        cmd += ["--parallel", "--parallel-max", str(concurrency)]
    for u in urls:
        cmd += ["-o", str(out / u.rsplit("/", 1)[1]), u]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def hash_and_sync(out: Path) -> tuple[float, float, float]:
    """What batchgen does beyond curl: sha256 of every byte and an fsync of every file.
    Returns (CPU seconds hashing, CPU seconds in fsync, wall seconds in fsync)."""
    hash_cpu = sync_cpu = sync_wall = 0.0
    for path in sorted(out.iterdir()):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            c0 = time.thread_time()
            while block := f.read(MB):
                h.update(block)
            c1, t1 = time.thread_time(), time.perf_counter()
            os.fsync(f.fileno())
            sync_wall += time.perf_counter() - t1
            sync_cpu += time.thread_time() - c1
            hash_cpu += c1 - c0
    return hash_cpu, sync_cpu, sync_wall


def fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def print_cpu(
    cpu: dict[tuple[str, int], list[dict[str, float]]],
    best: dict[tuple[str, int], float],
    modes: list[tuple[int, str, bool]],
    target: float,
) -> None:
    """CPU seconds per GB by party (medians), and the CPU-bound ceiling they imply."""
    if not any(v["server"] for runs in cpu.values() for v in runs):
        return  # no /proc: nothing to show
    cores = os.cpu_count() or 1
    hot = sha256_hot_cpu_per_gb()
    print(f"\nCPU seconds per GB (median of the runs; {cores} cores shared by everyone):")
    print(
        f"{'':28} {'server':>7} {'client':>7} {'sha256':>7} {'fsync':>7} {'other':>7} "
        f"{'total':>7}   fsync wall s/GB"
    )
    parties = ("server", "client", "sha256", "fsync", "other")
    for conc, _, _ in modes:
        for tool in ("batchgen", "curl", "curl+sha256+fsync"):
            med = {
                k: statistics.median(r[k] for r in cpu[(tool, conc)]) for k in cpu[(tool, conc)][0]
            }
            cells = " ".join(f"{med[k]:7.3f}" for k in parties)
            wall = f"{med['fsync wall']:10.3f}" if tool == "curl+sha256+fsync" else ""
            name = f"{tool} c={conc}"
            print(f"{name:28} {cells} {sum(med[k] for k in parties):7.3f}   {wall}")
    print(
        f"(batchgen's client column includes its own sha256 and fsync; sha256 of a cache-hot "
        f"1 MiB buffer costs {hot:.3f} CPU s/GB here)"
    )
    for conc, _, counted in modes:
        curl = {k: statistics.median(r[k] for r in cpu[("curl", conc)]) for k in parties}
        floor = curl["server"] + curl["client"] + curl["other"] + hot
        ceiling = cores / floor * GB / MB
        need = target * best[("curl", conc)]
        ours = {k: statistics.median(r[k] for r in cpu[("batchgen", conc)]) for k in parties}
        ours_total = sum(ours.values())
        print(
            f"concurrency {conc}: curl's receive+write ({curl['client']:.3f}) + server "
            f"({curl['server']:.3f}) + other ({curl['other']:.3f}) + hot sha256 ({hot:.3f}) = "
            f"{floor:.3f} CPU s/GB: at most {ceiling:.0f} MB/s on {cores} cores if every core "
            f"were busy all the time; {'the target' if counted else f'{target} x curl'}, "
            f"{need:.0f} MB/s, needs "
            f"{need * MB / GB * floor / cores:.0%} of all cores at that floor and "
            f"{need * MB / GB * ours_total / cores:.0%} at batchgen's {ours_total:.3f} CPU s/GB"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--size-mb", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--target", type=float, default=0.8)
    ap.add_argument(
        "--default-concurrency",
        type=int,
        default=DOWNLOAD_CONCURRENCY,
        help="also measure the runner's default download concurrency, for information "
        f"(default: {DOWNLOAD_CONCURRENCY}; 0 skips it)",
    )
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp dir)")
    ap.add_argument(
        "--server-rate",
        type=float,
        default=0.0,
        help="pace each server connection to this many MB/s, like a CDN (default: unlimited)",
    )
    args = ap.parse_args(argv)
    if shutil.which("curl") is None:
        print("curl not found", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="bench-dl-", dir=args.dir))
    try:
        src = fresh(work / "src")
        size = args.size_mb * MB
        print(f"generating {args.files} files x {args.size_mb} MB in {src} ...", flush=True)
        hashes = make_files(src, args.files, size)
        port = free_port()
        ready = mp.get_context("spawn").Event()
        server = mp.get_context("spawn").Process(
            target=serve, args=(str(src), port, ready, args.server_rate), daemon=True
        )
        server.start()
        if not ready.wait(30):
            print("server did not start", file=sys.stderr)
            return 2
        urls = [f"http://127.0.0.1:{port}/f/{name}" for name in hashes]
        total = args.files * size
        # (concurrency, label, counts toward the target)
        modes = [(args.concurrency, "parallel", True)]
        if args.concurrency != 1:
            modes.append((1, "one at a time", True))
        if args.default_concurrency > 0 and all(args.default_concurrency != m[0] for m in modes):
            modes.append((args.default_concurrency, "runner default", False))
        best: dict[tuple[str, int], float] = {}
        cpu: dict[tuple[str, int], list[dict[str, float]]] = {}  # per run, CPU seconds per GB
        gb = total / GB
        for run in range(args.runs):
            for conc, _, _ in modes:
                for tool in ("batchgen", "curl", "curl+sha256+fsync"):
                    out = fresh(work / "out")
                    os.sync()  # no writeback left over from the previous round
                    m0, s0 = machine_busy(), process_cpu(server.pid)
                    c0, k0 = self_cpu(), children_cpu()
                    extra = (0.0, 0.0, 0.0)
                    if tool == "batchgen":
                        t = asyncio.run(run_batchgen(urls, out, conc))
                        for res in run_batchgen.results:  # type: ignore[attr-defined]
                            assert res.sha256 == hashes[res.path.name], res.path
                            assert res.fetched_bytes == size
                    elif tool == "curl":
                        t = run_curl(urls, out, conc)
                    else:
                        start = time.perf_counter()
                        run_curl(urls, out, conc)
                        extra = hash_and_sync(out)
                        t = time.perf_counter() - start
                    server_s = process_cpu(server.pid) - s0
                    client_s = self_cpu() - c0 + children_cpu() - k0
                    other_s = machine_busy() - m0 - server_s - client_s
                    cpu.setdefault((tool, conc), []).append(
                        {
                            "server": server_s / gb,
                            "client": (client_s - extra[0] - extra[1]) / gb,
                            "sha256": extra[0] / gb,
                            "fsync": extra[1] / gb,
                            "fsync wall": extra[2] / gb,
                            "other": max(0.0, other_s) / gb,
                        }
                    )
                    mbps = total / MB / t
                    key = (tool, conc)
                    best[key] = max(best.get(key, 0.0), mbps)
                    print(f"  run {run + 1}: {tool:17} concurrency {conc}: {mbps:8.1f} MB/s")
        server.terminate()
        server.join(5)

        pace = f", server paced at {args.server_rate:g} MB/s per connection" * bool(
            args.server_rate
        )
        print(f"\n{args.files} files x {args.size_mb} MB over loopback{pace}, best of {args.runs}:")
        print(
            f"{'mode':31} {'batchgen':>9} {'curl':>9} {'ratio':>6} "
            f"{'curl+sha+fsync':>15} {'ratio':>6}   (MB/s)"
        )
        ok = True
        for conc, label, counted in modes:
            b, c = best[("batchgen", conc)], best[("curl", conc)]
            cw = best[("curl+sha256+fsync", conc)]
            ratio = b / c
            if counted:
                ok &= ratio >= args.target
            name = f"{label} (concurrency {conc})"
            note = "" if counted else "   (information only: not in the target)"
            print(f"{name:31} {b:9.1f} {c:9.1f} {ratio:6.2f} {cw:15.1f} {b / cw:6.2f}{note}")
        print_cpu(cpu, best, modes, args.target)
        print(f"target: ratio to plain curl >= {args.target}: {'met' if ok else 'NOT met'}")
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
