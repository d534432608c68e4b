"""Issue 15 step 4: what each error means for its job, as tables (batchgen/core/verdicts.py)."""

from __future__ import annotations

import pytest

from batchgen.core.verdicts import Act, on_download, on_status, on_submit
from batchgen.errors import (
    ApiConnectionError,
    AuthError,
    BadAnswer,
    CreditsExhausted,
    DiskFull,
    DownloadError,
    DownloadExpired,
    DownloadRejected,
    DownloadTooLarge,
    DownloadTransient,
    InvalidRequest,
    NotFound,
    RateLimited,
    ServerError,
    SubmitSkipped,
    UnsafeUrl,
    UntrackableTaskId,
)


@pytest.mark.parametrize(
    ("exc", "act", "code"),
    [
        (SubmitSkipped(), Act.SKIPPED, None),
        (BadAnswer(200, "not JSON"), Act.AMBIGUOUS, None),
        (UntrackableTaskId("the task id is empty", shown="", kept=""), Act.ORPHANED, None),
        (ApiConnectionError("reset", sent=True), Act.AMBIGUOUS, None),
        (ApiConnectionError("timed out", sent=True, timeout=True), Act.AMBIGUOUS, None),
        (ApiConnectionError("refused", sent=False), Act.RETRY, "NOT_SENT"),
        (RateLimited(429, "slow down", retry_after=3.0, limit="rate"), Act.WAIT, "rate"),
        (RateLimited(429, "cap", limit="concurrency"), Act.WAIT, "concurrency"),
        (ServerError(500, "the API's own envelope"), Act.RETRY, "HTTP_500"),
        (AuthError(401, "bad key"), Act.STOP_ACCOUNT, "HTTP_401"),
        (AuthError(407, "proxy"), Act.STOP_ACCOUNT, "HTTP_407"),
        (CreditsExhausted(402, "no credits"), Act.STOP_ACCOUNT, "HTTP_402"),
        (NotFound(404, "no route"), Act.STOP_ACCOUNT, "HTTP_404"),
        (InvalidRequest(400, "prompt is required"), Act.FAIL, "HTTP_400"),
        (InvalidRequest(422, "bad duration"), Act.FAIL, "HTTP_422"),
        (ValueError("a bug"), None, None),
    ],
)
def test_submit_verdicts(exc: Exception, act: Act | None, code: str | None) -> None:
    verdict = on_submit(exc)
    if act is None:
        assert verdict is None  # not an answer: the engine re-raises it
        return
    assert verdict is not None and (verdict.act, verdict.code) == (act, code)
    if act is Act.AMBIGUOUS:
        assert verdict.note  # the state file says why
    if isinstance(exc, NotFound):
        assert "--base-url" in verdict.note


def test_only_proof_of_no_task_lets_a_submit_go_again() -> None:
    """The money rule, over the table: RETRY and WAIT only where nothing was created."""
    sent_unknown = [BadAnswer(200, "x"), ApiConnectionError("cut", sent=True)]
    assert all(on_submit(e).act is Act.AMBIGUOUS for e in sent_unknown)
    proofs = [
        ApiConnectionError("refused", sent=False),
        RateLimited(429, "x"),
        ServerError(503, "e"),
    ]
    assert all(on_submit(e).act in (Act.RETRY, Act.WAIT) for e in proofs)


@pytest.mark.parametrize(
    ("exc", "act", "retry_after"),
    [
        (RateLimited(429, "x", retry_after=2.0), Act.WAIT, 2.0),
        (ServerError(503, "html page", retry_after=9.0), Act.UNREADABLE, 9.0),
        (BadAnswer(200, "not JSON"), Act.UNREADABLE, None),
        (ApiConnectionError("reset", sent=True), Act.UNREADABLE, None),
        (InvalidRequest(400, "?"), Act.UNREADABLE, None),  # says nothing about the task
        (NotFound(404, "unknown task"), Act.NOT_FOUND, None),
        (AuthError(401, "key revoked"), Act.STOP_ACCOUNT, None),
        (KeyError("a bug"), None, None),
    ],
)
def test_status_verdicts(exc: Exception, act: Act | None, retry_after: float | None) -> None:
    verdict = on_status(exc)
    if act is None:
        assert verdict is None
        return
    assert verdict is not None and verdict.act is act and verdict.retry_after == retry_after
    assert verdict.act is not Act.FAIL  # an unreadable status never fails a paid task


def _rejected() -> DownloadRejected:
    exc = DownloadRejected("sent no video", code="NOT_A_VIDEO")
    return exc


@pytest.mark.parametrize(
    ("exc", "now", "last", "act", "code"),
    [
        (DiskFull("no space"), 0, False, Act.STOP_RUN, None),
        (DownloadTooLarge("3 GB"), 0, False, Act.FAIL, "DOWNLOAD_REFUSED"),
        (UnsafeUrl("10.0.0.1"), 0, False, Act.FAIL, "DOWNLOAD_REFUSED"),
        (DownloadExpired("403"), 50, False, Act.RETRY, None),  # before its expiry: again
        (DownloadExpired("403"), 50, True, Act.LEAVE, None),  # ... up to the last try
        (DownloadExpired("410"), 100, False, Act.EXPIRE, None),  # past it: gone
        (_rejected(), 0, False, Act.RETRY, "NOT_A_VIDEO"),
        (_rejected(), 0, True, Act.FAIL, "NOT_A_VIDEO"),
        (DownloadTransient("cut"), 0, True, Act.RETRY, None),
        (DownloadError("reset"), 0, False, Act.RETRY, None),
        (OSError("a bug"), 0, False, None, None),
    ],
)
def test_download_verdicts(exc, now: float, last: bool, act: Act | None, code) -> None:
    verdict = on_download(exc, now=now, expires_at=100.0, last_try=last)
    if act is None:
        assert verdict is None
        return
    assert verdict is not None and (verdict.act, verdict.code) == (act, code)
