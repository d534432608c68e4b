"""Image preflight against a scripted image host on loopback (batchgen/inputs/preflight.py)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from batchgen import store as st
from batchgen.adapters import netguard
from batchgen.core import urls
from batchgen.core.policy import Backoff
from batchgen.inputs.preflight import Preflight
from batchgen.inputs.sniff import MAX_IMAGE_BYTES, size_warnings, sniff
from tests.imagekit import ImageHost, jpeg_header, png, webp_vp8x


@pytest.fixture
async def host() -> AsyncIterator[ImageHost]:
    async with ImageHost() as h:
        yield h


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def _no_sleep(_: float) -> None:
    return None


def preflight(session: aiohttp.ClientSession, **kw) -> Preflight:
    kw.setdefault("public_only", False)
    return Preflight(
        session,
        timeout_s=kw.pop("timeout_s", 5.0),
        backoff=Backoff(base=0.01, cap=0.02),
        rng=random.Random(1),
        sleep=kw.pop("sleep", _no_sleep),
        **kw,
    )


# -- pure: what the bytes are --------------------------------------------------------------


def _sized(head: bytes) -> tuple:
    found = sniff(head)
    return found.kind, found.width, found.height


def test_header_sizes_of_the_three_kinds() -> None:
    assert _sized(png(640, 360)) == ("png", 640, 360)
    assert _sized(jpeg_header(1920, 1080, exif=20_000)) == ("jpeg", 1920, 1080)
    assert _sized(webp_vp8x(800, 1200)) == ("webp", 800, 1200)


@pytest.mark.parametrize(
    ("head", "what"),
    [
        (b"GIF89a\x01\x00", "a GIF"),
        (b"\n  <!DOCTYPE html><html><body>Error</body></html>", "an HTML page"),
        (b"", "an empty body"),
        (b'{"error": "expired"}', "JSON"),
    ],
)
def test_other_bytes_are_named(head: bytes, what: str) -> None:
    found = sniff(head)
    assert found.kind is None and found.what == what


def test_kling_rules_are_warnings_that_say_so() -> None:
    assert size_warnings(1280, 720) == []
    small = size_warnings(200, 200)
    assert (
        len(small) == 1 and "300 px" in small[0] and "Kling rule, not stated by APIXO" in small[0]
    )
    assert "aspect ratio" in size_warnings(3000, 1000)[0]
    assert "aspect ratio" in size_warnings(1000, 3000)[0]
    assert size_warnings(2500, 1000) == []


# -- against the scripted host ---------------------------------------------------------------


async def test_a_good_image_costs_one_ranged_request(host: ImageHost, session) -> None:
    data = png(400, 300) + b"\x00" * 200_000  # bigger than the sniffed head
    url = host.file("a.png", data)
    check = await preflight(session).check(url)
    assert check.error is None
    assert (check.kind, check.size, check.width, check.height) == ("png", len(data), 400, 300)
    assert host.requests() == 1


async def test_each_distinct_url_is_fetched_once(host: ImageHost, session) -> None:
    url = host.file("a.png", png())
    pf = preflight(session)
    results = await asyncio.gather(*(pf.check(url) for _ in range(20)))
    assert all(r.error is None for r in results)
    assert host.requests("a.png") == 1


async def test_oversize_by_content_length(host: ImageHost, session) -> None:
    big = png() + b"\x00" * (MAX_IMAGE_BYTES + 1 - len(png()))
    url = host.file("big.png", big, ranges=False)  # a host that ignores Range: 200 + length
    check = await preflight(session).check(url)
    assert check.error is not None and "over the limit" in check.error


async def test_oversize_by_counting_the_body(host: ImageHost, session) -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()  # no Content-Length, ignores Range
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(png())
        for _ in range(11):
            await resp.write(b"\x00" * 1_000_000)
        return resp

    check = await preflight(session).check(host.serve("stream.png", chunked))
    assert check.error is not None and "over the limit" in check.error
    small_ok = await preflight(session).check(host.file("ok.png", png(), ranges=False))
    assert small_ok.error is None


async def test_wrong_magic_bytes(host: ImageHost, session) -> None:
    url = host.file("cat.jpg", b"GIF89a" + b"\x00" * 100, ctype="image/jpeg")
    check = await preflight(session).check(url)
    assert check.error == "not a JPG, PNG or WebP image: a GIF"


async def test_an_html_page_answered_with_200(host: ImageHost, session) -> None:
    async def page(request: web.Request) -> web.Response:
        return web.Response(
            text="<html><body>Please log in</body></html>", content_type="image/jpeg"
        )

    check = await preflight(session).check(host.serve("photo.jpg", page))
    assert check.error == "not a JPG, PNG or WebP image: an HTML page"


async def test_a_redirect_to_a_private_address_is_refused(
    host: ImageHost, session, monkeypatch
) -> None:
    """Loopback stands in for the public image host; the redirect leads to the cloud
    metadata address, which is never requested."""

    real = urls.is_public_address

    def public_but_loopback(address: str) -> bool:
        return address.strip("[]") in ("127.0.0.1", "::1") or real(address)

    monkeypatch.setattr(netguard, "is_public_address", public_but_loopback)
    monkeypatch.setattr(urls, "is_public_address", public_but_loopback)

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/iam")

    url = host.serve("img.png", moved).replace("127.0.0.1", "localhost")
    check = await preflight(session, public_only=True).check(url)
    assert check.error is not None
    assert "refused" in check.error and "private or local address" in check.error
    assert host.requests() == 1


async def test_a_slow_host_fails_after_its_retries(host: ImageHost, session) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(body=png())

    pf = preflight(session, timeout_s=0.2, max_attempts=2)
    check = await pf.check(host.serve("slow.png", slow))
    assert check.error == "unreachable after 2 tries: timed out"
    assert host.requests() == 2


async def test_404_is_not_retried(host: ImageHost, session) -> None:
    check = await preflight(session).check(host.url("missing.png"))
    assert check.error is not None and check.error.startswith("HTTP 404 from http://127.0.0.1")
    assert host.requests() == 1


async def test_503_then_success(host: ImageHost, session) -> None:
    calls = 0
    data = png()

    async def flaky(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return web.Response(status=503, text="busy")
        return web.Response(body=data)

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    check = await preflight(session, sleep=sleep).check(host.serve("f.png", flaky))
    assert check.error is None and check.kind == "png"
    assert calls == 2 and len(slept) == 1


async def test_a_passed_check_is_cached_in_the_state_file(
    host: ImageHost, session, tmp_path: Path
) -> None:
    url = host.file("a.png", png(200, 200))
    store = st.Store(tmp_path / "s.db")
    records = store.images
    first = await preflight(session, lookup=records.cached_check, save=records.save_check).check(
        url
    )
    assert first.error is None and first.warnings  # 200 px: a warning, kept with the check
    store.close()
    store = st.Store(tmp_path / "s.db")  # a later run on the same state file
    records = store.images
    pf = preflight(session, lookup=records.cached_check, save=records.save_check)
    again = await pf.check(url)
    store.close()
    assert again == first
    assert host.requests() == 1 and pf.stats.cached == 1 and pf.stats.requests == 0


async def test_a_failed_check_is_not_cached(host: ImageHost, session, tmp_path: Path) -> None:
    store = st.Store(tmp_path / "s.db")
    records = store.images
    url = host.url("later.png")
    assert (await preflight(session, save=records.save_check).check(url)).error
    assert records.cached_check(url) is None  # `retry` looks again once the image is there
    store.close()
