"""The download boundary against a fake CDN whose faults each test scripts per request."""

from __future__ import annotations

import asyncio
import errno
import gzip
import hashlib
import json
import os
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiofiles
import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchgen.adapters.download import attempt as download_mod
from batchgen.adapters.download.attempt import Downloader, DownloadResult
from batchgen.adapters.sinks import local as sink_mod
from batchgen.adapters.sinks import localfs as files_mod
from batchgen.adapters.sinks.local import LocalSink, LocalSinks
from batchgen.adapters.sinks.localfs import part_path, sidecar_path, verify_existing
from batchgen.errors import (
    DiskFull,
    DownloadError,
    DownloadExpired,
    DownloadRejected,
    DownloadTooLarge,
    DownloadTransient,
    UnsafeUrl,
)

pytestmark = pytest.mark.timeout(60)


FTYP = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isommp41"


def blob(n: int, seed: int = 1) -> bytes:
    """n bytes shaped like an MP4 (an ftyp box, then an mdat box filling the rest with random
    bytes), so the downloader's container checks accept it. Below 32 bytes: random bytes."""
    rng = random.Random(seed)
    if n < len(FTYP) + 8:
        return rng.randbytes(n)
    return FTYP + (n - len(FTYP)).to_bytes(4, "big") + b"mdat" + rng.randbytes(n - len(FTYP) - 8)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- the fake CDN ---------------------------------------------------------------------------


@dataclass
class Fault:
    """What the server does with one request. Unset fields mean: behave like a good CDN."""

    status: int | None = None  # answer this status with a short body
    cut: int | None = None  # send this many body bytes (Content-Length full), then close
    ignore_range: bool = False  # answer 200 with the whole file even to a Range
    ignore_if_range: bool = False  # honour Range even when If-Range no longer matches
    bad_start: bool = False  # 206 whose Content-Range starts somewhere else
    trickle: int | None = None  # send in pieces of this many bytes, yielding between them
    stall_after: int | None = None  # send this many bytes, then hang (until teardown)
    chunked: bool = False  # no Content-Length
    claim_length: int | None = None  # announce this Content-Length (and send a little)
    headers: dict[str, str] = field(default_factory=dict)
    gzip: bool = False
    location: str | None = None  # with status 30x
    before: Callable[[], None] | None = None  # run before answering (e.g. change the file)
    hang_before_head: bool = False  # read the request, never answer (until teardown)
    body: bytes | None = None  # send these bytes (status 200) instead of the file


@dataclass
class Served:
    data: bytes
    etag: str | None = '"v1"'
    last_modified: str | None = None


class FakeCdn:
    def __init__(self) -> None:
        self.files: dict[str, Served] = {}
        self.faults: dict[str, list[Fault]] = {}
        self.log: list[dict[str, str | None]] = []
        self.sent: dict[str, int] = {}
        self.active = 0
        self.max_active = 0
        self.release = asyncio.Event()
        self.base = ""
        self.app = web.Application()
        self.app.router.add_get("/f/{name}", self.handle)

    def url(self, name: str) -> str:
        return f"{self.base}/f/{name}"

    def add(self, name: str, data: bytes, *faults: Fault, **kw: object) -> str:
        self.files[name] = Served(data, **kw)  # type: ignore[arg-type]
        self.faults[name] = list(faults)
        self.sent[name] = 0
        return self.url(name)

    def requests(self, name: str) -> list[dict[str, str | None]]:
        return [r for r in self.log if r["name"] == name]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.log.append(
            {
                "name": name,
                "range": request.headers.get("Range"),
                "if_range": request.headers.get("If-Range"),
                "accept_encoding": request.headers.get("Accept-Encoding"),
            }
        )
        queue = self.faults.get(name, [])
        fault = queue.pop(0) if queue else Fault()
        if fault.before:
            fault.before()
        if fault.hang_before_head:
            await self.release.wait()
            return web.Response(status=500)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            return await self._answer(request, name, fault)
        finally:
            self.active -= 1

    async def _answer(self, request: web.Request, name: str, fault: Fault) -> web.StreamResponse:
        if fault.location is not None:
            raise web.HTTPFound(fault.location)
        if fault.status is not None:
            return web.Response(status=fault.status, text="no", headers=fault.headers)
        served = self.files.get(name)
        if served is None:
            return web.Response(status=404)
        data = served.data if fault.body is None else fault.body
        headers = dict(fault.headers)
        if served.etag:
            headers["ETag"] = served.etag
        if served.last_modified:
            headers["Last-Modified"] = served.last_modified
        status, start = 200, 0
        rng = request.headers.get("Range")
        if rng and not fault.ignore_range:
            m = re.fullmatch(r"bytes=(\d+)-", rng)
            assert m, rng
            want = int(m.group(1))
            if_range = request.headers.get("If-Range")
            matches = if_range in (served.etag, served.last_modified) or fault.ignore_if_range
            if if_range is None or matches:
                if want >= len(data):
                    return web.Response(
                        status=416, headers={"Content-Range": f"bytes */{len(data)}"}
                    )
                status, start = 206, want
        body = data[start:]
        if status == 206:
            first = start + 7 if fault.bad_start else start
            headers["Content-Range"] = f"bytes {first}-{len(data) - 1}/{len(data)}"
        if fault.gzip:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        resp = web.StreamResponse(status=status, headers=headers)
        if fault.claim_length is not None:
            resp.content_length = fault.claim_length
            body = body[:1000]
        elif fault.chunked:
            resp.enable_chunked_encoding()
        else:
            resp.content_length = len(body)
        await resp.prepare(request)
        if fault.cut is not None:
            await self._send(resp, name, body[: fault.cut], fault.trickle)
            assert request.transport is not None
            request.transport.close()  # flushes what was written, then hangs up mid-body
            return resp
        if fault.stall_after is not None:
            await self._send(resp, name, body[: fault.stall_after], fault.trickle)
            await self.release.wait()
            return resp
        if fault.claim_length is not None:
            await self._send(resp, name, body, None)
            request.transport.close()  # type: ignore[union-attr]
            return resp
        await self._send(resp, name, body, fault.trickle)
        await resp.write_eof()
        return resp

    async def _send(self, resp: web.StreamResponse, name: str, body: bytes, piece: int | None):
        step = piece or 256 * 1024
        for i in range(0, len(body), step):
            chunk = body[i : i + step]
            await resp.write(chunk)
            self.sent[name] += len(chunk)
            if piece:
                await asyncio.sleep(0)


