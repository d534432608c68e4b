"""The result sink is a seam: a sink that keeps results in memory, written here in a few dozen
lines against batchgen.adapters.sinks.base, is driven end to end by the real Downloader against
the scripted CDN of test_download.py. Whole files, resumes after a cut, refused pages, cut
videos and expired URLs all work without a file being touched: an object-store sink is one new
module."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from batchgen.adapters.download.attempt import DownloadResult
from batchgen.adapters.download.video import SNIFF_BYTES, bmff_cut, video_container
from batchgen.adapters.sinks.base import ResultSink, Sinks, Version, VideoCut
from batchgen.adapters.sinks.local import LocalSink, LocalSinks
from batchgen.adapters.sinks.localfs import _sidecar_json, part_path, sidecar_path
from batchgen.adapters.sinks.objectstore import ObjectSinks
from batchgen.errors import DownloadExpired, DownloadRejected
from tests import s3kit
from tests import test_download as base
from tests.s3kit import S3Server
from tests.test_download import Fault, blob, sha

cdn, make, session, sleeps = base.cdn, base.make, base.session, base.sleeps  # fixtures

pytestmark = pytest.mark.timeout(60)

MB = 1024 * 1024
BUCKET = "batchgen-sink"


# ---- a sink in memory: what an object store's would look like --------------------------------


@dataclass
class Shelf:
    """The store behind the memory sinks: bytes held (and their version) and results, by key."""

    held: dict[Path, bytearray] = field(default_factory=dict)
    records: dict[Path, Version] = field(default_factory=dict)
    results: dict[Path, bytes] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)  # begin, finish, commit, discard, keep


class MemorySink:
    def __init__(self, shelf: Shelf, url: str, dest: Path) -> None:
        self.shelf, self.key, self.saved = shelf, dest, 0
        record = shelf.records.get(dest)
        self.recorded = record if record is not None and record.url == url else None

    async def ready(self) -> DownloadResult | None:
        return None

    async def held(self) -> int:
        data = bytes(self.shelf.held.get(self.key, b""))
        opens = len(data) < SNIFF_BYTES or video_container(data[:SNIFF_BYTES]) is not None
        return len(data) if opens else 0

    async def head(self, n: int) -> bytes:
        return bytes(self.shelf.held[self.key][:n])

    async def begin(self, version: Version | None, offset: int) -> bool:
        self.shelf.calls.append(f"begin {offset}")
        data = self.shelf.held.setdefault(self.key, bytearray())
        if offset == 0:
            data.clear()
        if version is None:
            self.shelf.records.pop(self.key, None)
        else:
            self.shelf.records[self.key] = version
        return len(data) == offset

    async def put(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.shelf.held[self.key] += chunk
            self.saved += len(chunk)

    async def drain(self) -> None:
        pass

    async def settle(self) -> None:
        pass

    async def keep(self, version: Version, chunks: list[bytes]) -> None:
        self.shelf.calls.append("keep")
        await self.begin(version, 0)
        await self.put(chunks)

    async def finish(
        self, chunks: list[bytes], size: int, etag: str | None, fetched: int
    ) -> DownloadResult:
        self.shelf.calls.append("finish")
        self.shelf.held[self.key] = bytearray(b"".join(chunks))
        return await self.commit(size, etag, fetched)

    async def commit(self, size: int, etag: str | None, fetched: int) -> DownloadResult:
        self.shelf.calls.append("commit")
        data = bytes(self.shelf.held[self.key])
        assert len(data) == size
        if (cut := bmff_cut(size, lambda pos, n: data[pos : pos + n])) is not None:
            raise VideoCut(cut)
        self.shelf.results[self.key] = data
        await self.discard()
        return DownloadResult(self.key, size, hashlib.sha256(data).hexdigest(), etag, fetched)

    async def discard(self) -> None:
        self.shelf.calls.append("discard")
        self.shelf.held.pop(self.key, None)
        self.shelf.records.pop(self.key, None)


class MemorySinks:
    def __init__(self) -> None:
        self.shelf = Shelf()

    def seed(self, dest: Path, data: bytes, version: Version) -> None:
        """What an earlier process left held for `dest`."""
        self.shelf.held[dest] = bytearray(data)
        self.shelf.records[dest] = version

    async def open(self, url: str, dest: Path) -> MemorySink:
        return MemorySink(self.shelf, url, dest)

    async def stamp(self, result: DownloadResult) -> int | None:
        return None

    async def intact(self, files: list) -> list[bool]:
        return [dest in self.shelf.results for dest, *_ in files]


# ---- the same tests against a bucket (moto, signatures checked: tests/s3kit.py) ---------------


class BucketShelf:
    """The object-store sink seen as a Shelf: results are the bucket's objects, held bytes
    and records the spool's .part files and sidecars, calls those the Downloader made."""

    def __init__(self, sinks: ObjectSinks, client: object) -> None:
        self._sinks, self._client = sinks, client
        self.calls: list[str] = []

    def _spooled(self, suffix: str) -> dict[Path, Path]:
        spool = self._sinks.spool
        found = spool.rglob(f"*{suffix}") if spool.exists() else []
        return {
            self._sinks.root.joinpath(*p.relative_to(spool).parts[1:]).with_name(
                p.name[: -len(suffix)]
            ): p
            for p in found
        }

    @property
    def held(self) -> dict[Path, bytearray]:
        return {d: bytearray(p.read_bytes()) for d, p in self._spooled(".part").items()}

    @property
    def records(self) -> dict[Path, str]:
        return {d: p.read_text() for d, p in self._spooled(".part.json").items()}

    @property
    def results(self) -> dict[Path, bytes]:
        listed = self._client.list_objects_v2(Bucket=BUCKET, Prefix="t/").get("Contents", [])
        return {
            self._sinks.root / o["Key"][2:]: self._client.get_object(Bucket=BUCKET, Key=o["Key"])[
                "Body"
            ].read()
            for o in listed
        }


