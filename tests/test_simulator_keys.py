"""The simulator's keys with accounts of their own (simulator/keys.py): separate windows,
caps and balances, tasks visible to their maker only, revocation answered 401 or 403."""

from __future__ import annotations

import pytest

from tests.conftest import make_body
from tests.test_simulator_api import status, submit

A = {"Authorization": "Bearer sk-key-a"}
B = {"Authorization": "Bearer sk-key-b"}


async def test_each_key_has_its_own_cap_and_sees_its_own_tasks(sim, http):
    sim.keys.add("sk-key-a", label="a", max_in_flight=1)
    sim.keys.add("sk-key-b", label="b", max_in_flight=1)
    code, env, _ = await submit(http, sim, make_body(), headers=A)
    assert code == 200
    task_a = env["data"]["taskId"]
    code, env, _ = await submit(http, sim, make_body(), headers=A)
    assert code == 429 and "1" in env["message"]  # a's cap is full, b's is not
    code, env, _ = await submit(http, sim, make_body(), headers=B)
    assert code == 200
    task_b = env["data"]["taskId"]
    assert (await status(http, sim, task_a, headers=A))[0] == 200
    assert (await status(http, sim, task_a, headers=B))[0] == 404  # not b's task
    assert sim.keys.made_by("a") == [task_a] and sim.keys.made_by("b") == [task_b]
    assert ("b", "status", task_a) in sim.keys.log


async def test_each_key_has_its_own_rate_window(sim, http):
    sim.keys.add("sk-key-a", label="a", rate_limit=1)
    sim.keys.add("sk-key-b", label="b", rate_limit=1)
    assert (await status(http, sim, "task_x", headers=A))[0] == 404
    assert (await status(http, sim, "task_x", headers=A))[0] == 429
    assert (await status(http, sim, "task_x", headers=B))[0] == 404


@pytest.mark.parametrize("code", [401, 403])
async def test_a_revoked_key_is_refused_and_only_it(sim, http, code):
    sim.keys.add("sk-key-a", label="a")
    sim.keys.add("sk-key-b", label="b")
    sim.keys.revoke("sk-key-a", code)
    got, env, _ = await submit(http, sim, make_body(), headers=A)
    assert (got, env["code"]) == (code, code)
    assert (await submit(http, sim, make_body(), headers=B))[0] == 200


async def test_each_key_has_its_own_balance(sim, http):
    sim.keys.add("sk-key-a", label="a", balance=0.0)
    sim.keys.add("sk-key-b", label="b", balance=100.0)
    assert (await submit(http, sim, make_body(), headers=A))[0] == 402
    assert (await submit(http, sim, make_body(), headers=B))[0] == 200
    async with http.get(f"{sim.base_url}/apikeys/current-balance", headers=B) as r:
        assert (await r.json())["data"] < 100.0