@pytest.fixture
async def cdn():
    fake = FakeCdn()
    server = TestServer(fake.app)
    await server.start_server()
    fake.base = str(server.make_url("")).rstrip("/")
    yield fake
    fake.release.set()
    await server.close()


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make(session, sleeps):
    def factory(**kw) -> Downloader:
        kw.setdefault("sleep", sleeps)
        kw.setdefault("rng", random.Random(7))
        kw.setdefault("read_timeout", 10.0)
        kw.setdefault("sinks", LocalSinks())
        return Downloader(session, **kw)

    return factory


def assert_finished(res: DownloadResult, dest: Path, data: bytes) -> None:
    assert res.path == dest
    assert dest.read_bytes() == data
    assert res.sha256 == sha(data) == hashlib.sha256(dest.read_bytes()).hexdigest()
    assert res.bytes == len(data)
    assert not part_path(dest).exists()
    assert not sidecar_path(dest).exists()


# ---- the good path --------------------------------------------------------------------------


async def test_plain_download(cdn, make, tmp_path):
    data = blob(3 * 1024 * 1024 + 17)
    url = cdn.add("a.mp4", data)
    dest = tmp_path / "out" / "a.mp4"  # the folder is created
    res = await make().fetch(url, dest)
    assert_finished(res, dest, data)
    assert res.fetched_bytes == len(data)
    assert res.etag == '"v1"'
    (req,) = cdn.requests("a.mp4")
    assert req["accept_encoding"] == "identity"
    assert req["range"] is None


async def test_chunked_body_without_content_length(cdn, make, tmp_path):
    data = blob(700_001)
    url = cdn.add("c.mp4", data, Fault(chunked=True))
    res = await make().fetch(url, tmp_path / "c.mp4")
    assert_finished(res, tmp_path / "c.mp4", data)


async def test_an_empty_file_is_not_a_video(cdn, make, tmp_path):
    url = cdn.add("e.mp4", b"")
    with pytest.raises(DownloadRejected) as caught:
        await make(max_attempts=2).fetch(url, tmp_path / "e.mp4")
    assert caught.value.code == "NOT_A_VIDEO"
    assert not (tmp_path / "e.mp4").exists() and not part_path(tmp_path / "e.mp4").exists()


async def test_existing_altered_final_file_is_replaced(cdn, make, tmp_path):
    data = blob(50_000)
    dest = tmp_path / "x.mp4"
    dest.write_bytes(b"tampered")
    assert not verify_existing(dest, sha(data), len(data))
    res = await make().fetch(cdn.add("x.mp4", data), dest)
    assert_finished(res, dest, data)
    assert verify_existing(dest, res.sha256, res.bytes)


# ---- cuts and resume ------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 65_536, 300_000, 1_048_576])
async def test_cut_bodies_are_resumed_with_range(cdn, make, tmp_path, cut):
    data = blob(4 * cut + 1_000_003, seed=cut)
    url = cdn.add("r.mp4", data, *[Fault(cut=cut) for _ in range(4)])
    res = await make().fetch(url, tmp_path / "r.mp4")
    assert_finished(res, tmp_path / "r.mp4", data)
    # every byte that arrived was kept: nothing crossed the network twice
    assert res.fetched_bytes == len(data)
    assert cdn.sent["r.mp4"] == len(data)
    reqs = cdn.requests("r.mp4")
    assert len(reqs) == 5
    assert reqs[0]["range"] is None
    for i, req in enumerate(reqs[1:], start=1):
        assert req["range"] == f"bytes={cut * i}-"
        assert req["if_range"] == '"v1"'


