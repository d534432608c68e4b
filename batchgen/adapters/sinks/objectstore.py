"""An S3-compatible bucket as a result sink (`--output s3://BUCKET/PREFIX`).

Bytes are spooled on the local disk first, through the local sink (`.part`, sidecar, resumes
across processes), under `.spool/` in the local folder beside the state file. A whole,
checked video is then published to `PREFIX/<file name>`:

- HEAD first: a key that holds the same bytes (batchgen's sha256 in its metadata, and the
  same size) is done; other bytes fail the job (OutputConflict), never overwritten;
- one PUT with `If-None-Match: *` (obstore's PutMode "create"), so a key written meanwhile
  is never replaced; a store that cannot do conditional writes is said so once and relies on
  the HEAD alone. The PUT carries `x-amz-checksum-sha256`, which the store checks against the
  body, and batchgen's sha256 as `x-amz-meta-batchgen-sha256`;
- a HEAD after the write confirms size and sha256; only then is the spooled file removed.

No multipart upload is used (results are below S3's 5 GiB single-PUT limit), so a killed
upload leaves no object and no unfinished upload behind, and no ETag is ever read as an MD5.
The next run publishes what the spool holds without downloading it again (`ready`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import mimetypes
import mmap
import os
from pathlib import Path, PurePosixPath
from typing import Any

from batchgen.adapters import s3client
from batchgen.adapters.proxies import Proxies
from batchgen.adapters.s3client import object_url
from batchgen.adapters.sinks.base import DownloadResult, Version
from batchgen.adapters.sinks.local import LocalSink, LocalSinks
from batchgen.adapters.sinks.localfs import HASH_BLOCK
from batchgen.errors import DownloadError, OutputConflict

__all__ = ["SHA_META", "SPOOL_DIR", "ObjectSink", "ObjectSinks", "object_url"]

log = logging.getLogger("batchgen.output")

SPOOL_DIR = ".spool"  # under the local folder: bytes on their way to the bucket
SHA_META = "batchgen-sha256"  # user metadata: x-amz-meta-batchgen-sha256
MAX_SINGLE_PUT = 5 * 1024**3  # S3's limit for one PUT
_AUDIT_AT_ONCE = 16


class ObjectSinks:
    """Results published to one bucket and prefix. `root` is the local folder the engine's
    destination paths live under (beside the state file); their path below it is the key."""

    def __init__(
        self,
        url: str,
        root: Path,
        *,
        env: dict[str, str] | None = None,
        proxies: Proxies | None = None,
        store: Any = None,
    ) -> None:
        self.bucket, self.prefix = s3client.parse_store_url(url, "--output")
        self.root = Path(root)
        self.spool = self.root / SPOOL_DIR
        self._env, self._proxies = env, proxies
        self._store = store
        self._local = LocalSinks()
        self.conditional = True  # False once the store says it cannot do If-None-Match
        self.uploads = 0  # objects written by this process
        self.found = 0  # keys that already held the same bytes

    def __repr__(self) -> str:  # never the credentials
        return f"<ObjectSinks s3://{self.bucket}/{self.prefix} uploads={self.uploads}>"

    @property
    def store(self) -> Any:
        if self._store is None:
            self._store = s3client.open_store(
                self.bucket,
                self.prefix,
                env=self._env,
                proxies=self._proxies,
                checksum_algorithm="sha256",
            )
        return self._store

    def rel(self, dest: Path) -> str:
        """The key below the prefix for an engine destination path."""
        return PurePosixPath(*Path(dest).relative_to(self.root).parts).as_posix()

    def url_of(self, dest: Path) -> str:
        return object_url(self.bucket, self.prefix, self.rel(dest))

    async def open(self, url: str, dest: Path) -> ObjectSink:
        """The spool is keyed by the result's URL too: a whole file left by an earlier task
        of the same job (resubmitted since) is never published as this one's."""
        rel = self.rel(dest)
        tag = hashlib.sha256(url.encode()).hexdigest()[:16]
        inner = await self._local.open(url, self.spool.joinpath(tag, *PurePosixPath(rel).parts))
        return ObjectSink(self, inner, rel, Path(dest))

    async def stamp(self, result: DownloadResult) -> int | None:
        return None  # an object's size and sha256 are what the audit compares

    async def intact(
        self, files: list[tuple[Path, int | None, str | None, int | None]]
    ) -> list[bool]:
        """HEAD each object (a few at once): gone, or another size or sha256, is not intact.
        A store that cannot be asked right now counts as intact: nothing is refetched on a
        guess."""
        gate = asyncio.Semaphore(_AUDIT_AT_ONCE)

        async def one(dest: Path, size: int | None, sha: str | None) -> bool:
            async with gate:
                try:
                    found = await self.describe(self.rel(dest))
                except DownloadError:
                    return True
            if found is None:
                return False
            return (size is None or found[0] == size) and (sha is None or found[1] == sha)

        return list(await asyncio.gather(*(one(d, size, sha) for d, size, sha, _ in files)))

    # ---- the store ------------------------------------------------------------------------

    async def describe(self, rel: str) -> tuple[int, str | None] | None:
        """(size, batchgen's sha256 from the metadata) of the object at `rel`, None if absent."""
        import obstore

        try:
            got = await obstore.get_async(self.store, rel, options={"head": True})
        except (FileNotFoundError, *_not_found()):
            return None
        except Exception as exc:
            msg = f"cannot read {self._url(rel)}: {s3client.safe_message(exc)}"
            raise DownloadError(msg) from None
        attrs = dict(got.attributes or {})
        return int(got.meta["size"]), attrs.get(SHA_META)

    async def publish(self, rel: str, path: Path, size: int, sha256: str) -> bool:
        """Put the spooled file `path` at `rel` unless the key holds it already; True if
        this call wrote it. Raises OutputConflict when the key holds other bytes."""
        if self._judge(rel, await self.describe(rel), size, sha256, path):
            self.found += 1
            return False
        try:
            await self._put(rel, path, size, sha256)
        except _AlreadyThere:  # written meanwhile by someone else: judge it as above
            if self._judge(rel, await self.describe(rel), size, sha256, path):
                self.found += 1
                return False
            raise DownloadError(f"{self._url(rel)} appeared during the upload") from None
        after = await self.describe(rel)
        if after is None or after != (size, sha256):
            seen = "nothing" if after is None else f"{after[0]} bytes, sha256 {after[1]}"
            raise DownloadError(
                f"{self._url(rel)}: after the upload the store shows {seen}, "
                f"not {size} bytes with sha256 {sha256}; it will be tried again"
            )
        self.uploads += 1
        return True

    def _judge(
        self, rel: str, found: tuple[int, str | None] | None, size: int, sha: str, path: Path
    ) -> bool:
        """True: the key holds these very bytes. False: the key is free."""
        if found is None:
            return False
        if found == (size, sha):
            return True
        theirs = f"sha256 {found[1]}" if found[1] else "no batchgen sha256"
        raise OutputConflict(
            f"{self._url(rel)} already holds other bytes ({found[0]} bytes, {theirs}; this "
            f"result: {size} bytes, sha256 {sha}); it was not overwritten. The result is kept "
            f"at {path}: move or delete the object, or change output.filename, then "
            "`batchgen retry --codes OUTPUT_CONFLICT`"
        )

    async def _put(self, rel: str, path: Path, size: int, sha256: str) -> None:
        import obstore
        from obstore.exceptions import AlreadyExistsError, NotSupportedError, PreconditionError

        attributes = {"Content-Type": _content_type(rel), SHA_META: sha256}
        with _mapped(path, size) as body:
            while True:
                mode = "create" if self.conditional else "overwrite"
                try:
                    await obstore.put_async(
                        self.store, rel, body, mode=mode, use_multipart=False, attributes=attributes
                    )
                    return
                except (AlreadyExistsError, PreconditionError):
                    raise _AlreadyThere() from None
                except NotSupportedError:
                    if not self.conditional:
                        msg = f"{self._url(rel)}: the store refused the upload"
                        raise DownloadError(msg) from None
                    self.conditional = False
                    log.warning(
                        "s3://%s cannot write only-if-absent (If-None-Match); batchgen checks "
                        "each key with a HEAD right before writing instead",
                        self.bucket,
                    )
                    if await self.describe(rel) is not None:
                        raise _AlreadyThere() from None
                except Exception as exc:
                    raise DownloadError(
                        f"upload to {self._url(rel)} failed: {s3client.safe_message(exc)}; "
                        "it will be tried again from the local copy"
                    ) from None

    def _url(self, rel: str) -> str:
        return object_url(self.bucket, self.prefix, rel)

    async def put_report(self, path: Path) -> str:
        """A report rewritten every run (results.jsonl) to PREFIX/<its name>: the one object
        batchgen replaces, as it replaces the local file. Returns its `s3://` URL."""
        import obstore

        try:
            data = await asyncio.to_thread(path.read_bytes)
            await obstore.put_async(
                self.store, path.name, data, attributes={"Content-Type": "application/jsonl"}
            )
        except Exception as exc:
            raise DownloadError(f"{self._url(path.name)}: {s3client.safe_message(exc)}") from None
        return self._url(path.name)


