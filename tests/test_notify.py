"""Issue 30: a batch that ends tells someone. Real receivers on loopback: the signed JSON
summary, healthchecks pings, apprise's json:// service; a dead or hung receiver never changes
the exit code and costs a bounded number of tries (counted, never timed)."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

import batchgen
from batchgen.notify import summary as notify_summary
from batchgen.settings import NotifySettings
from batchgen.store import Store
from tests.notifykit import Hooks, dead_url, manifest, serve_hooks

pytestmark = pytest.mark.timeout(180)
SECRET = "s3cret-for-the-test"


@pytest.fixture
async def hooks() -> AsyncIterator[Hooks]:
    async with serve_hooks() as rec:
        yield rec


def _is_file(path: str) -> bool:
    return Path(path).is_file()


async def test_a_failing_batch_posts_its_summary_signed(
    tmp_path: Path, hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHGEN_NOTIFY_SECRET", SECRET)
    out = tmp_path / "out"
    outcome = await batchgen.run_async(
        manifest(tmp_path, failing=2, ok=1),
        output=out,
        sandbox=True,
        notify={"json": [hooks.base + "/hook/T0KEN"]},
    )
    assert outcome.exit_code == 1
    [hit] = hooks.on("/hook/")
    assert hit.method == "POST" and hit.headers["Content-Type"] == "application/json"
    expected = "sha256=" + hmac.new(SECRET.encode(), hit.body, hashlib.sha256).hexdigest()
    assert hit.headers["X-Batchgen-Signature"] == expected
    body = json.loads(hit.body)
    store = Store(out / "batchgen.db", readonly=True)
    try:
        counts = store.jobs.counts()  # what `status --json` shows under "counts"
    finally:
        store.close()
    assert body["counts"] == counts and body["counts"]["failed"] == 2
    assert body["batch"] == "nightly"
    assert body["exit_code"] == 1 and body["outcome"] == "failure"
    assert uuid.UUID(body["run_id"])
    assert sorted(f["id"] for f in body["failures"]) == ["bad-0", "bad-1"]
    assert {f["code"] for f in body["failures"]} == {"CONTENT_VIOLATION"}
    assert all(f["message"] for f in body["failures"])
    assert body["failures_total"] == 2
    assert body["spent_usd"] > 0 and body["cap_usd"] is None
    started = datetime.fromisoformat(body["started_at"].replace("Z", "+00:00"))
    assert datetime.fromisoformat(body["ended_at"].replace("Z", "+00:00")) >= started
    assert body["report"] == str(out / "results.jsonl") and _is_file(body["report"])


async def test_a_clean_batch_sends_nothing_by_default_and_on_success_when_asked(
    tmp_path: Path, hooks: Hooks
) -> None:
    m = manifest(tmp_path, ok=2)
    first = await batchgen.run_async(
        m, output=tmp_path / "o", sandbox=True, notify={"json": hooks.base + "/hook"}
    )
    assert first.exit_code == 0 and hooks.hits == []
    again = await batchgen.run_async(
        m,
        output=tmp_path / "o",
        sandbox=True,
        notify={"json": hooks.base + "/hook", "on": "success,failure"},
    )
    assert again.exit_code == 0
    [hit] = hooks.on("/hook")
    assert json.loads(hit.body)["outcome"] == "success"
    assert "X-Batchgen-Signature" not in hit.headers  # no secret set: no signature


async def test_pings_go_in_order_with_one_rid(tmp_path: Path, hooks: Hooks) -> None:
    m = manifest(tmp_path, ok=1)
    ok = await batchgen.run_async(
        m, output=tmp_path / "o", sandbox=True, notify={"ping": hooks.base + "/ping/abc"}
    )
    assert ok.exit_code == 0
    assert [h.path for h in hooks.hits] == ["/ping/abc/start", "/ping/abc"]
    rids = {h.query["rid"] for h in hooks.hits}
    assert len(rids) == 1 and uuid.UUID(rids.pop())
    hooks.hits.clear()
    bad = await batchgen.run_async(
        manifest(tmp_path, name="other", failing=1, ok=0),
        output=tmp_path / "o2",
        sandbox=True,
        notify={"ping": hooks.base + "/ping/abc"},
    )
    assert bad.exit_code == 1
    assert [h.path for h in hooks.hits] == ["/ping/abc/start", "/ping/abc/1"]
    assert len({h.query["rid"] for h in hooks.hits}) == 1


async def test_apprise_json_service_reaches_a_local_server(tmp_path: Path, hooks: Hooks) -> None:
    pytest.importorskip("apprise")
    port = hooks.base.rsplit(":", 1)[1]
    outcome = await batchgen.run_async(
        manifest(tmp_path, failing=1, ok=1),
        output=tmp_path / "o",
        sandbox=True,
        notify={"urls": [f"json://127.0.0.1:{port}/apprise/path"]},
    )
    assert outcome.exit_code == 1
    [hit] = hooks.on("/apprise/path")
    sent = json.loads(hit.body)
    assert "nightly" in sent["title"] and "exit 1" in sent["title"]
    assert "bad-0 (CONTENT_VIOLATION)" in sent["message"]
    assert "report: " in sent["message"] and "spent $" in sent["message"]


async def test_receivers_down_erroring_or_hung_never_change_the_exit_code(
    tmp_path: Path, hooks: Hooks
) -> None:
    """Refused, HTTP 500 and a receiver that never answers: each tried at most `tries`
    times, then a warning; the run ends with its own exit code."""
    hooks.status["/err"] = 500
    hooks.hang.add("/hang")
    settings = NotifySettings(
        json_urls=(dead_url(), hooks.base + "/err/j", hooks.base + "/hang/j"),
        ping_url=hooks.base + "/err/ping",
        on=frozenset({"failure"}),
        tries=3,
    )
    outcome = await batchgen.run_async(
        manifest(tmp_path, failing=1, ok=1),
        output=tmp_path / "o",
        sandbox=True,
        notify=settings,
        drain_s=1.0,  # the run's option that bounds the notifications' deadline
    )
    assert outcome.exit_code == 1
    assert len(hooks.on("/err/j")) == 3  # every try, then it gave up
    assert len(hooks.on("/err/ping/start")) == 3
    assert len([h for h in hooks.on("/err/ping") if h.path == "/err/ping/1"]) == 3
    assert 1 <= len(hooks.on("/hang/j")) <= 3


def test_outcome_words_follow_the_exit_code() -> None:
    assert notify_summary.outcome_of(0) == "success"
    assert notify_summary.outcome_of(75) == "incomplete"
    assert [notify_summary.outcome_of(c) for c in (1, 2, 3, 5, 70)] == ["failure"] * 5