async def test_many_small_cuts_keep_going_while_progressing(cdn, make, tmp_path, sleeps):
    # 12 cuts is more than max_attempts (6): progress resets the failure count
    data = blob(1_300_000)
    url = cdn.add("m.mp4", data, *[Fault(cut=100_000) for _ in range(12)])
    res = await make(max_attempts=6).fetch(url, tmp_path / "m.mp4")
    assert_finished(res, tmp_path / "m.mp4", data)
    assert res.fetched_bytes == len(data)
    assert len(sleeps.delays) == 12


async def test_a_new_process_resumes_from_the_sidecar(cdn, session, tmp_path, sleeps):
    data = blob(1_000_000)
    url = cdn.add("p.mp4", data, Fault(cut=400_000))
    dest = tmp_path / "p.mp4"
    first = Downloader(session, sinks=LocalSinks(), max_attempts=1, sleep=sleeps)
    with pytest.raises(DownloadTransient):
        await first.fetch(url, dest)
    assert not dest.exists()  # a short body is never promoted
    assert part_path(dest).stat().st_size == 400_000
    side = json.loads(sidecar_path(dest).read_text())
    assert side["url"] == url and side["etag"] == '"v1"' and side["total"] == len(data)

    async with aiohttp.ClientSession() as other:  # as if in another process
        res = await Downloader(other, sinks=LocalSinks(), sleep=sleeps).fetch(url, dest)
    assert_finished(res, dest, data)
    assert res.fetched_bytes == len(data) - 400_000
    assert cdn.requests("p.mp4")[-1]["range"] == "bytes=400000-"


async def test_sidecar_for_another_url_is_not_trusted(cdn, make, tmp_path):
    data = blob(200_000)
    url = cdn.add("s.mp4", data)
    dest = tmp_path / "s.mp4"
    part_path(dest).write_bytes(b"x" * 5000)
    sidecar_path(dest).write_text(
        json.dumps(
            {"version": 1, "url": url + "?old", "etag": '"v1"', "last_modified": None, "total": 1}
        )
    )
    res = await make().fetch(url, dest)
    assert_finished(res, dest, data)
    assert cdn.requests("s.mp4")[0]["range"] is None


async def test_corrupt_sidecar_means_start_over(cdn, make, tmp_path):
    data = blob(200_000)
    url = cdn.add("s.mp4", data)
    dest = tmp_path / "s.mp4"
    part_path(dest).write_bytes(b"junk")
    sidecar_path(dest).write_text("{not json")
    res = await make().fetch(url, dest)
    assert_finished(res, dest, data)


async def test_range_ignored_starts_over(cdn, make, tmp_path):
    data = blob(900_000)
    url = cdn.add("i.mp4", data, Fault(cut=300_000), Fault(ignore_range=True))
    res = await make().fetch(url, tmp_path / "i.mp4")
    assert_finished(res, tmp_path / "i.mp4", data)
    assert res.fetched_bytes == 300_000 + len(data)
    assert cdn.requests("i.mp4")[1]["range"] == "bytes=300000-"


async def test_file_changed_between_attempts_if_range_gives_200(cdn, make, tmp_path):
    v1, v2 = blob(800_000, seed=1), blob(750_000, seed=2)

    def change() -> None:
        cdn.files["v.mp4"].data, cdn.files["v.mp4"].etag = v2, '"v2"'

    url = cdn.add("v.mp4", v1, Fault(cut=500_000), Fault(before=change))
    res = await make().fetch(url, tmp_path / "v.mp4")
    assert_finished(res, tmp_path / "v.mp4", v2)  # never a v1 prefix glued to v2
    assert res.etag == '"v2"'


async def test_file_changed_and_server_ignores_if_range(cdn, make, tmp_path):
    # a broken CDN honours Range but not If-Range: the new ETag on the 206 gives it away
    v1, v2 = blob(800_000, seed=1), blob(800_000, seed=2)

    def change() -> None:
        cdn.files["w.mp4"].data, cdn.files["w.mp4"].etag = v2, '"v2"'

    url = cdn.add("w.mp4", v1, Fault(cut=500_000), Fault(before=change, ignore_if_range=True))
    res = await make().fetch(url, tmp_path / "w.mp4")
    assert_finished(res, tmp_path / "w.mp4", v2)
    assert cdn.requests("w.mp4")[-1]["range"] is None


async def test_last_modified_is_the_validator_without_strong_etag(cdn, make, tmp_path):
    data = blob(600_000)
    lm = "Wed, 21 Oct 2015 07:28:00 GMT"
    url = cdn.add("l.mp4", data, Fault(cut=200_000), etag='W/"weak"', last_modified=lm)
    res = await make().fetch(url, tmp_path / "l.mp4")
    assert_finished(res, tmp_path / "l.mp4", data)
    assert cdn.requests("l.mp4")[1]["if_range"] == lm
    assert res.fetched_bytes == len(data)


