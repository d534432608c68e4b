"""What is saved must be the video: error pages, compressed bodies, cut MP4s and signed URLs
kept byte for byte, against the scripted CDN of test_download.py and a signing CDN."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import struct
import zlib
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from batchgen import store as st
from batchgen.adapters.download import attempt as download_mod
from batchgen.adapters.download.attempt import Downloader
from batchgen.adapters.download.codings import BadCoding, Decoder
from batchgen.adapters.download.video import (
    bmff_cut,
    describe_body,
    non_video_type,
    query_secrets,
    video_container,
)
from batchgen.adapters.sinks.localfs import part_path, sidecar_path
from batchgen.core.urls import exact_url
from batchgen.errors import DownloadRejected, UnsafeUrl
from batchgen.runner import execute
from batchgen.simulator import Simulator
from batchgen.simulator.files import asset_bytes
from tests import test_download as base
from tests.enginekit import KEY, SCALE, mixed_jobs, options, prepare_state
from tests.test_download import Fault, assert_finished, blob

cdn, make, session, sleeps = base.cdn, base.make, base.session, base.sleeps  # fixtures

pytestmark = pytest.mark.timeout(60)

HTML = (
    b"<HTML><HEAD>\n<TITLE>Access Denied</TITLE>\n</HEAD><BODY>\n<H1>Access Denied</H1>\n"
    b"You don't have permission to access this server.<P>\nReference #18.2f\n</BODY></HTML>\n"
)


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


# ---- the pure checks ------------------------------------------------------------------------

TS = (b"\x47" + bytes(187)) * 3
M2TS = (bytes(4) + b"\x47" + bytes(187)) * 3


@pytest.mark.parametrize(
    ("head", "container"),
    [
        (asset_bytes()[:512], "ISO-BMFF (MP4/MOV)"),
        (box(b"ftyp", b"qt  \x00\x00\x00\x00qt  "), "ISO-BMFF (MP4/MOV)"),
        (box(b"moov", bytes(100)), "ISO-BMFF (MP4/MOV)"),  # classic QuickTime, no ftyp
        (box(b"wide", b"") + box(b"mdat", bytes(50)), "ISO-BMFF (MP4/MOV)"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01webm", "Matroska/WebM"),
        (b"RIFF\x00\x10\x00\x00AVI LIST", "AVI"),
        (TS, "MPEG-TS"),
        (M2TS, "MPEG-TS (M2TS)"),
        (b"FLV\x01\x05\x00\x00\x00\x09", "FLV"),
        (b"OggS\x00\x02" + bytes(20), "Ogg"),
        (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11\xa6\xd9", "ASF/WMV"),
        (b"\x00\x00\x01\xba\x44\x00", "MPEG-PS"),
        (HTML, None),
        (b'{"code":403,"msg":"Access Denied"}', None),
        (b"<?xml version='1.0'?><Error><Code>AccessDenied</Code></Error>", None),
        (b"", None),
        (b"\x00\x00\x00", None),
        (b"Get free video hosting today, no sign-up", None),  # 'free' at bytes 4..8
        (b"Gateway Timeout" + bytes(200), None),  # one 'G' is not an MPEG-TS
        (b"RIFF\x00\x10\x00\x00WAVEfmt ", None),  # RIFF, but audio
        (b"\x89PNG\r\n\x1a\n", None),
        (blob(600), "ISO-BMFF (MP4/MOV)"),
    ],
)
def test_video_container_table(head: bytes, container: str | None) -> None:
    assert video_container(head) == container


@pytest.mark.parametrize(
    ("content_type", "refused"),
    [
        ("text/html", True),
        ("text/html; charset=UTF-8", True),
        ("TEXT/PLAIN", True),
        ("application/json", True),
        ("application/problem+json", True),
        ("application/xml", True),
        ("application/xhtml+xml", True),
        ("video/mp4", False),
        ("video/webm", False),
        ("application/octet-stream", False),
        ("binary/octet-stream", False),
        ("application/mp4", False),
        ("", False),
        (None, False),
    ],
)
def test_non_video_type_table(content_type: str | None, refused: bool) -> None:
    assert non_video_type(content_type) is refused


def test_describe_body_is_escaped_and_bounded() -> None:
    text = describe_body("text/html\r\nX-Evil: 1", b"<html>\x1b[31m\r\n\xff" + b"A" * 500)
    assert text.isascii() and text.isprintable()
    assert "\\x1b" in text and "\\r\\n" in text and "..." in text
    assert len(text) < 250


def test_describe_body_hides_a_signed_query_the_page_echoes() -> None:
    url = "https://cdn.example/v.mp4?exp=17&sig=Zm9vYmFy%2Bc2VjcmV0&kid=k1"
    page = b"<p>denied: /v.mp4?exp=17&sig=Zm9vYmFy%2Bc2VjcmV0&kid=k1 sig Zm9vYmFy+c2VjcmV0</p>"
    text = describe_body("text/html", page, limit=200, hide=query_secrets(url))
    assert "Zm9vYmFy" not in text and "denied" in text


def _mp4(mdat: int) -> bytes:
    return (
        box(b"ftyp", b"isom\x00\x00\x02\x00isom")
        + box(b"moov", bytes(40))
        + box(b"mdat", bytes(mdat))
    )


@pytest.mark.parametrize(
    ("data", "cut"),
    [
        (asset_bytes(), False),
        (asset_bytes()[:-1], True),  # the mdat at the end lost one byte
        (asset_bytes()[:900], True),  # cut inside moov
        (_mp4(5000), False),
        (_mp4(5000)[:-4000], True),
        (_mp4(10) + b"\x00\x00\x00", False),  # a tail too short for a header: not judged
        (_mp4(10) + struct.pack(">I", 0) + b"mdat" + bytes(99), False),  # size 0: to the end
        (_mp4(10) + struct.pack(">I", 1) + b"mdat" + struct.pack(">Q", 16 + 64) + bytes(64), False),
        (_mp4(10) + struct.pack(">I", 1) + b"mdat" + struct.pack(">Q", 16 + 65) + bytes(64), True),
        (_mp4(10) + b"\xff\xff\xff\xffjunk" + bytes(30), False),  # unknown structure: not judged
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00" + b"\x00\x00\x00\x08free" + bytes(9), False),
        (b"\x1a\x45\xdf\xa3" + bytes(60), False),  # not ISO-BMFF at all
    ],
)
def test_bmff_cut_table(data: bytes, cut: bool) -> None:
    found = bmff_cut(len(data), lambda pos, n: data[pos : pos + n])
    assert (found is not None) is cut, found


def test_decoder_gzip_members_raw_deflate_and_a_cut() -> None:
    data = blob(3_000_000)
    cases = [
        ("gzip", gzip.compress(data[:1000]) + gzip.compress(data[1000:])),
        ("deflate", zlib.compress(data)),
        ("deflate", zlib.compress(data)[2:-4]),  # raw deflate, as some servers send it
    ]
    for coding, encoded in cases:
        dec = Decoder(coding)
        pieces = [p for i in range(0, len(encoded), 7000) for p in dec.feed(encoded[i : i + 7000])]
        assert max(map(len, pieces)) <= 1024 * 1024
        assert b"".join(pieces) + dec.finish() == data
    dec = Decoder("gzip")
    list(dec.feed(gzip.compress(data)[:-9]))
    with pytest.raises(BadCoding):
        dec.finish()


# ---- error pages ----------------------------------------------------------------------------


async def test_an_html_page_then_the_video_ends_with_the_video(cdn, make, tmp_path):
    data = blob(300_000)
    page = Fault(body=HTML, headers={"Content-Type": "text/html"})
    url = cdn.add("v.mp4", data, page, page)
    res = await make().fetch(url, tmp_path / "v.mp4")
    assert_finished(res, tmp_path / "v.mp4", data)
    assert len(cdn.requests("v.mp4")) == 3


@pytest.mark.parametrize("size", [300, 50_000, 3_000_000])
async def test_html_labelled_video_mp4_is_caught_by_its_signature(cdn, make, tmp_path, size):
    page = (HTML * (size // len(HTML) + 1))[:size]
    label = Fault(body=page, headers={"Content-Type": "video/mp4"})
    url = cdn.add("h.mp4", blob(1000), *[label] * 3)
    dest = tmp_path / "h.mp4"
    with pytest.raises(DownloadRejected) as caught:
        await make(max_attempts=3).fetch(url, dest)
    assert caught.value.code == "NOT_A_VIDEO"
    assert "Content-Type video/mp4" in str(caught.value) and "<HTML><HEAD>\\n<TITLE>" in str(
        caught.value
    )
    assert not dest.exists() and not part_path(dest).exists() and not sidecar_path(dest).exists()
    assert len(cdn.requests("h.mp4")) == 3


@pytest.mark.parametrize("size", [300, 50_000, 3_000_000])
@pytest.mark.parametrize("label", ["text/plain", "text/plain; charset=utf-8", "text/html", None])
async def test_a_real_video_mislabelled_as_text_is_taken(cdn, make, tmp_path, size, label):
    """The bytes decide: CDNs put text/plain (even text/html) on videos; an MP4 is still an
    MP4, while an error page is refused by its own first bytes (tests above)."""
    data = blob(size)
    headers = {"Content-Type": label} if label else {}
    url = cdn.add("m.mp4", data, *[Fault(headers=headers)] * 5)  # labelled so every time
    res = await make(max_attempts=3).fetch(url, tmp_path / "m.mp4")
    assert_finished(res, tmp_path / "m.mp4", data)
    assert len(cdn.requests("m.mp4")) == 1


@pytest.mark.parametrize(
    ("second", "ranges"),
    [
        (Fault(headers={"Content-Type": "text/plain"}), [None, "bytes=300000-"]),
        (
            Fault(ignore_range=True, headers={"Content-Type": "text/plain"}),
            [None, "bytes=300000-", None],
        ),
    ],
)
async def test_a_mislabelled_video_is_resumed_or_taken_whole(cdn, make, tmp_path, second, ranges):
    """After a cut, a text/plain 206 continues the checked part, and a text/plain 200 that
    holds the whole video is taken from zero: neither fails the download."""
    data = blob(900_000)
    url = cdn.add("c.mp4", data, Fault(cut=300_000, headers={"Content-Type": "text/plain"}), second)
    res = await make().fetch(url, tmp_path / "c.mp4")
    assert_finished(res, tmp_path / "c.mp4", data)
    assert [r["range"] for r in cdn.requests("c.mp4")] == ranges


async def test_a_large_html_page_is_not_read_to_its_end(cdn, make, tmp_path):
    page = HTML + b" " * (64 * 1024 * 1024)
    url = cdn.add("big.mp4", blob(1000), Fault(body=page, headers={"Content-Type": "text/html"}))
    with pytest.raises(DownloadRejected):
        await make(max_attempts=1).fetch(url, tmp_path / "big.mp4")
    assert cdn.sent["big.mp4"] < len(page) // 2


async def test_a_resumed_part_that_is_no_video_is_started_over(cdn, make, tmp_path):
    data = blob(900_000)
    url = cdn.add("p.mp4", data)
    dest = tmp_path / "p.mp4"
    part_path(dest).write_bytes(HTML * 1000)
    sidecar_path(dest).write_text(
        f'{{"version": 1, "url": "{url}", "etag": "\\"v1\\"", "last_modified": null, '
        '"total": 900000}'
    )
    res = await make().fetch(url, dest)
    assert_finished(res, dest, data)
    assert [r["range"] for r in cdn.requests("p.mp4")] == [None]


async def test_an_html_answer_to_a_resume_keeps_the_part(cdn, make, tmp_path):
    data = blob(900_000)
    page = Fault(body=HTML, ignore_range=True, headers={"Content-Type": "text/html; charset=utf-8"})
    url = cdn.add("r.mp4", data, Fault(cut=300_000), page)
    res = await make().fetch(url, tmp_path / "r.mp4")
    assert_finished(res, tmp_path / "r.mp4", data)
    assert [r["range"] for r in cdn.requests("r.mp4")] == [None, "bytes=300000-", "bytes=300000-"]


async def test_an_mp4_cut_cleanly_is_refused(cdn, make, tmp_path):
    # The server's length and the body agree, but the MP4's own boxes say it is cut.
    for size in (5000, 3_000_000):
        data = blob(size)[:-100]
        name = f"cut{size}.mp4"
        url = cdn.add(name, data)
        with pytest.raises(DownloadRejected) as caught:
            await make(max_attempts=2).fetch(url, tmp_path / name)
        assert caught.value.code == "VIDEO_TRUNCATED"
        assert not (tmp_path / name).exists() and not part_path(tmp_path / name).exists()


# ---- compressed bodies ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [40_000, 3_000_000])
@pytest.mark.parametrize("chunked", [False, True])
async def test_a_gzip_encoded_video_is_decoded(cdn, make, tmp_path, size, chunked):
    data = blob(size)
    url = cdn.add("g.mp4", data, Fault(gzip=True, chunked=chunked))
    res = await make().fetch(url, tmp_path / "g.mp4")
    assert_finished(res, tmp_path / "g.mp4", data)
    assert cdn.requests("g.mp4")[0]["accept_encoding"] == "identity"


async def test_identity_listed_beside_gzip_is_ignored(cdn, make, tmp_path):
    data = blob(40_000)
    coded = Fault(body=gzip.compress(data), headers={"Content-Encoding": "identity, gzip"})
    url = cdn.add("i.mp4", data, coded)
    res = await make().fetch(url, tmp_path / "i.mp4")
    assert_finished(res, tmp_path / "i.mp4", data)


async def test_a_gzip_answer_to_a_resume_starts_over_from_zero(cdn, make, tmp_path):
    data = blob(900_000)
    url = cdn.add("z.mp4", data, Fault(cut=300_000), Fault(gzip=True), Fault(gzip=True))
    res = await make().fetch(url, tmp_path / "z.mp4")
    assert_finished(res, tmp_path / "z.mp4", data)
    assert [r["range"] for r in cdn.requests("z.mp4")] == [None, "bytes=300000-", None]


async def test_a_corrupt_or_unknown_coding_fails_after_bounded_tries(cdn, make, tmp_path):
    data = blob(50_000)
    bad = gzip.compress(data)[:-20]
    url = cdn.add("c.mp4", data, *[Fault(body=bad, headers={"Content-Encoding": "gzip"})] * 9)
    with pytest.raises(DownloadRejected) as caught:
        await make(max_attempts=3).fetch(url, tmp_path / "c.mp4")
    assert caught.value.code == "UNDECODABLE_BODY"
    assert len(cdn.requests("c.mp4")) == 3
    url = cdn.add("b.mp4", data, *[Fault(headers={"Content-Encoding": "br"})] * 9)
    with pytest.raises(DownloadRejected, match="'br'-encoded") as caught:
        await make(max_attempts=3).fetch(url, tmp_path / "b.mp4")
    assert caught.value.code == "UNDECODABLE_BODY"
    assert len(cdn.requests("b.mp4")) == 3
    assert not list(tmp_path.iterdir())


async def test_a_gzip_bomb_stops_at_the_size_cap(cdn, make, tmp_path):
    from batchgen.errors import DownloadTooLarge

    data = blob(1000) + bytes(20_000_000)
    url = cdn.add("bomb.mp4", data, Fault(gzip=True))
    with pytest.raises(DownloadTooLarge):
        await make(max_bytes=5_000_000).fetch(url, tmp_path / "bomb.mp4")
    assert not list(tmp_path.iterdir())


# ---- signed URLs, kept byte for byte -----------------------------------------------------------

SECRET = b"edge-secret"


def sign(path: str, params: str) -> str:
    """An EdgeAuth-like token: HMAC over the exact bytes of path and query, as sent."""
    mac = hmac.new(SECRET, f"{path}?{params}".encode(), hashlib.sha256).hexdigest()
    return f"{path}?{params}&hmac={mac}"


class SigningCdn:
    """Answers only requests whose raw query carries a valid HMAC over its exact bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.seen: list[str] = []
        self.app = web.Application()
        self.app.router.add_get("/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = request.raw_path  # exactly as on the request line
        self.seen.append(raw)
        path, _, query = raw.partition("?")
        params, _, mac = query.rpartition("&hmac=")
        want = hmac.new(SECRET, f"{path}?{params}".encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(mac, want):
            return web.Response(status=403, text="bad signature")
        if path.startswith("/first/"):
            target = sign("/second/v%2Fw.mp4", "acl=%2Fsecond%2F%2A&by=a%40b&exp=1%3A2")
            # (web.HTTPFound would pass the Location through yarl and decode it)
            return web.Response(status=302, headers={"Location": target})
        return web.Response(body=self.data, content_type="video/mp4")


async def test_signed_urls_and_their_redirects_are_sent_byte_for_byte(make, tmp_path):
    data = blob(200_000)
    signing = SigningCdn(data)
    server = TestServer(signing.app)
    await server.start_server()
    try:
        base = str(server.make_url("")).rstrip("/")
        first = sign("/first/a.mp4", "token=exp%3D9%7Eacl%3D%2Ffirst%2F%2A%7Eid%3Du%40x&x=%2A")
        res = await make().fetch(base + first, tmp_path / "s.mp4")
    finally:
        await server.close()
    assert_finished(res, tmp_path / "s.mp4", data)
    assert signing.seen[0] == first
    assert signing.seen[1].startswith("/second/v%2Fw.mp4?acl=%2Fsecond%2F%2A&by=a%40b&exp=1%3A2")
    assert len(signing.seen) == 2


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.example/a b.mp4",
        "https://cdn.example/a.mp4?x=\r\nHost: evil",
        "https://user:pw@cdn.example/a.mp4",
        "https://evil.example\\@cdn.example/a.mp4",
        "https://cdn.example\x00.evil/a.mp4",
        "ftp://cdn.example/a.mp4",
        "/relative/a.mp4",
    ],
)
def test_exact_urls_still_refuse_what_is_unsafe(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        exact_url(url)


@pytest.mark.parametrize(
    ("url", "host", "path_qs"),
    [
        (
            "https://cdn.example/v/a%2Fb.mp4?t=%2F%3A%40%2A%7E",
            "cdn.example",
            "/v/a%2Fb.mp4?t=%2F%3A%40%2A%7E",
        ),
        ("https://CDN.Example:8443/x?%40evil.example", "cdn.example", "/x?%40evil.example"),
        ("https://cdn.example/%2F%2Fevil.example/x#frag", "cdn.example", "/%2F%2Fevil.example/x"),
        ("https://cdn.example/é.mp4?q=ü", "cdn.example", f"/{quote('é')}.mp4?q={quote('ü')}"),
        ("http://127.0.0.1:8080/a?s=%2F", "127.0.0.1", "/a?s=%2F"),
    ],
)
def test_exact_urls_keep_the_bytes_and_the_host(url: str, host: str, path_qs: str) -> None:
    exact = exact_url(url)
    assert exact.host == host and exact.raw_path_qs == path_qs


# ---- through the engine -----------------------------------------------------------------------


async def test_the_engine_takes_the_video_after_error_pages_and_fails_a_job_that_only_gets_pages(
    cdn, tmp_path, monkeypatch
):
    """The simulator's API, with every result fetched from the scripted CDN instead."""
    state = prepare_state(tmp_path, mixed_jobs(2))
    video = blob(300_000)
    page = Fault(body=HTML, headers={"Content-Type": "text/html"})
    cdn.add("job-0000", video, page, page)  # two error pages, then the video
    cdn.add("job-0001", video, *[page] * 100)  # only error pages
    real = Downloader.fetch

    async def via_cdn(self, url, dest):
        return await real(self, cdn.url(Path(dest).stem), dest)

    monkeypatch.setattr(Downloader, "fetch", via_cdn)
    monkeypatch.setattr(download_mod, "backoff_delay", lambda *a: 0.0)  # quick retries
    async with Simulator(api_keys=frozenset({KEY}), time_scale=SCALE, seed=5) as s:
        outcome = await execute(options(tmp_path, s.base_url))
    store = st.Store(state, readonly=True)
    rows = {
        r[0]: r[1:]
        for r in store.db.execute("SELECT id, state, fail_code, fail_msg FROM jobs ORDER BY seq")
    }
    store.close()
    assert outcome.exit_code == 1, outcome
    assert rows["job-0000"][0] == st.DONE
    assert (tmp_path / "out" / "job-0000.mp4").read_bytes() == video
    state1, code, msg = rows["job-0001"]
    assert (state1, code) == (st.FAILED, "NOT_A_VIDEO")
    assert "Content-Type text/html" in msg and "Access Denied" in msg and "?" not in msg
    assert not (tmp_path / "out" / "job-0001.mp4").exists()
    assert 2 < len(cdn.requests("job-0001")) < 100  # retried, and bounded
