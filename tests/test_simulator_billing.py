"""The simulated account over loopback: the balance endpoint and its envelope, prices, 402 below
the price, refunds of failed tasks, and transient fail codes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from batchgen.simulator import SimConfig
from batchgen.simulator.billing import DEFAULT_PRICES, parse_prices
from batchgen.simulator.tasks import TRANSIENT_CODES
from tests.conftest import AUTH, eventually, make_body


async def balance(http, sim, headers=AUTH):
    async with http.get(f"{sim.base_url}/apikeys/current-balance", headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def submit(http, sim, body):
    async with http.post(f"{sim.base_url}/generateTask/kling-2-1", json=body, headers=AUTH) as r:
        return r.status, await r.json(content_type=None)


async def task_state(http, sim, task_id):
    async with http.get(
        f"{sim.base_url}/statusTask/kling-2-1", params={"taskId": task_id}, headers=AUTH
    ) as r:
        return (await r.json())["data"]


async def test_balance_endpoint_answers_the_documented_envelope(make_sim, http):
    sim = await make_sim(balance=74.87)
    code, env = await balance(http, sim)
    assert code == 200
    assert env == {"code": 200, "message": "success", "data": 74.87}
    assert isinstance(env["data"], float)
    code, env = await balance(http, sim, headers={"Authorization": "Bearer wrong"})
    assert (code, env["code"]) == (401, 401)


async def test_each_task_is_charged_its_price_by_mode_and_duration(make_sim, http):
    sim = await make_sim(balance=10.0)
    body = make_body(duration=10)  # master-text-to-video, 10 s
    code, _ = await submit(http, sim, body)
    assert code == 200
    price = DEFAULT_PRICES[("kling-2-1", "master-text-to-video", 10)]
    assert (await balance(http, sim))[1]["data"] == float(10 - price)
    short = DEFAULT_PRICES[("kling-2-1", "master-text-to-video", 5)]
    assert short < price  # a 10 s video costs more than a 5 s one


async def test_402_when_the_balance_is_below_the_price_and_nothing_is_created(make_sim, http):
    sim = await make_sim(balance=1.5)  # one 5 s master task (1.00) fits, a second does not
    assert (await submit(http, sim, make_body()))[0] == 200
    code, env = await submit(http, sim, make_body())
    assert code == 402 and env["code"] == 402 and env["data"] is None
    assert "balance" in env["message"].lower()
    assert len(sim.task_ids()) == 1
    assert (await balance(http, sim))[1]["data"] == 0.5


async def test_price_overrides_and_bad_prices(make_sim, http):
    assert parse_prices("master-text-to-video:5=0.3") == {
        ("kling-2-1", "master-text-to-video", 5): Decimal("0.3")
    }
    with pytest.raises(ValueError, match="bad price"):
        SimConfig(prices="master:5")
    sim = await make_sim(balance=1.0, prices="master-text-to-video:5=0.3")
    await submit(http, sim, make_body())
    assert (await balance(http, sim))[1]["data"] == 0.7


async def test_failed_tasks_are_refunded_when_they_fail_if_asked(make_sim, http):
    sim = await make_sim(balance=5.0, refund_failed=True, time_scale=0.001)
    _, env = await submit(http, sim, make_body("x [sim:content_violation]"))
    assert (await balance(http, sim))[1]["data"] == 4.0
    task_id = env["data"]["taskId"]
    await eventually(lambda: sim.task(task_id).state_at(sim.now()) == "failed")
    assert (await balance(http, sim))[1]["data"] == 5.0


async def test_no_refund_by_default(make_sim, http):
    sim = await make_sim(balance=5.0, time_scale=0.001)
    _, env = await submit(http, sim, make_body("x [sim:content_violation]"))
    task_id = env["data"]["taskId"]
    await eventually(lambda: sim.task(task_id).state_at(sim.now()) == "failed")
    assert (await balance(http, sim))[1]["data"] == 4.0


async def test_transient_codes_by_marker_and_by_probability(make_sim, http):
    sim = await make_sim(time_scale=0.001, p_transient=1.0)
    _, env = await submit(http, sim, make_body("anything"))
    task_id = env["data"]["taskId"]
    await eventually(lambda: sim.task(task_id).state_at(sim.now()) == "failed")
    data = await task_state(http, sim, task_id)
    assert data["failCode"] in TRANSIENT_CODES and data["failMsg"]


async def test_transient_n_marker_fails_the_first_n_tasks_of_a_prompt(make_sim, http):
    sim = await make_sim(time_scale=0.001)
    ids = []
    for _ in range(3):
        _, env = await submit(http, sim, make_body("again [sim:transient:2]"))
        ids.append(env["data"]["taskId"])
    codes = [sim.task(t).fail_code for t in ids]
    assert codes[0] in TRANSIENT_CODES and codes[1] in TRANSIENT_CODES and codes[2] is None