async def test_no_validator_means_no_blind_resume(cdn, make, tmp_path):
    data = blob(600_000)
    url = cdn.add("n.mp4", data, Fault(cut=200_000), etag=None)
    res = await make().fetch(url, tmp_path / "n.mp4")
    assert_finished(res, tmp_path / "n.mp4", data)
    assert cdn.requests("n.mp4")[1]["range"] is None


async def test_206_with_wrong_start_starts_over(cdn, make, tmp_path):
    data = blob(600_000)
    url = cdn.add("b.mp4", data, Fault(cut=200_000), Fault(bad_start=True))
    res = await make().fetch(url, tmp_path / "b.mp4")
    assert_finished(res, tmp_path / "b.mp4", data)
    assert [r["range"] for r in cdn.requests("b.mp4")] == [None, "bytes=200000-", None]


async def test_416_starts_over(cdn, make, tmp_path):
    data = blob(300_000)
    url = cdn.add("q.mp4", data)
    dest = tmp_path / "q.mp4"
    part_path(dest).write_bytes(blob(400_000, seed=9))  # bigger than the file: stale
    sidecar_path(dest).write_text(
        json.dumps({"version": 1, "url": url, "etag": '"v1"', "last_modified": None, "total": None})
    )
    res = await make().fetch(url, dest)
    assert_finished(res, dest, data)
    assert [r["range"] for r in cdn.requests("q.mp4")] == ["bytes=400000-", None]


async def test_trickle_completes(cdn, make, tmp_path):
    data = blob(200_000)
    url = cdn.add("t.mp4", data, Fault(trickle=1500))
    res = await make().fetch(url, tmp_path / "t.mp4")
    assert_finished(res, tmp_path / "t.mp4", data)


async def test_trickle_then_cut_resumes(cdn, make, tmp_path):
    data = blob(200_000)
    url = cdn.add("t.mp4", data, Fault(trickle=1000, cut=90_000))
    res = await make().fetch(url, tmp_path / "t.mp4")
    assert_finished(res, tmp_path / "t.mp4", data)
    assert res.fetched_bytes == len(data)


async def test_stalled_body_times_out_and_resumes(cdn, make, tmp_path):
    data = blob(500_000)
    url = cdn.add("z.mp4", data, Fault(stall_after=150_000))
    res = await make(read_timeout=1.0).fetch(url, tmp_path / "z.mp4")
    assert_finished(res, tmp_path / "z.mp4", data)
    assert res.fetched_bytes == len(data)
    assert (cdn.requests("z.mp4")[1]["range"] or "").startswith("bytes=")


async def test_a_stalled_small_body_times_out_and_resumes(cdn, make, tmp_path):
    """A body under one write batch is read in memory (_read_small): a stall there is caught
    too, and what arrived is kept for the resume."""
    data = blob(100_000)
    url = cdn.add("s.mp4", data, Fault(stall_after=30_000))
    res = await make(read_timeout=0.4).fetch(url, tmp_path / "s.mp4")
    assert_finished(res, tmp_path / "s.mp4", data)
    assert res.fetched_bytes == len(data)
    assert cdn.requests("s.mp4")[1]["range"] == "bytes=30000-"


async def test_an_answer_whose_head_never_comes_times_out_and_is_retried(cdn, make, tmp_path):
    data = blob(50_000)
    url = cdn.add("h.mp4", data, Fault(hang_before_head=True))
    res = await make(read_timeout=0.4).fetch(url, tmp_path / "h.mp4")
    assert_finished(res, tmp_path / "h.mp4", data)
    assert len(cdn.requests("h.mp4")) == 2


async def test_a_body_that_always_ends_early_is_never_promoted(cdn, make, tmp_path, sleeps):
    data = blob(300_000)
    url = cdn.add("k.mp4", data, *[Fault(cut=0) for _ in range(10)])
    dest = tmp_path / "k.mp4"
    with pytest.raises(DownloadTransient, match="connection lost"):
        await make(max_attempts=4).fetch(url, dest)
    assert not dest.exists()
    assert len(cdn.requests("k.mp4")) == 4
    assert len(sleeps.delays) == 3
    assert all(0 < d <= 30 for d in sleeps.delays)


# ---- statuses -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [403, 404, 410])
async def test_expired_url(cdn, make, tmp_path, status):
    url = cdn.add("x.mp4", blob(10), Fault(status=status))
    dest = tmp_path / "x.mp4"
    part_path(dest).write_bytes(b"old")
    with pytest.raises(DownloadExpired, match=rf"{status}.*15 days") as info:
        await make().fetch(url + "?token=secret", dest)
    assert "secret" not in str(info.value)  # signed query strings stay out of messages
    assert not dest.exists() and not part_path(dest).exists()
    assert len(cdn.requests("x.mp4")) == 1  # not retried


