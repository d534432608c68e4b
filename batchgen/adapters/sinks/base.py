"""Where a result's bytes land, as the download sees it. `Sinks.open` gives one `ResultSink`
per fetch; the download (batchgen/adapters/download/) speaks HTTP and decides what to ask
for and what to refuse, and calls the sink to hold, hash and publish the bytes. A new place for
results (an object store's multipart upload) is one new module implementing these two
protocols; the local disk (local.py) is the one today.

A fetch first asks `ready`: a result an earlier process made whole but did not get to publish
(an object store's upload cut by a crash) is published from what is held, without a request.
Then the calls come in a fixed order per attempt: `held` (how much to ask for), then either
`begin`, a `put` per batch of about 2 MiB (never per network chunk), `drain`, and `commit`;
or, for a body that fits one batch, `finish`, or `keep` when it broke off. `settle` ends
every attempt that called `begin`, whatever happened; `discard` may come at any time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass
class Version:
    """Which version of a remote body held bytes belong to: what a sink records so that a
    later attempt, or another process, resumes only the same bytes (`If-Range`)."""

    url: str
    etag: str | None
    last_modified: str | None
    total: int | None

    @property
    def validator(self) -> str | None:
        # If-Range needs a strong validator: a weak ETag (W/"...") cannot be used.
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    bytes: int
    sha256: str
    etag: str | None
    fetched_bytes: int  # body bytes received over the network by this call, all attempts


class VideoCut(Exception):
    """The bytes held end inside a video's top-level box (args[0] says where): `commit`
    refuses to publish them. The download turns it into DownloadRejected(VIDEO_TRUNCATED)."""


@runtime_checkable
class ResultSink(Protocol):
    """One result on its way to its place, across the attempts of one fetch. It hashes the
    bytes as they land (sha256 in the result) and raises batchgen.errors for its own failures
    (DiskFull, DownloadError; DownloadTransient when what it holds is not what it was given)."""

    recorded: Version | None  # the version its held bytes belonged to when opened, if usable
    saved: int  # bytes landed since it was opened: an attempt that saved many resets failures

    async def ready(self) -> DownloadResult | None:
        """The result, published now from a whole body an earlier process left held (its
        `fetched_bytes` 0), or None when there is none: then the fetch asks the network."""
        ...

    async def held(self) -> int:
        """How many bytes are held and may be resumed: 0 when none, or when they no longer
        open like a video (something else left them there)."""
        ...

    async def head(self, n: int) -> bytes:
        """The first `n` bytes held: a resumed prefix shorter than a sniff is checked with
        the bytes that follow it."""
        ...

    async def begin(self, version: Version | None, offset: int) -> bool:
        """Take bytes of `version` from `offset` on. At 0 what is held is dropped first; then
        `version` is recorded, before any of its bytes land, so that a crash at any point
        never leaves a record describing bytes of another version (None: the bytes cannot be
        resumed, no record is kept). False if the first `offset` bytes are no longer held: ask
        again from 0."""
        ...

    async def put(self, chunks: list[bytes]) -> None:
        """Hand over one batch; returns once the batch before it has landed (one in flight),
        raising that batch's error if it failed."""
        ...

    async def drain(self) -> None:
        """Wait until every batch handed over has landed, raising its error if one failed."""
        ...

    async def settle(self) -> None:
        """End an attempt that called `begin`, whatever happened: nothing is written after
        this, and what has landed stays held (for a resume) unless discarded."""
        ...

    async def keep(self, version: Version, chunks: list[bytes]) -> None:
        """Hold `chunks` as the start of `version` (a small body that broke off), recorded
        as `begin` would, so that the next attempt resumes after them."""
        ...

    async def finish(
        self, chunks: list[bytes], size: int, etag: str | None, fetched: int
    ) -> DownloadResult:
        """Publish a whole small body of `size` bytes in one step (on a disk: one worker
        thread call), dropping anything held and any record."""
        ...

    async def commit(self, size: int, etag: str | None, fetched: int) -> DownloadResult:
        """Publish the `size` bytes held after `drain`: made durable, refused if they are a
        video cut short (VideoCut), then put in place, so a result is never seen half-made."""
        ...

    async def discard(self) -> None:
        """Drop what is held and its record (also ends an attempt, as `settle` does)."""
        ...


@runtime_checkable
class Sinks(Protocol):
    """Opens a sink per fetch; one is shared by a Downloader's fetches."""

    async def open(self, url: str, dest: Path) -> ResultSink:
        """The sink for `url`'s result at `dest`, with what an earlier attempt left there.
        Raises DiskFull when nothing can be put there at all (before any request)."""
        ...

    async def stamp(self, result: DownloadResult) -> int | None:
        """What the state file keeps beside a published result's size and sha256 so that a
        later audit is cheap (on a disk: its mtime in ns), or None."""
        ...

    async def intact(
        self, files: list[tuple[Path, int | None, str | None, int | None]]
    ) -> list[bool]:
        """For each published result (dest, size, sha256, stamp): is it still there as it
        was? The start-up audit fetches again, while its URL lives, each one that is not."""
        ...
