"""Result files: full downloads verify, Range answers are byte-exact, and the file faults."""

from __future__ import annotations

import asyncio
import hashlib
import json

import aiohttp
import pytest

from tests.conftest import AUTH, make_body


async def finished(sim, http, prompt="a lake", results=1) -> tuple[str, list[str]]:
    """Submit, wait for success, return (task_id, result URLs)."""
    async with http.post(
        f"{sim.base_url}/generateTask/kling-2-1", json=make_body(prompt), headers=AUTH
    ) as r:
        task_id = (await r.json())["data"]["taskId"]
    await asyncio.sleep(sim.task(task_id).end_s + 0.01)
    async with http.get(
        f"{sim.base_url}/statusTask/kling-2-1", params={"taskId": task_id}, headers=AUTH
    ) as r:
        data = (await r.json())["data"]
    assert data["state"] == "success"
    urls = json.loads(data["resultJson"])["resultUrls"]
    assert len(urls) == results
    return task_id, urls


async def get(http, url, **headers):
    async with http.get(url, headers=headers) as r:
        return r.status, r.headers, await r.read()


async def test_full_download_matches_expected_sha256(sim, http):
    task_id, urls = await finished(sim, http, "x [sim:two_results]", results=2)
    for i, url in enumerate(urls):
        code, headers, body = await get(http, url)
        assert code == 200 and headers["Content-Type"] == "video/mp4"
        assert hashlib.sha256(body).hexdigest() == sim.expected_sha256(task_id, i)
        assert body == sim.expected_bytes(task_id, i)
        assert headers["ETag"] == f'"{sim.expected_sha256(task_id, i)}"'
        assert headers["Accept-Ranges"] == "bytes" and "Last-Modified" in headers
        assert int(headers["Content-Length"]) == len(body)
        assert "/cdn/" in url and task_id not in url  # an unguessable token, not the id
    assert sim.expected_sha256(task_id, 0) != sim.expected_sha256(task_id, 1)


async def test_files_need_no_key_and_skip_the_rate_window(make_sim, http):
    sim = await make_sim(time_scale=0.001, rate_limit=2, rate_period_s=100_000)
    _, urls = await finished(sim, http)  # uses both API requests of the window
    for _ in range(5):
        assert (await get(http, urls[0]))[0] == 200


@pytest.mark.parametrize("size", [None, 200_000])
async def test_range_answers_are_byte_exact(make_sim, http, size):
    sim = await make_sim(time_scale=0.001, result_size=size)
    task_id, (url,) = await finished(sim, http)
    full = sim.expected_bytes(task_id)
    n = len(full)
    assert size is None or n == size
    for rng, (a, b) in {
        f"bytes={n // 2}-": (n // 2, n),
        "bytes=10-99": (10, 100),
        "bytes=-7": (n - 7, n),
        f"bytes=0-{n + 50}": (0, n),
    }.items():
        code, headers, body = await get(http, url, Range=rng)
        assert code == 206 and body == full[a:b]
        assert headers["Content-Range"] == f"bytes {a}-{b - 1}/{n}"
        assert headers["ETag"] == f'"{sim.expected_sha256(task_id)}"'
    code, headers, _ = await get(http, url, Range=f"bytes={n}-")
    assert code == 416 and headers["Content-Range"] == f"bytes */{n}"


async def test_if_range_mismatch_sends_the_whole_file(sim, http):
    task_id, (url,) = await finished(sim, http)
    etag = f'"{sim.expected_sha256(task_id)}"'
    code, _, body = await get(http, url, Range="bytes=5-", **{"If-Range": etag})
    assert code == 206 and len(body) == len(sim.expected_bytes(task_id)) - 5
    code, _, body = await get(http, url, Range="bytes=5-", **{"If-Range": '"stale"'})
    assert code == 200 and body == sim.expected_bytes(task_id)


async def test_bump_file_version_changes_bytes_and_etag(sim, http):
    task_id, (url,) = await finished(sim, http)
    _, h1, b1 = await get(http, url)
    sim.bump_file_version(task_id)
    code, h2, b2 = await get(http, url, Range="bytes=3-", **{"If-Range": h1["ETag"]})
    assert code == 200 and h2["ETag"] != h1["ETag"] and b2 != b1
    assert hashlib.sha256(b2).hexdigest() == sim.expected_sha256(task_id)


async def test_head(sim, http):
    task_id, (url,) = await finished(sim, http)
    async with http.head(url) as r:
        assert r.status == 200
        assert int(r.headers["Content-Length"]) == len(sim.expected_bytes(task_id))


async def test_ignore_range_fault(sim, http):
    task_id, (url,) = await finished(sim, http)
    sim.set_faults(p_file_ignore_range=1.0)
    code, headers, body = await get(http, url, Range="bytes=100-")
    assert code == 200 and "Content-Range" not in headers
    assert body == sim.expected_bytes(task_id)


async def test_cut_fault_sends_a_short_body(make_sim, http):
    sim = await make_sim(time_scale=0.001, result_size=500_000)
    task_id, (url,) = await finished(sim, http)
    sim.set_faults(p_file_cut=1.0)
    received = b""
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.get(url) as r:
            assert int(r.headers["Content-Length"]) == 500_000
            async for chunk in r.content.iter_any():
                received += chunk
    assert 0 < len(received) < 500_000
    assert received == sim.expected_bytes(task_id)[: len(received)]  # a prefix, resumable
    sim.set_faults(p_file_cut=0.0)
    code, _, rest = await get(http, url, Range=f"bytes={len(received)}-")
    assert code == 206
    assert hashlib.sha256(received + rest).hexdigest() == sim.expected_sha256(task_id)


async def test_trickle_fault_is_slow_but_complete(make_sim, http):
    sim = await make_sim(
        time_scale=0.001, p_file_trickle=1.0, trickle_chunks=10, trickle_delay_s=0.03
    )
    task_id, (url,) = await finished(sim, http)
    t0 = asyncio.get_running_loop().time()
    code, _, body = await get(http, url)
    assert code == 200 and body == sim.expected_bytes(task_id)
    assert asyncio.get_running_loop().time() - t0 >= 0.25


@pytest.mark.parametrize("expired", [403, 404])
async def test_results_expire(make_sim, http, expired):
    # lifetime 300 s scaled by 0.001 = 0.3 s after completion
    sim = await make_sim(time_scale=0.001, result_lifetime_s=300, expired_status=expired)
    _, (url,) = await finished(sim, http)
    assert (await get(http, url))[0] == 200
    await asyncio.sleep(0.35)
    assert (await get(http, url))[0] == expired


async def test_unknown_and_unfinished_files_are_404(make_sim, http):
    sim = await make_sim(time_scale=0.05)  # 3 s or more until success
    async with http.post(
        f"{sim.base_url}/generateTask/kling-2-1", json=make_body(), headers=AUTH
    ) as r:
        task_id = (await r.json())["data"]["taskId"]
    url = sim.task(task_id).result_urls(sim.origin)[0]
    assert (await get(http, url))[0] == 404
    assert (await get(http, sim.origin + "/cdn/deadbeef/0.mp4"))[0] == 404