async def test_server_errors_are_retried_with_backoff_and_retry_after(cdn, make, tmp_path, sleeps):
    data = blob(100_000)
    url = cdn.add(
        "r.mp4",
        data,
        Fault(status=503),
        Fault(status=429, headers={"Retry-After": "7"}),
        Fault(status=500),
    )
    res = await make(backoff=(0.5, 30.0)).fetch(url, tmp_path / "r.mp4")
    assert_finished(res, tmp_path / "r.mp4", data)
    # The run's one backoff (core/policy.py: full jitter under base * 2**n), with Retry-After
    # as a floor: 0-0.5 s, then at least the server's 7 s, then 0-2 s.
    assert len(sleeps.delays) == 3
    assert 0 <= sleeps.delays[0] <= 0.5
    assert sleeps.delays[1] >= 7
    assert 0 <= sleeps.delays[2] <= 2.0


async def test_persistent_server_error_gives_up(cdn, make, tmp_path):
    url = cdn.add("r.mp4", blob(10), *[Fault(status=502) for _ in range(10)])
    with pytest.raises(DownloadTransient, match="HTTP 502"):
        await make(max_attempts=3).fetch(url, tmp_path / "r.mp4")
    assert len(cdn.requests("r.mp4")) == 3


async def test_unexpected_status_is_a_permanent_error(cdn, make, tmp_path):
    url = cdn.add("r.mp4", blob(10), Fault(status=400))
    with pytest.raises(DownloadError) as info:
        await make().fetch(url, tmp_path / "r.mp4")
    assert type(info.value) is DownloadError


async def test_connection_refused_is_transient(make, tmp_path, sleeps):
    with pytest.raises(DownloadTransient):
        await make(max_attempts=2).fetch("http://127.0.0.1:9/x.mp4", tmp_path / "x.mp4")
    assert len(sleeps.delays) == 1


# ---- size cap -------------------------------------------------------------------------------


async def test_huge_content_length_is_refused_before_reading(cdn, make, tmp_path):
    url = cdn.add("h.mp4", blob(5000), Fault(claim_length=50 * 1024**3))
    dest = tmp_path / "h.mp4"
    with pytest.raises(DownloadTooLarge, match="size cap"):
        await make(max_bytes=1024**3).fetch(url, dest)
    assert not dest.exists() and not part_path(dest).exists()
    assert not sidecar_path(dest).exists()


async def test_chunked_body_over_the_cap_is_cut_and_deleted(cdn, make, tmp_path):
    url = cdn.add("h.mp4", blob(3_000_000), Fault(chunked=True))
    dest = tmp_path / "h.mp4"
    with pytest.raises(DownloadTooLarge):
        await make(max_bytes=1_000_000).fetch(url, dest)
    assert not dest.exists() and not part_path(dest).exists()


async def test_file_exactly_at_the_cap_is_fine(cdn, make, tmp_path):
    data = blob(1_000_000)
    res = await make(max_bytes=1_000_000).fetch(cdn.add("h.mp4", data), tmp_path / "h.mp4")
    assert_finished(res, tmp_path / "h.mp4", data)


# ---- redirects and URLs ---------------------------------------------------------------------


async def test_redirect_is_followed(cdn, make, tmp_path):
    data = blob(100_000)
    cdn.add("real.mp4", data)
    url = cdn.add("r.mp4", b"", Fault(location="/f/real.mp4"))
    res = await make().fetch(url, tmp_path / "r.mp4")
    assert_finished(res, tmp_path / "r.mp4", data)


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://example.com/x", "http://u:p@h/x"])
async def test_redirect_to_an_unsafe_url_is_refused(cdn, make, tmp_path, target):
    url = cdn.add("r.mp4", b"", Fault(location=target))
    with pytest.raises(UnsafeUrl):
        await make().fetch(url, tmp_path / "r.mp4")


async def test_redirect_loop_stops(cdn, make, tmp_path):
    url = cdn.add("loop.mp4", b"", *[Fault(location="/f/loop.mp4") for _ in range(20)])
    with pytest.raises(DownloadError, match="redirects"):
        await make().fetch(url, tmp_path / "r.mp4")
    assert len(cdn.requests("loop.mp4")) == 6


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "http://user:pw@example.com/a.mp4", "gopher://x/", "/relative"]
)
async def test_unsafe_urls_are_refused_before_any_request(cdn, make, tmp_path, url):
    with pytest.raises(UnsafeUrl):
        await make().fetch(url, tmp_path / "x.mp4")
    assert cdn.log == []


# ---- the disk -------------------------------------------------------------------------------