class ObjectSink:
    """One result: spooled by the local sink, then published; `dest` is the engine's path."""

    def __init__(self, sinks: ObjectSinks, inner: LocalSink, rel: str, dest: Path) -> None:
        self._sinks, self._inner, self.rel, self.dest = sinks, inner, rel, dest
        self.recorded = inner.recorded

    @property
    def saved(self) -> int:
        return self._inner.saved

    def __repr__(self) -> str:
        return f"<ObjectSink {self.rel} spool={self._inner!r}>"

    async def ready(self) -> DownloadResult | None:
        """A whole spooled file from an earlier process (its upload was cut): publish it."""
        spooled = self._inner.dest
        digest = await asyncio.to_thread(_hash_file, spooled)
        if digest is None:
            return None
        size, sha = digest
        return await self._published(spooled, size, sha, None, 0)

    async def held(self) -> int:
        return await self._inner.held()

    async def head(self, n: int) -> bytes:
        return await self._inner.head(n)

    async def begin(self, version: Version | None, offset: int) -> bool:
        return await self._inner.begin(version, offset)

    async def put(self, chunks: list[bytes]) -> None:
        await self._inner.put(chunks)

    async def drain(self) -> None:
        await self._inner.drain()

    async def settle(self) -> None:
        await self._inner.settle()

    async def keep(self, version: Version, chunks: list[bytes]) -> None:
        await self._inner.keep(version, chunks)

    async def finish(
        self, chunks: list[bytes], size: int, etag: str | None, fetched: int
    ) -> DownloadResult:
        local = await self._inner.finish(chunks, size, etag, fetched)
        return await self._published(local.path, local.bytes, local.sha256, etag, fetched)

    async def commit(self, size: int, etag: str | None, fetched: int) -> DownloadResult:
        local = await self._inner.commit(size, etag, fetched)
        return await self._published(local.path, local.bytes, local.sha256, etag, fetched)

    async def discard(self) -> None:
        await self._inner.discard()

    async def _published(
        self, spooled: Path, size: int, sha: str, etag: str | None, fetched: int
    ) -> DownloadResult:
        if size > MAX_SINGLE_PUT:
            raise OutputConflict(
                f"{self._sinks.url_of(self.dest)}: {size} bytes is over the 5 GiB a single "
                f"upload may carry; the result is kept at {spooled}",
                code="OUTPUT_TOO_LARGE",
            )
        await self._sinks.publish(self.rel, spooled, size, sha)
        await asyncio.to_thread(_unspool, spooled, self._sinks.spool)
        return DownloadResult(self.dest, size, sha, etag, fetched)


