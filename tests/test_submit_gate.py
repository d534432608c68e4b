"""The submit gate: an API down behind its load balancer must not turn a batch ambiguous.

Every submit answered by a gateway's page is ambiguous (the task may exist: issue 20 item 2).
Before the gate, a run kept submitting through such an outage, so every job it reached turned
ambiguous, each a decision for a person. With the gate, only the submits already on the wire
when the outage began are; the rest wait for the API to answer in its own words.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from batchgen import store as st
from batchgen.engine.gate import SubmitGate
from batchgen.runner import execute
from tests.enginekit import mixed_jobs, options, prepare_state, state_rows
from tests.faultkit import FakeApi, Hit

pytestmark = pytest.mark.timeout(60)

WIRE = 16  # --max-in-flight: at most this many submits can be on the wire at once


class Outage:
    """Every API answer is nginx's 502 page (nothing created) from the moment the `after`-th
    task exists, for `seconds`."""

    def __init__(self, api: FakeApi, *, after: int, seconds: float) -> None:
        self.api, self.after, self.seconds = api, after, seconds
        self.began: float | None = None
        self.ended: float | None = None

    def down(self, hit: Hit) -> bool:
        if self.began is None and len(self.api.tasks) >= self.after:
            self.began = hit.t
        if self.began is None or hit.t >= self.began + self.seconds:
            return False
        self.ended = self.began + self.seconds
        return True

    def hook(self, hit: Hit) -> Any:
        return "nginx502" if self.down(hit) else None


async def run_through_outage(tmp_path: Path, *, after: int, seconds: float, n: int = 100):
    jobs = mixed_jobs(n)
    state = prepare_state(tmp_path, jobs)
    async with FakeApi() as api:
        outage = Outage(api, after=after, seconds=seconds)
        api.hooks["submit"] = outage.hook
        api.hooks["status"] = outage.hook
        outcome = await execute(
            options(
                tmp_path,
                api.base_url,
                poll_after_s=0.03,
                poll_every_s=0.03,
                max_in_flight=WIRE,
            )
        )
    rows = state_rows(state)
    ambiguous = [r for r in rows if r["state"] == st.AMBIGUOUS]
    during = [h for h in api.hits if h.kind == "submit" and h.answer == "nginx502"]
    return outcome, rows, ambiguous, during, api


async def test_an_outage_mid_run_costs_only_the_submits_on_the_wire(tmp_path: Path) -> None:
    """Tasks exist, so the gate asks about one of them (a GET) until the API answers: no
    submit is sent into the outage after the first page came back."""
    outcome, rows, ambiguous, during, api = await run_through_outage(
        tmp_path, after=20, seconds=0.5
    )
    assert len(ambiguous) == len(during)  # each submit met by the page, and only those
    assert 1 <= len(during) <= WIRE, [h.key[:40] for h in during]
    assert all(r["state"] == st.DONE for r in rows if r["state"] != st.AMBIGUOUS)
    assert outcome.exit_code == 1
    # the sign of life was asked of a task that exists, never of an invented id
    assert all(h.key in api.tasks for h in api.hits if h.kind == "status")


async def test_an_outage_from_the_start_sends_submits_single_file(tmp_path: Path) -> None:
    """No task exists to ask about: after the first wave, one submit at a time goes, each
    after a longer wait (the run's backoff), until the API answers again."""
    outcome, rows, ambiguous, during, _ = await run_through_outage(tmp_path, after=0, seconds=0.4)
    assert len(ambiguous) == len(during)
    # the first wave (at most WIRE), then one per backoff step (0.02 s doubling to 0.5 s
    # covers 0.4 s in about five steps)
    assert len(during) <= WIRE + 6, len(during)
    assert all(r["state"] == st.DONE for r in rows if r["state"] != st.AMBIGUOUS)
    assert outcome.exit_code == 1


async def test_a_lone_gateway_page_does_not_slow_the_batch(tmp_path: Path) -> None:
    """One page in a healthy API (the simulator's '502 after create' fault): the polls of
    other tasks are the sign of life; the batch goes on and finishes."""
    jobs = mixed_jobs(30)
    state = prepare_state(tmp_path, jobs)
    async with FakeApi() as api:
        seen = {"n": 0}

        def one_page(hit: Hit) -> Any:
            seen["n"] += 1
            return "nginx502_after" if seen["n"] == 10 else None

        api.hooks["submit"] = one_page
        started = time.monotonic()
        outcome = await execute(
            options(tmp_path, api.base_url, poll_after_s=0.03, poll_every_s=0.03)
        )
        took = time.monotonic() - started
    rows = state_rows(state)
    assert [r["state"] for r in rows].count(st.AMBIGUOUS) == 1
    assert [r["state"] for r in rows].count(st.DONE) == 29
    assert outcome.exit_code == 1
    assert took < 30  # bounded by the test's timeout too; a hang would show here


# -- the gate's own decisions -------------------------------------------------------------------


def test_gate_opens_only_on_the_apis_own_words() -> None:
    gate = SubmitGate()
    assert not gate.in_doubt
    gate.doubt(alive=5)
    assert gate.in_doubt and gate.doubts == 1
    assert not gate.heard_since_doubt(5)
    assert gate.heard_since_doubt(6)
    gate.doubt(alive=6)  # a second doubtful answer: heard only after it counts
    assert gate.doubts == 2 and not gate.heard_since_doubt(6)
    gate.answered()
    assert not gate.in_doubt
    assert "open" in repr(gate)