def _fail_writes_after(monkeypatch, budget: int, err: int = errno.ENOSPC) -> dict[str, int]:
    """Make aiofiles writes fail once `budget` bytes have been written (a partial write lands
    first, as on a real full disk)."""
    real_open = aiofiles.open
    state = {"written": 0}

    async def fake_open(*args, **kwargs):
        f = await real_open(*args, **kwargs)
        real_write = f.write

        async def write(data):
            room = budget - state["written"]
            if len(data) > room:
                if room > 0:
                    await real_write(bytes(data[:room]))
                    await f.flush()
                state["written"] = budget
                raise OSError(err, os.strerror(err))
            state["written"] += len(data)
            return await real_write(data)

        async def writelines(chunks):
            for chunk in chunks:
                await write(chunk)

        f.write = write
        f.writelines = writelines
        return f

    monkeypatch.setattr(sink_mod.aiofiles, "open", fake_open)
    return state


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EDQUOT])
async def test_full_disk_stops_cleanly_and_a_later_run_resumes(
    cdn, session, make, tmp_path, monkeypatch, err
):
    data = blob(3_000_000)
    url = cdn.add("d.mp4", data)
    dest = tmp_path / "d.mp4"
    dest_before = b"previous complete file"
    dest.write_bytes(dest_before)
    _fail_writes_after(monkeypatch, 1_500_000, err)
    with pytest.raises(DiskFull) as info:
        await make().fetch(url, dest)
    assert info.value.exit_code == 75
    assert dest.read_bytes() == dest_before  # untouched
    kept = part_path(dest).stat().st_size
    assert 0 < kept <= 1_500_000
    assert part_path(dest).read_bytes() == data[:kept]  # what is kept is a true prefix

    monkeypatch.undo()
    res = await make().fetch(url, dest)
    assert_finished(res, dest, data)
    assert res.fetched_bytes == len(data) - kept


@pytest.mark.parametrize("err", [errno.EROFS, errno.EACCES])
async def test_read_only_output_folder_is_disk_full(cdn, make, tmp_path, monkeypatch, err):
    url = cdn.add("ro.mp4", blob(1000))

    def refuse(path, flags):
        raise OSError(err, os.strerror(err), path)

    for module in (sink_mod, files_mod):  # the streaming and the small-file paths
        monkeypatch.setattr(module, "_nofollow_opener", refuse)
    with pytest.raises(DiskFull, match="writable"):
        await make().fetch(url, tmp_path / "ro.mp4")
    assert not (tmp_path / "ro.mp4").exists()


async def test_unwritable_output_folder_on_mkdir(cdn, make, tmp_path, monkeypatch):
    url = cdn.add("ro.mp4", blob(1000))

    def refuse(self, *a, **kw):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(DiskFull):
        await make().fetch(url, tmp_path / "sub" / "ro.mp4")
    assert cdn.log == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod")
async def test_really_read_only_folder(cdn, make, tmp_path):  # pragma: no cover - non-root only
    url = cdn.add("ro.mp4", blob(1000))
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        with pytest.raises(DiskFull):
            await make().fetch(url, out / "ro.mp4")
    finally:
        out.chmod(0o700)


