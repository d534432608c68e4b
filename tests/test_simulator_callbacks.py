"""Callback mode: the status envelope is POSTed when a task ends, retried, maybe duplicated."""

from __future__ import annotations

import asyncio
import json

from tests.conftest import AUTH, eventually, make_body

# time_scale 0.001: tasks end after 60-90 ms; retries after 30, 60, 120 ms. The receiver gets
# 2 s (2000 service seconds) to answer unless a test says otherwise: loaded machines are slow.
FAST = {"time_scale": 0.001, "callback_timeout_s": 2000}


async def submit_cb(http, sim, url, prompt="a lake"):
    body = make_body(prompt, request_type="callback", callback_url=url)
    async with http.post(f"{sim.base_url}/generateTask/kling-2-1", json=body, headers=AUTH) as r:
        assert r.status == 200
        return (await r.json())["data"]["taskId"]


async def test_callback_posts_the_status_envelope(make_sim, make_receiver, http):
    sim = await make_sim(**FAST)
    rec = await make_receiver()
    ok = await submit_cb(http, sim, rec.url)
    bad = await submit_cb(http, sim, rec.url, "x [sim:content_violation]")
    await eventually(lambda: len(rec.posts) == 2)
    by_id = {p["data"]["taskId"]: p for p in rec.posts}
    env = by_id[ok]
    assert env["code"] == 200 and env["message"] == "success"
    assert env["data"]["state"] == "success"
    assert json.loads(env["data"]["resultJson"])["resultUrls"]
    assert {"createTime", "completeTime", "costTime"} <= set(env["data"])
    assert by_id[bad]["data"]["failCode"] == "CONTENT_VIOLATION"
    # identical to what polling answers
    async with http.get(
        f"{sim.base_url}/statusTask/kling-2-1", params={"taskId": ok}, headers=AUTH
    ) as r:
        assert (await r.json()) == env
    await eventually(lambda: sim.stats()["callbacks"]["delivered"] == 2)
    assert sim.stats()["callbacks"]["retried"] == 0


async def test_async_tasks_get_no_callback(make_sim, make_receiver, http):
    sim = await make_sim(**FAST)
    rec = await make_receiver()
    body = make_body(request_type="async", callback_url=rec.url)
    async with http.post(f"{sim.base_url}/generateTask/kling-2-1", json=body, headers=AUTH):
        pass
    await asyncio.sleep(0.3)
    assert rec.posts == [] and sim.stats()["callbacks"]["scheduled"] == 0


async def test_retries_until_200(make_sim, make_receiver, http):
    sim = await make_sim(**FAST)
    rec = await make_receiver(statuses=[500, 404])
    task_id = await submit_cb(http, sim, rec.url)
    await eventually(lambda: sim.stats()["callbacks"]["delivered"] == 1)
    assert [p["data"]["taskId"] for p in rec.posts] == [task_id] * 3
    cb = sim.stats()["callbacks"]
    assert (cb["attempts"], cb["retried"], cb["failed"]) == (3, 2, 0)


async def test_gives_up_after_three_retries(make_sim, make_receiver, http):
    sim = await make_sim(**FAST)
    rec = await make_receiver(statuses=[500] * 10)
    await submit_cb(http, sim, rec.url)
    await eventually(lambda: sim.stats()["callbacks"]["failed"] == 1)
    assert len(rec.posts) == 4  # the first attempt and 3 retries
    await asyncio.sleep(0.3)
    assert len(rec.posts) == 4
    assert sim.stats()["callbacks"]["retried"] == 3


async def test_slow_receiver_counts_as_failure(make_sim, make_receiver, http):
    # 100 service seconds = 0.1 s to answer; the receiver takes 0.4 s the first time
    sim = await make_sim(
        time_scale=0.001, callback_timeout_s=100, callback_retry_delays_s=(300, 300, 300)
    )
    rec = await make_receiver(delay=0.4)
    await submit_cb(http, sim, rec.url)
    await eventually(lambda: len(rec.posts) >= 1)
    rec.delay = 0.0
    await eventually(lambda: sim.stats()["callbacks"]["delivered"] == 1)
    assert sim.stats()["callbacks"]["retried"] >= 1 and len(rec.posts) >= 2


async def test_duplicates_and_dropped_attempts(make_sim, make_receiver, http):
    sim = await make_sim(**FAST, p_callback_duplicate=1.0)
    rec = await make_receiver()
    task_id = await submit_cb(http, sim, rec.url)
    await eventually(lambda: len(rec.posts) == 2)
    assert rec.posts[0] == rec.posts[1] and rec.posts[0]["data"]["taskId"] == task_id
    sim.set_faults(p_callback_duplicate=0.0, p_callback_fail=1.0)
    await submit_cb(http, sim, rec.url)
    await eventually(lambda: sim.stats()["callbacks"]["failed"] == 1)
    assert len(rec.posts) == 2  # every attempt was dropped before sending
    assert sim.stats()["callbacks"]["dropped"] == 4


async def test_remote_callback_urls_are_not_contacted(make_sim, http):
    sim = await make_sim(**FAST)
    await submit_cb(http, sim, "https://your-server.com/callback")
    await eventually(lambda: sim.stats()["callbacks"]["refused_urls"] == 1)
    assert sim.stats()["callbacks"]["failed"] == 1


async def test_many_callbacks_one_sweeper(make_sim, make_receiver, http):
    sim = await make_sim(**FAST)
    rec = await make_receiver()
    ids = {await submit_cb(http, sim, rec.url, f"p{i}") for i in range(30)}
    await eventually(lambda: len(rec.posts) == 30)
    assert {p["data"]["taskId"] for p in rec.posts} == ids