class BucketSinks:
    def __init__(self, server: S3Server, root: Path) -> None:
        self.inner = ObjectSinks(f"s3://{BUCKET}/t", root, env=server.env())
        self.shelf = BucketShelf(self.inner, server.client())

    def seed(self, dest: Path, data: bytes, version: Version) -> None:
        tag = hashlib.sha256(version.url.encode()).hexdigest()[:16]
        spooled = self.inner.spool / tag / dest.relative_to(self.inner.root)
        spooled.parent.mkdir(parents=True, exist_ok=True)
        part_path(spooled).write_bytes(data)
        sidecar_path(spooled).write_text(_sidecar_json(version))

    async def open(self, url: str, dest: Path) -> ResultSink:
        return Recording(await self.inner.open(url, dest), self.shelf.calls)

    async def stamp(self, result: DownloadResult) -> int | None:
        return await self.inner.stamp(result)

    async def intact(self, files: list) -> list[bool]:
        return await self.inner.intact(files)


class Recording:
    """A sink that notes the Downloader's calls in the Shelf's words."""

    def __init__(self, inner: ResultSink, calls: list[str]) -> None:
        self._inner, self._calls = inner, calls
        self.recorded = inner.recorded

    def __getattr__(self, name: str) -> object:
        attr = getattr(self._inner, name)
        if name not in ("begin", "finish", "commit", "discard", "keep"):
            return attr

        async def noted(*args: object) -> object:
            self._calls.append(f"begin {args[1]}" if name == "begin" else name)
            return await attr(*args)

        return noted


# ---- the tests ------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "bucket"])
def memory(request, make, tmp_path):
    if request.param == "memory":
        sinks = MemorySinks()
        yield sinks, make(sinks=sinks), tmp_path / "out"
        assert not (tmp_path / "out").exists()  # the Downloader itself never touches a file
        return
    with s3kit.running(BUCKET) as server:
        sinks = BucketSinks(server, tmp_path / "out")
        yield sinks, make(sinks=sinks), tmp_path / "out"
        assert server.refused == []


def test_both_sinks_implement_the_protocols(tmp_path):
    sinks = MemorySinks()
    assert isinstance(sinks, Sinks) and isinstance(LocalSinks(), Sinks)
    assert isinstance(ObjectSinks("s3://bucket/p", tmp_path, env={}), Sinks)
    assert isinstance(MemorySink(sinks.shelf, "u", tmp_path / "a"), ResultSink)
    assert isinstance(LocalSink("u", tmp_path / "a", lambda folder: None), ResultSink)