async def test_part_symlink_is_not_followed(cdn, make, tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    dest = tmp_path / "s.mp4"
    part_path(dest).symlink_to(victim)
    with pytest.raises(DownloadError):
        await make().fetch(cdn.add("s.mp4", blob(1000)), dest)
    assert victim.read_bytes() == b"precious"


# ---- concurrency and verification -----------------------------------------------------------


async def test_concurrency_is_bounded(cdn, make, tmp_path):
    datas = {f"c{i}.mp4": blob(300_000, seed=i) for i in range(6)}
    urls = {n: cdn.add(n, d, Fault(trickle=16_384)) for n, d in datas.items()}
    dl = make(concurrency=2)
    results = await asyncio.gather(*(dl.fetch(urls[n], tmp_path / n) for n in datas))
    for res, (n, d) in zip(results, datas.items(), strict=True):
        assert_finished(res, tmp_path / n, d)
    assert 1 <= cdn.max_active <= 2
    assert "active=0/2" in repr(dl)


def test_verify_existing(tmp_path):
    data = blob(3 * 1024 * 1024 + 5)
    f = tmp_path / "v.mp4"
    f.write_bytes(data)
    assert verify_existing(f, sha(data), len(data))
    assert verify_existing(f, sha(data).upper(), len(data))
    assert not verify_existing(f, sha(data), len(data) + 1)
    assert not verify_existing(f, sha(b"other"), len(data))
    assert not verify_existing(tmp_path / "missing.mp4", sha(data), len(data))
    assert not verify_existing(tmp_path, sha(data), len(data))
    link = tmp_path / "link.mp4"
    link.symlink_to(f)
    assert not verify_existing(link, sha(data), len(data))
    f.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, one bit flipped
    assert not verify_existing(f, sha(data), len(data))


# ---- any sequence of faults ends in the right file ----------------------------------------

_fault_kinds = st.one_of(
    st.builds(lambda k: Fault(cut=k), st.integers(0, 400_000)),
    st.just(Fault(ignore_range=True)),
    st.just(Fault(status=503)),
    st.just(Fault(bad_start=True)),
    st.just(Fault(chunked=True)),
    st.builds(lambda k: Fault(cut=k, chunked=True), st.integers(0, 400_000)),
    st.just("change"),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=st.lists(_fault_kinds, max_size=6), size=st.integers(32, 700_000))
def test_any_fault_sequence_ends_in_the_current_file(plan, size, tmp_path_factory):
    async def scenario() -> None:
        cdn = FakeCdn()
        server = TestServer(cdn.app)
        await server.start_server()
        cdn.base = str(server.make_url("")).rstrip("/")
        versions = [blob(size, seed=1)]

        def change() -> None:
            versions.append(blob(size + len(versions), seed=len(versions) + 1))
            cdn.files["p.mp4"].data = versions[-1]
            cdn.files["p.mp4"].etag = f'"v{len(versions)}"'

        faults = [Fault(before=change) if f == "change" else f for f in plan]
        url = cdn.add("p.mp4", versions[0], *faults)
        dest = tmp_path_factory.mktemp("prop") / "p.mp4"
        try:
            async with aiohttp.ClientSession() as session:
                dl = Downloader(
                    session, sinks=LocalSinks(), max_attempts=len(plan) + 2, sleep=Sleeps()
                )
                res = await dl.fetch(url, dest)
        finally:
            cdn.release.set()
            await server.close()
        assert_finished(res, dest, versions[-1])
        wasted = sum(len(v) for v in versions[:-1]) + sum(
            f.cut for f in plan if isinstance(f, Fault) and f.cut is not None
        )
        assert len(versions[-1]) <= res.fetched_bytes <= len(versions[-1]) + wasted

    asyncio.run(scenario())


# ---- small files: one thread hop, no sidecar --------------------------------------------------


@pytest.fixture
def hops(monkeypatch) -> list[str]:
    """Names of the functions the downloader hands to worker threads."""
    seen: list[str] = []
    real = asyncio.to_thread

    async def spy(func, /, *args, **kwargs):
        seen.append(getattr(func, "__name__", repr(func)))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(sink_mod.asyncio, "to_thread", spy)
    return seen


@pytest.mark.parametrize("chunked", [False, True])
async def test_small_file_is_one_thread_hop_and_writes_no_sidecar(
    cdn, make, tmp_path, monkeypatch, hops, chunked
):
    sidecars: list[Path] = []
    monkeypatch.setattr(LocalSink, "_write_sidecar", staticmethod(lambda s, m: sidecars.append(s)))
    monkeypatch.setattr(sink_mod.aiofiles, "open", None)  # the streaming path is not taken
    data = blob(1800)
    dest = tmp_path / "out" / "s.mp4"
    res = await make().fetch(cdn.add("s.mp4", data, Fault(chunked=chunked)), dest)
    assert_finished(res, dest, data)
    assert hops == ["_write_small"]
    assert sidecars == []
    assert sorted(p.name for p in dest.parent.iterdir()) == ["s.mp4"]


@pytest.mark.parametrize("fault", [Fault(cut=900), Fault(claim_length=5000), Fault(cut=0)])
async def test_small_file_short_body_is_never_promoted(cdn, make, tmp_path, fault):
    data = blob(1800)
    url = cdn.add("s.mp4", data, fault)
    dest = tmp_path / "s.mp4"
    dest.write_bytes(b"previous complete file")
    with pytest.raises(DownloadTransient, match="connection lost"):
        await make(max_attempts=1).fetch(url, dest)
    assert dest.read_bytes() == b"previous complete file"  # untouched: atomic
    # what arrived is kept as a true prefix, with a sidecar so that the next run resumes it
    kept = part_path(dest).read_bytes()
    assert data.startswith(kept)
    assert json.loads(sidecar_path(dest).read_text())["url"] == url
    res = await make().fetch(url, dest)
    assert_finished(res, dest, data)  # and no sidecar is left behind
    if kept and not fault.claim_length:
        assert cdn.requests("s.mp4")[-1]["range"] == f"bytes={len(kept)}-"


async def test_small_file_cut_then_resumed_within_one_fetch(cdn, make, tmp_path):
    data = blob(200_000)
    url = cdn.add("s.mp4", data, Fault(cut=120_000), Fault(cut=50_000))
    res = await make().fetch(url, tmp_path / "s.mp4")
    assert_finished(res, tmp_path / "s.mp4", data)
    assert res.fetched_bytes == len(data)
    assert [r["range"] for r in cdn.requests("s.mp4")] == [None, "bytes=120000-", "bytes=170000-"]


async def test_small_file_removes_a_stale_sidecar_before_writing(cdn, make, tmp_path):
    data = blob(5000)
    url = cdn.add("s.mp4", data, etag=None)  # no validator: the sidecar cannot be used
    dest = tmp_path / "s.mp4"
    part_path(dest).write_bytes(b"old bytes of another version")
    sidecar_path(dest).write_text(
        json.dumps({"version": 1, "url": url, "etag": None, "last_modified": None, "total": 9})
    )
    res = await make().fetch(url, dest)
    assert_finished(res, dest, data)
    assert cdn.requests("s.mp4")[0]["range"] is None


async def test_chunked_body_longer_than_one_batch_is_streamed(cdn, make, tmp_path, hops):
    data = blob(2 * download_mod.WRITE_BUFFER + 12_345)
    res = await make().fetch(cdn.add("c.mp4", data, Fault(chunked=True)), tmp_path / "c.mp4")
    assert_finished(res, tmp_path / "c.mp4", data)
    assert "_write_small" not in hops


@pytest.mark.parametrize(
    ("step", "err", "kind"),
    [
        ("_write_all", errno.ENOSPC, DiskFull),
        ("_write_all", errno.EDQUOT, DiskFull),
        ("fsync", errno.EIO, DownloadError),
        ("fsync", errno.ENOSPC, DiskFull),
    ],
)
async def test_small_file_disk_errors_leave_the_old_file(
    cdn, make, tmp_path, monkeypatch, step, err, kind
):
    data = blob(1800)
    url = cdn.add("s.mp4", data)
    dest = tmp_path / "s.mp4"
    dest.write_bytes(b"previous complete file")

    def fail(fd, *rest):
        if step == "_write_all":
            os.write(fd, b"half")
        raise OSError(err, os.strerror(err))

    if step == "fsync":
        monkeypatch.setattr(files_mod.os, "fsync", fail)
    else:
        monkeypatch.setattr(files_mod, step, fail)
    with pytest.raises(kind) as info:
        await make().fetch(url, dest)
    assert type(info.value) is kind
    assert dest.read_bytes() == b"previous complete file"
    assert not part_path(dest).exists() and not sidecar_path(dest).exists()
    monkeypatch.undo()
    assert_finished(await make().fetch(url, dest), dest, data)


async def test_output_folder_removed_between_fetches_is_made_again(cdn, make, tmp_path):
    dl = make()
    out = tmp_path / "out"
    for name, size in (("a.mp4", 1800), ("b.mp4", 1800), ("c.mp4", 3_000_000)):
        data = blob(size)
        res = await dl.fetch(cdn.add(name, data), out / name)
        assert_finished(res, out / name, data)
        for p in out.iterdir():
            p.unlink()
        out.rmdir()


async def test_small_files_fsync_their_folder_after_the_rename_and_share_it(
    cdn, make, tmp_path, monkeypatch
):
    """A finished file must survive a power cut: its folder is fsynced after the rename and
    before fetch() returns. Files finishing together share one folder fsync (group commit)."""
    from batchgen.adapters import durability

    events: list[tuple[str, str]] = []
    real_replace, real_fsync_folder = files_mod.os.replace, durability.fsync_folder

    def replace(src, dst):
        real_replace(src, dst)
        events.append(("rename", Path(dst).name))

    def fsync_folder(path):
        real_fsync_folder(path)
        events.append(("folder-fsync", str(path)))

    monkeypatch.setattr(files_mod.os, "replace", replace)
    monkeypatch.setattr(sink_mod, "fsync_folder", fsync_folder)
    dl = make()
    out = tmp_path / "out"
    out.mkdir()
    datas = {f"f{i}.mp4": blob(1500 + i, seed=i) for i in range(40)}
    urls = {name: cdn.add(name, data) for name, data in datas.items()}

    async def one(name: str) -> None:
        res = await dl.fetch(urls[name], out / name)
        assert ("rename", name) in events
        last_rename = events.index(("rename", name))
        assert ("folder-fsync", str(out)) in events[last_rename:], "returned before the fsync"
        assert_finished(res, out / name, datas[name])

    await asyncio.gather(*(one(name) for name in datas))
    folder_fsyncs = events.count(("folder-fsync", str(out)))
    assert 1 <= folder_fsyncs < len(datas)


async def test_fetches_cancelled_mid_stream_resume_to_the_right_sha256(cdn, make, tmp_path):
    """A large body is written and hashed in one worker-thread call per buffer; a cancel can
    land while that call runs. Whatever the hasher had covered, the next fetch must resume from
    what is really on disk and end with the file's true sha256."""
    data = blob(9_000_000)
    url = cdn.add("c.mp4", data, *[Fault(trickle=64 * 1024) for _ in range(3)])
    dest = tmp_path / "c.mp4"
    dl = make()
    for attempt in range(3):
        task = asyncio.create_task(dl.fetch(url, dest))
        part = part_path(dest)
        while not task.done():  # until this attempt has put more bytes on disk
            await asyncio.sleep(0.001)
            if part.exists() and part.stat().st_size > (attempt + 1) * 2_000_000:
                break
        assert not task.done(), "the body arrived too fast to be cancelled midway"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    res = await dl.fetch(url, dest)
    assert_finished(res, dest, data)
    ranges = [r["range"] for r in cdn.requests("c.mp4")]
    assert ranges[0] is None and any(r for r in ranges[1:]), ranges  # it did resume


@pytest.mark.parametrize("err", [errno.EINVAL, errno.ENOTSUP])
async def test_a_folder_that_cannot_be_fsynced_does_not_fail_a_small_file(
    cdn, make, tmp_path, monkeypatch, err
):
    """Some network and FUSE file systems refuse fsync on a folder; the large-file path always
    shrugged that off, and the small-file path (its folder fsync shared by a group) must too."""
    real_fsync = os.fsync

    def fsync(fd):
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            raise OSError(err, os.strerror(err))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    data = blob(1800)
    res = await make().fetch(cdn.add("n.mp4", data), tmp_path / "n.mp4")
    assert_finished(res, tmp_path / "n.mp4", data)