def _unspool(spooled: Path, spool: Path) -> None:
    """Verified in the bucket: the local copy has done its job, and so have the folders it
    leaves empty."""
    with contextlib.suppress(OSError):
        spooled.unlink()
        for folder in spooled.parents:
            if folder == spool:
                break
            folder.rmdir()


class _AlreadyThere(Exception):
    """The conditional write found the key taken."""


def _not_found() -> tuple[type[BaseException], ...]:
    from obstore.exceptions import NotFoundError

    return (NotFoundError,)


def _content_type(rel: str) -> str:
    return mimetypes.guess_type(rel)[0] or "application/octet-stream"


@contextlib.contextmanager
def _mapped(path: Path, size: int) -> Any:
    """The spooled file as a buffer obstore reads straight from the page cache (no copy in
    Python's memory); checked for its expected size first."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size != size:
            raise DownloadError(f"{path} changed size before its upload; it will be fetched again")
        if size == 0:
            yield b""
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                yield view
            finally:
                view.release()


def _hash_file(path: Path) -> tuple[int, str] | None:
    """(size, sha256) of a regular file, or None if there is none."""
    try:
        with open(path, "rb", opener=_nofollow) as f:
            h, n = hashlib.sha256(), 0
            while block := f.read(HASH_BLOCK):
                h.update(block)
                n += len(block)
    except OSError:
        return None
    return n, h.hexdigest()


def _nofollow(path: str, flags: int) -> int:
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0))
