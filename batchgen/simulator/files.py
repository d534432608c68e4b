"""Result file bytes (a pure function of task id, index, version and size) and Range parsing.

Without a size, a file is the shipped 1 s 64x64 H.264 MP4 (`assets/sim.mp4`) followed by a
`free` box naming the task, so it stays playable and its sha256 differs per task. With a size,
the `free` box is padded with a deterministic pattern to exactly that many bytes (a file smaller
than the MP4 is the pattern alone). Nothing is materialized: `read(start, end)` computes a slice.
"""

from __future__ import annotations

import hashlib
import struct
from functools import cache, lru_cache
from pathlib import Path

ASSET_PATH = Path(__file__).resolve().parent / "assets" / "sim.mp4"
_BLOCK = 64 * 1024


@cache
def asset_bytes() -> bytes:
    return ASSET_PATH.read_bytes()


class ResultFile:
    """The bytes of one result file: `size`, `read(start, end)`, `sha256`, `etag`."""

    __slots__ = ("_block", "_prefix", "_sha256", "index", "size", "task_id", "version")

    def __init__(self, task_id: str, index: int = 0, version: int = 0, size: int | None = None):
        self.task_id, self.index, self.version = task_id, index, version
        tag = f"batchgen-sim {task_id} {index} v{version}\n".encode()
        asset = asset_bytes()
        self._block = b""  # the repeating pattern, made on first use
        if size is None:
            self._prefix = asset + struct.pack(">I", 8 + len(tag)) + b"free" + tag
            self.size = len(self._prefix)
        elif size >= len(asset) + 8 + len(tag):
            self._prefix = asset + struct.pack(">I", size - len(asset)) + b"free" + tag
            self.size = size
        else:
            self._prefix = tag[:size]
            self.size = size
        self._sha256: str | None = None

    def read(self, start: int, end: int) -> bytes:
        """Bytes [start, end) of the file."""
        start, end = max(0, start), min(end, self.size)
        if start >= end:
            return b""
        out = bytearray()
        p = len(self._prefix)
        if start < p:
            out += self._prefix[start : min(end, p)]
            start = p
        if start < end and not self._block:
            tag = f"batchgen-sim {self.task_id} {self.index} v{self.version}".encode()
            self._block = hashlib.shake_256(tag).digest(_BLOCK)
        while start < end:
            off = (start - p) % _BLOCK
            n = min(end - start, _BLOCK - off)
            out += self._block[off : off + n]
            start += n
        return bytes(out)

    def chunks(self, start: int, end: int, chunk: int = 256 * 1024):
        for pos in range(start, end, chunk):
            yield self.read(pos, min(end, pos + chunk))

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            h = hashlib.sha256()
            for part in self.chunks(0, self.size, 1 << 20):
                h.update(part)
            self._sha256 = h.hexdigest()
        return self._sha256

    @property
    def etag(self) -> str:
        return f'"{self.sha256}"'

    def __repr__(self) -> str:
        return f"<ResultFile {self.task_id}[{self.index}] v{self.version} {self.size} bytes>"


@lru_cache(maxsize=512)
def result_file(task_id: str, index: int = 0, version: int = 0, size: int | None = None):
    return ResultFile(task_id, index, version, size)


def expected_bytes(
    task_id: str, index: int = 0, version: int = 0, size: int | None = None
) -> bytes:
    f = result_file(task_id, index, version, size)
    return f.read(0, f.size)


def expected_sha256(task_id: str, index: int = 0, version: int = 0, size: int | None = None) -> str:
    """The sha256 hex of result file `index` of `task_id`: what a verified download must match."""
    return result_file(task_id, index, version, size).sha256


UNSATISFIABLE = "unsatisfiable"


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """`Range` header -> (start, end_exclusive), UNSATISFIABLE, or None (serve the whole file).

    Supports one `bytes=N-`, `bytes=N-M` or `bytes=-S` range; anything else (several ranges,
    other units, syntax errors) is ignored, as RFC 9110 allows.
    """
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    try:
        if not first:
            suffix = int(last)
            if suffix <= 0:
                return UNSATISFIABLE
            return (max(0, size - suffix), size)
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return None
    if last and end <= start:
        return None  # `bytes=5-3` is syntactically invalid: ignore it
    if start >= size:
        return UNSATISFIABLE
    return (start, min(end, size))
