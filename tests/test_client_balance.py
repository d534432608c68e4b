"""The balance endpoint as the client reads it: the reference's number, and other shapes."""

from __future__ import annotations

from decimal import Decimal

import aiohttp
import pytest

from batchgen.adapters.answers import parse_balance
from batchgen.adapters.client import ApiClient
from batchgen.adapters.limits import SlidingWindowLimiter
from batchgen.errors import AuthError, BadAnswer, CreditsExhausted
from tests.conftest import API_KEY, make_body


@pytest.mark.parametrize(
    ("data", "want"),
    [
        (74.87, Decimal("74.87")),  # the reference
        (74, Decimal("74")),
        ("74.8700", Decimal("74.8700")),
        (" $1,074.5 ", Decimal("1074.5")),
        ({"balance": "3.25"}, Decimal("3.25")),
        ({"currentBalance": 0}, Decimal("0")),
        (None, None),
        (True, None),
        ("lots", None),
        ("NaN", None),
        ([1], None),
    ],
)
def test_parse_balance_is_liberal_but_never_guesses(data, want) -> None:
    assert parse_balance(data) == want


async def test_balance_and_402_against_the_simulator(make_sim) -> None:
    sim = await make_sim(balance=1.25)
    async with aiohttp.ClientSession() as session:
        client = ApiClient(
            session, sim.base_url, API_KEY, limiter=SlidingWindowLimiter(10_000, 60.0)
        )
        assert await client.balance() == Decimal("1.25")
        await client.submit(make_body())  # 1.00
        assert await client.balance() == Decimal("0.25")
        with pytest.raises(CreditsExhausted) as caught:
            await client.submit(make_body())
        assert caught.value.status == 402
        bad = ApiClient(session, sim.base_url, "wrong", limiter=SlidingWindowLimiter(10, 60.0))
        with pytest.raises(AuthError):
            await bad.balance()


async def test_a_balance_answer_without_an_amount_is_a_bad_answer(make_sim, monkeypatch) -> None:
    sim = await make_sim()
    async with aiohttp.ClientSession() as session:
        client = ApiClient(session, sim.base_url, API_KEY, limiter=SlidingWindowLimiter(10, 60.0))

        async def no_amount(*a, **k):
            return {"something": "else"}

        monkeypatch.setattr(client, "_call", no_amount)
        with pytest.raises(BadAnswer):
            await client.balance()
