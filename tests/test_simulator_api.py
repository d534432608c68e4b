"""The simulator over loopback, against the reference: endpoints, envelopes, error codes,
lifecycle timing, the exact rate window, the in-flight cap, credits, faults and stats."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from batchgen.simulator import Simulator
from tests.conftest import AUTH, EXAMPLE_BODIES, make_body


async def submit(http, sim, body, headers=AUTH):
    async with http.post(f"{sim.base_url}/generateTask/kling-2-1", json=body, headers=headers) as r:
        return r.status, await r.json(content_type=None), r.headers


async def status(http, sim, task_id, headers=AUTH):
    async with http.get(
        f"{sim.base_url}/statusTask/kling-2-1", params={"taskId": task_id}, headers=headers
    ) as r:
        return r.status, await r.json(content_type=None), r.headers


async def test_base_url_has_the_documented_shape(sim):
    assert sim.base_url.startswith("http://127.0.0.1:") and sim.base_url.endswith("/api/v1")


async def test_examples_are_accepted_with_the_success_envelope(sim, http):
    for body in EXAMPLE_BODIES:
        code, env, _ = await submit(http, sim, body)
        assert code == 200
        assert env["code"] == 200 and env["message"] == "success"
        assert set(env["data"]) == {"taskId"} and env["data"]["taskId"].startswith("task_")
    assert len(sim.task_ids()) == 3


async def test_invalid_body_gets_400_with_the_schema_message(sim, http):
    code, env, _ = await submit(http, sim, {"input": {"mode": "master-text-to-video"}})
    assert code == 400 and env["code"] == 400 and env["data"] is None
    assert "input.prompt" in env["message"]
    async with http.post(
        f"{sim.base_url}/generateTask/kling-2-1", data=b"{not json", headers=AUTH
    ) as r:
        assert r.status == 400 and (await r.json())["code"] == 400
    assert sim.task_ids() == []


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic sk-sim-demo"}]
)
async def test_auth_is_required_on_both_endpoints(sim, http, headers):
    code, env, _ = await submit(http, sim, make_body(), headers=headers)
    assert (code, env["code"], env["data"]) == (401, 401, None)
    code, env, _ = await status(http, sim, "task_x", headers=headers)
    assert (code, env["code"]) == (401, 401)
    assert sim.task_ids() == []


async def test_configured_keys_are_accepted(make_sim, http):
    sim = await make_sim(api_keys={"k1", "k2"})
    for key in ("k1", "k2"):
        code, _, _ = await submit(http, sim, make_body(), {"Authorization": f"Bearer {key}"})
        assert code == 200
    code, _, _ = await submit(http, sim, make_body())
    assert code == 401


async def test_status_errors(sim, http):
    code, env, _ = await status(http, sim, "task_nope")
    assert (code, env) == (404, {"code": 404, "message": "task not found", "data": None})
    async with http.get(f"{sim.base_url}/statusTask/kling-2-1", headers=AUTH) as r:
        assert r.status == 400 and (await r.json())["code"] == 400


async def test_lifecycle_over_the_wire(make_sim, http):
    scale = 0.01
    sim = await make_sim(time_scale=scale)
    t0 = time.monotonic()
    _, env, _ = await submit(http, sim, make_body(duration=5))
    task_id = env["data"]["taskId"]
    seen = []
    while True:
        code, env, _ = await status(http, sim, task_id)
        assert code == 200 and env["code"] == 200
        state = env["data"]["state"]
        if not seen or seen[-1] != state:
            seen.append(state)
        if state in ("success", "failed"):
            break
        assert "resultJson" not in env["data"] and "completeTime" not in env["data"]
        assert time.monotonic() - t0 < 20
        await asyncio.sleep(0.02)
    elapsed = time.monotonic() - t0
    assert seen[-1] == "success"
    order = ["pending", "processing", "success"]
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen)
    data = env["data"]
    assert 60 * scale * 1000 <= data["costTime"] <= 90 * scale * 1000 + 1
    assert data["costTime"] == data["completeTime"] - data["createTime"]
    assert abs(data["createTime"] - time.time() * 1000) < 60_000  # Unix ms
    assert elapsed >= 60 * scale * 0.95
    urls = json.loads(data["resultJson"])["resultUrls"]  # a JSON string, parsed twice
    assert len(urls) == 1 and urls[0].endswith(".mp4")


async def test_failed_envelope_and_two_results(sim, http):
    ids = []
    for prompt in ("a [sim:content_violation]", "b [sim:invalid_image]", "c [sim:two_results]"):
        ids.append((await submit(http, sim, make_body(prompt)))[1]["data"]["taskId"])
    await asyncio.sleep(0.2)  # 0.09 s at most at time_scale 0.001
    envs = [(await status(http, sim, t))[1]["data"] for t in ids]
    assert envs[0]["state"] == "failed" and envs[0]["failCode"] == "CONTENT_VIOLATION"
    assert envs[0]["failMsg"] == "Content does not meet safety guidelines"
    assert envs[1]["failCode"] == "INVALID_IMAGE_URL" and "resultJson" not in envs[1]
    assert len(json.loads(envs[2]["resultJson"])["resultUrls"]) == 2
    assert "failCode" not in envs[2]


async def test_rate_window_exact_at_the_limit(make_sim, http):
    sim = await make_sim(rate_limit=5, rate_period_s=1000, time_scale=0.01)  # 10 s window
    codes = [(await status(http, sim, "task_x"))[0] for _ in range(5)]
    assert codes == [404] * 5  # all five pass the limiter (the task is unknown)
    code, env, headers = await status(http, sim, "task_x")
    assert (code, env["code"], env["data"]) == (429, 429, None)
    assert 0 < float(headers["Retry-After"]) <= 10.0
    code, _, _ = await submit(http, sim, make_body())  # submits share the window
    assert code == 429
    st = sim.stats()
    assert st["rate_limited"] == 2 and st["max_requests_in_window"] == 7


async def test_rate_window_slides(make_sim, http):
    sim = await make_sim(rate_limit=3, rate_period_s=30, time_scale=0.01)  # 0.3 s window
    for _ in range(3):
        assert (await status(http, sim, "t"))[0] == 404
    code, _, headers = await status(http, sim, "t")
    assert code == 429
    await asyncio.sleep(float(headers["Retry-After"]) + 0.02)
    assert (await status(http, sim, "t"))[0] == 404


async def test_retry_after_integer_option(make_sim, http):
    sim = await make_sim(rate_limit=1, time_scale=0.01, retry_after_integer=True)
    await status(http, sim, "t")
    code, _, headers = await status(http, sim, "t")
    assert code == 429 and headers["Retry-After"] == "1"


async def test_in_flight_cap(make_sim, http):
    sim = await make_sim(max_in_flight=2, time_scale=0.02)  # tasks last 1.2-1.8 s
    assert (await submit(http, sim, make_body("a")))[0] == 200
    assert (await submit(http, sim, make_body("b")))[0] == 200
    code, env, headers = await submit(http, sim, make_body("c"))
    assert (code, env["code"]) == (429, 429) and "concurrent" in env["message"]
    wait = float(headers["Retry-After"])
    assert 0 < wait <= 1.8
    assert len(sim.task_ids()) == 2
    await asyncio.sleep(wait + 0.05)
    assert (await submit(http, sim, make_body("c")))[0] == 200
    st = sim.stats()
    assert st["max_in_flight"] == 2 and st["rate_limited"] == 1


async def test_credits_run_out(make_sim, http):
    sim = await make_sim(credits=2)
    assert [(await submit(http, sim, make_body()))[0] for _ in range(2)] == [200, 200]
    code, env, _ = await submit(http, sim, make_body())
    assert (code, env) == (400, {"code": 400, "message": "Insufficient credits", "data": None})
    assert sim.stats()["credits_left"] == 0


async def test_5xx_faults(make_sim, http):
    sim = await make_sim(p_5xx=1.0)
    seen = set()
    for _ in range(30):
        async with http.get(f"{sim.base_url}/statusTask/kling-2-1?taskId=t", headers=AUTH) as r:
            seen.add(r.status)
            if r.status == 500:
                assert (await r.json())["code"] == 500
    assert seen == {500, 502, 503}
    sim.set_faults(p_5xx=0.0)
    assert (await status(http, sim, "t"))[0] == 404


async def test_429_burst_and_error_in_200(make_sim, http):
    sim = await make_sim(p_429=1.0, burst_429_len=3)
    code, env, headers = await status(http, sim, "t")
    assert code == 429 and float(headers["Retry-After"]) > 0
    sim.set_faults(p_429=0.0, p_error_in_200=1.0)
    codes = set()
    for _ in range(20):
        code, env, _ = await status(http, sim, "t")
        assert code == 200 and env["data"] is None
        codes.add(env["code"])
    assert codes == {429, 500}
    assert sim.task_ids() == []  # nothing was processed


async def test_reset_before_and_after_create(make_sim, http):
    sim = await make_sim(p_reset=1.0)
    with pytest.raises(aiohttp.ClientError):
        await submit(http, sim, make_body())
    assert sim.task_ids() == []
    sim.set_faults(p_reset=0.0, p_reset_after_create=1.0)
    with pytest.raises(aiohttp.ClientError):
        await submit(http, sim, make_body("ambiguous"))
    assert len(sim.task_ids()) == 1  # the task exists although the client never saw its id
    assert sim.stats()["requests"]["submit"]["reset"] == 2


async def test_slow_answers(make_sim, http):
    sim = await make_sim(p_slow=1.0, slow_s=0.5)
    with pytest.raises(TimeoutError):
        async with http.get(
            f"{sim.base_url}/statusTask/kling-2-1?taskId=t",
            headers=AUTH,
            timeout=aiohttp.ClientTimeout(total=0.1),
        ):
            pass
    t0 = time.monotonic()
    assert (await status(http, sim, "t"))[0] == 404
    assert time.monotonic() - t0 >= 0.45


async def test_seed_makes_runs_identical(make_sim, http):
    runs = []
    for _ in range(2):
        sim = await make_sim(seed=42, p_content_violation=0.5)
        for i in range(6):
            await submit(http, sim, make_body(f"p{i}"))
        runs.append([(t, sim.task(t).fail_code, sim.task(t).end_s) for t in sim.task_ids()])
    assert runs[0] == runs[1]
    assert {f for _, f, _ in runs[0]} == {None, "CONTENT_VIOLATION"}


async def test_stats_and_duplicate_bodies(sim, http):
    body = make_body("same")
    for _ in range(3):
        await submit(http, sim, body)
    await submit(http, sim, make_body("other"))
    await submit(http, sim, make_body(), headers={})
    async with http.get(sim.base_url.replace("/api/v1", "/_sim/stats")) as r:
        st = await r.json()
    assert st["requests"]["submit"] == {"200": 4, "401": 1}
    assert st["submits_per_body"] == {
        "distinct_bodies": 2,
        "duplicate_bodies": 1,
        "max_submits_of_one_body": 3,
    }
    assert st["bodies_submitted_more_than_once"] == [{"body": body, "count": 3}]
    assert st["tasks"]["total"] == 4 and st["max_requests_in_window"] == 5
    assert set(st["callbacks"]) >= {"delivered", "failed", "retried"}
    assert sim.stats()["requests"] == st["requests"]


async def test_request_log(tmp_path, http):
    log = tmp_path / "sim.jsonl"
    async with Simulator(time_scale=0.001, log_path=str(log)) as sim:
        _, env, _ = await submit(http, sim, make_body())
        await status(http, sim, env["data"]["taskId"])
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(x["method"], x["status"]) for x in lines] == [("POST", 200), ("GET", 200)]
    assert lines[0]["task_id"] == lines[1]["task_id"] == env["data"]["taskId"]
    assert all({"time", "method", "path", "status", "task_id"} <= set(x) for x in lines)


async def test_unknown_endpoint(sim, http):
    async with http.get(f"{sim.base_url}/statusTask/other-model?taskId=x", headers=AUTH) as r:
        assert r.status == 404 and (await r.json())["code"] == 404
