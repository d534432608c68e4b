"""Benchmark: upload MB/s of local image files to the test S3 server (moto on loopback,
signatures checked: tests/s3kit.py), batchgen's ImageStore (obstore) beside boto3's plain
put_object with the same files, one after another.

    .venv/bin/python bench/image_store.py [--files 20] [--mb 8]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from batchgen.inputs.objectstore import ImageStore  # noqa: E402
from tests.imagekit import png  # noqa: E402
from tests.s3kit import S3Server  # noqa: E402


def main(files: int, mb: float) -> None:
    server = S3Server().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for i in range(files):
                path = Path(tmp) / f"{i}.png"
                path.write_bytes(png(64, 64) + os.urandom(int(mb * 1e6)))
                paths.append(path)
            total = sum(p.stat().st_size for p in paths) / 1e6
            os.environ.update(server.env())
            store = ImageStore(f"s3://{server.bucket}/obstore", 3600)

            async def upload_all() -> None:
                for path in paths:
                    sha = hashlib.sha256(path.read_bytes()).hexdigest()
                    await store.ensure(f"{sha}.png", str(path), sha)

            t0 = time.perf_counter()
            asyncio.run(upload_all())
            ours = time.perf_counter() - t0
            client = server.client()
            t0 = time.perf_counter()
            for path in paths:
                client.put_object(
                    Bucket=server.bucket, Key=f"boto3/{path.name}", Body=path.read_bytes()
                )
            theirs = time.perf_counter() - t0
            print(f"{files} files, {total:.0f} MB in all, one at a time, moto on loopback:")
            print(f"  batchgen ImageStore (obstore 0.12.1): {total / ours:.1f} MB/s ({ours:.2f} s)")
            print(
                f"  boto3 put_object:                    {total / theirs:.1f} MB/s ({theirs:.2f} s)"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--mb", type=float, default=8.0)
    args = ap.parse_args()
    main(args.files, args.mb)