@pytest.mark.parametrize("size", [1800, 5 * MB])  # one call (finish); batches, then commit
async def test_a_whole_file_lands_in_memory(cdn, memory, size):
    sinks, dl, out = memory
    data = blob(size)
    res = await dl.fetch(cdn.add("w.mp4", data), out / "w.mp4")
    assert res == DownloadResult(out / "w.mp4", size, sha(data), '"v1"', size)
    assert sinks.shelf.results == {out / "w.mp4": data}
    assert sinks.shelf.held == {} and sinks.shelf.records == {}
    first = "finish" if size < 2 * MB else "begin 0"
    expected = [first] if first == "finish" else [first, "commit"]
    assert sinks.shelf.calls[: len(expected)] == expected


@pytest.mark.parametrize(("size", "cut"), [(3 * MB, 1_000_000), (1800, 900)])
async def test_a_cut_resumes_from_the_bytes_the_sink_holds(cdn, memory, size, cut):
    sinks, dl, out = memory
    data = blob(size)
    res = await dl.fetch(cdn.add("c.mp4", data, Fault(cut=cut)), out / "c.mp4")
    assert res.sha256 == sha(data) and res.fetched_bytes == size
    assert sinks.shelf.results[out / "c.mp4"] == data
    sent = cdn.requests("c.mp4")
    assert [(r["range"], r["if_range"]) for r in sent] == [(None, None), (f"bytes={cut}-", '"v1"')]
    assert f"begin {cut}" in sinks.shelf.calls


async def test_a_resume_in_a_later_fetch_starts_from_what_the_sink_held(cdn, memory):
    sinks, dl, out = memory
    data = blob(3 * MB)
    url = cdn.add("l.mp4", data)
    sinks.seed(out / "l.mp4", data[:700_000], Version(url, '"v1"', None, len(data)))
    res = await dl.fetch(url, out / "l.mp4")
    assert res.sha256 == sha(data) and res.fetched_bytes == len(data) - 700_000
    assert cdn.requests("l.mp4")[0]["range"] == "bytes=700000-"


async def test_a_page_instead_of_a_video_is_refused_and_never_committed(cdn, memory):
    sinks, dl, out = memory
    page = Fault(body=b"<html>Access Denied</html>" * 100, headers={"Content-Type": "text/html"})
    url = cdn.add("p.mp4", blob(3 * MB), *[page] * 6)
    with pytest.raises(DownloadRejected) as info:
        await dl.fetch(url, out / "p.mp4")
    assert info.value.code == "NOT_A_VIDEO"
    assert "commit" not in sinks.shelf.calls and "finish" not in sinks.shelf.calls
    assert sinks.shelf.results == {} and sinks.shelf.held == {}


async def test_a_video_cut_short_is_refused_at_commit(cdn, memory):
    sinks, dl, out = memory
    short = Fault(body=blob(3 * MB)[: 2 * MB + 5], chunked=True)
    url = cdn.add("v.mp4", blob(3 * MB), *[short] * 6)
    with pytest.raises(DownloadRejected) as info:
        await dl.fetch(url, out / "v.mp4")
    assert info.value.code == "VIDEO_TRUNCATED"
    assert sinks.shelf.calls.count("commit") == 6 and sinks.shelf.results == {}


async def test_an_expired_url_discards_what_the_sink_held(cdn, memory):
    sinks, dl, out = memory
    data = blob(3 * MB)
    url = cdn.add("e.mp4", data, Fault(status=404))
    sinks.seed(out / "e.mp4", data[:100_000], Version(url, '"v1"', None, len(data)))
    with pytest.raises(DownloadExpired):
        await dl.fetch(url, out / "e.mp4")
    assert cdn.requests("e.mp4")[0]["range"] == "bytes=100000-"
    assert sinks.shelf.calls == ["discard"]
    assert sinks.shelf.held == {} and sinks.shelf.records == {} and sinks.shelf.results == {}


def test_the_downloader_knows_no_sink_of_its_own() -> None:
    """The sink is the only way to a file: the Downloader takes one and names no local
    disk itself (the runner chooses the local disk or a bucket)."""
    import ast
    import inspect

    from batchgen.adapters.download import attempt

    source = inspect.getsource(attempt)
    imported = {
        node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not {m for m in imported if m.startswith("batchgen.adapters.sinks.local")}
    with pytest.raises(TypeError):
        attempt.Downloader(object())  # type: ignore[arg-type, call-arg]
