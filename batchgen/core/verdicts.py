"""What an error means for the job it happened to: one pure decision per kind of call.

The engine used to decide inside three `except` ladders (submit, status poll, download); now
it asks here and applies the answer. Nothing here does I/O or reads a clock: the time and the
facts a decision needs are passed in, so each table of cases is a plain unit test
(tests/test_verdicts.py). How long to wait is batchgen/core/policy.py's (one backoff).

The rules that cost money are these: a submit is sent again only when the answer proves that
no task was made (nothing was sent, a 429, the API's own error envelope), judged here alone
(`on_submit`, from the typed facts batchgen/errors.py keeps: sent or not, the envelope, a task
named anyway); a task that exists is never failed because its status could not be read
(`UNREADABLE`: batchgen/engine/outage.py decides how long to keep asking).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from batchgen.core.taskids import shown
from batchgen.errors import (
    AccountError,
    ApiConnectionError,
    ApiError,
    BadAnswer,
    DiskFull,
    DownloadError,
    DownloadExpired,
    DownloadRejected,
    DownloadTooLarge,
    InvalidRequest,
    NotFound,
    OutputConflict,
    RateLimited,
    ServerError,
    SubmitSkipped,
    UnsafeUrl,
    UntrackableTaskId,
)


class Act(enum.Enum):
    RETRY = "retry"  # back off and try again; for a submit: surely no task was made
    WAIT = "wait"  # a 429: wait for capacity; never a failed try of the job
    AMBIGUOUS = "ambiguous"  # a task may exist: the job is never resent on its own
    ORPHANED = "orphaned"  # a task exists under an id that cannot be sent back
    FAIL = "fail"  # the job fails with `code`
    STOP_ACCOUNT = "stop_account"  # every call would fail alike: no new submits (exit 3)
    SKIPPED = "skipped"  # nothing was sent (the run is stopping): the job stays pending
    UNREADABLE = "unreadable"  # a status answer that says nothing about the task
    NOT_FOUND = "not_found"  # the API's own word that it does not know the task
    EXPIRE = "expire"  # the result's lifetime is over
    LEAVE = "leave"  # give up for this run; the next run tries again
    STOP_RUN = "stop_run"  # the output folder cannot take files: stop everything (exit 75)


@dataclass(frozen=True)
class Verdict:
    act: Act
    code: str | None = None  # the fail code (FAIL) or why (others, for logs)
    note: str = ""  # for the state file and the run's messages
    retry_after: float | None = None  # the server's own word on when to come back


SUBMIT_OUTCOME_UNKNOWN = frozenset({504, 524, 598, 599})
"""Gateway timeouts: a proxy in front of the API gave up waiting for it, but the API may still
have created (and billed) the task, exactly as when our own read times out. A submit answered
so is ambiguous, never resent, even in the API's envelope."""


def proves_no_task(exc: ApiError) -> bool:
    """May a submit answered with this error be sent again (no task was made)?

    Only the API's own word proves that: a 429 (in any form), or an error in the API's JSON
    envelope (a JSON object with `code` or `message`, whatever the HTTP status, an HTTP 200
    carrying code 500 included), naming no task. A 5xx (or 408/425) with any other body, an
    nginx or load balancer page, plain text, an empty body, comes from an intermediary that
    may have lost the API's answer after the task was created. Gateway timeouts
    (SUBMIT_OUTCOME_UNKNOWN) are ambiguous even in an envelope: the gateway wrote it."""
    if exc.task_id is not None:
        return False
    if isinstance(exc, RateLimited) or exc.status == 429:
        return True
    if exc.status in SUBMIT_OUTCOME_UNKNOWN:
        return False
    return exc.envelope


def on_submit(exc: BaseException) -> Verdict | None:
    """A submit that raised `exc`. None: not an answer to judge (a bug): re-raise it. This is
    the one place that decides whether a submit may be sent again or its job is ambiguous."""
    if isinstance(exc, SubmitSkipped):
        return Verdict(Act.SKIPPED)
    if isinstance(exc, BadAnswer):  # a 2xx that cannot be read: a task may exist
        return Verdict(Act.AMBIGUOUS, note=f"the submit's answer could not be read ({exc})")
    if isinstance(exc, UntrackableTaskId):
        return Verdict(Act.ORPHANED, note=exc.reason)
    if isinstance(exc, ApiConnectionError):
        if exc.sent:
            return Verdict(Act.AMBIGUOUS, note=f"no answer to the submit: {exc}")
        return Verdict(Act.RETRY, code="NOT_SENT")
    if isinstance(exc, ApiError) and exc.task_id is not None:
        # An error, yet it names a task (a sloppy server that created it, then failed or
        # refused): it may exist and be billed. "Retry" could pay twice, "refused" would drop
        # a paid task: the job is ambiguous, whatever the code.
        return Verdict(
            Act.AMBIGUOUS,
            note=f"no answer to the submit: the submit's error answer (code {exc.status}: "
            f"{exc.message[:200]}) names task {shown(exc.task_id)}",
        )
    if isinstance(exc, RateLimited):
        return Verdict(Act.WAIT, code=exc.limit, retry_after=exc.retry_after)
    if isinstance(exc, ServerError):
        if not proves_no_task(exc):
            # A gateway's timeout, or its own page (HTML, text, nothing) instead of the API's
            # answer: the API may have created (and billed) the task before it.
            if exc.status in SUBMIT_OUTCOME_UNKNOWN:
                what = f"a gateway timed out on the submit (HTTP {exc.status})"
            else:
                what = f"the submit was answered HTTP {exc.status} without the API's envelope"
            return Verdict(Act.AMBIGUOUS, note=f"no answer to the submit: {what}: {exc.message}")
        # the API's own envelope: it made no task
        return Verdict(Act.RETRY, code=f"HTTP_{exc.status}", retry_after=exc.retry_after)
    if isinstance(exc, AccountError):
        return Verdict(Act.STOP_ACCOUNT, code=f"HTTP_{exc.status}", note=exc.message)
    if isinstance(exc, NotFound):  # no submit endpoint at this address
        return Verdict(
            Act.STOP_ACCOUNT,
            code=f"HTTP_{exc.status}",
            note=f"the API has no submit endpoint here ({exc.message}); check --base-url",
        )
    if isinstance(exc, InvalidRequest):  # refused: no task was made
        return Verdict(Act.FAIL, code=f"HTTP_{exc.status}", note=exc.message)
    return None


def on_status(exc: BaseException) -> Verdict | None:
    """A status poll that raised `exc`. None: not an answer to judge (a bug): re-raise it."""
    if isinstance(exc, RateLimited):
        return Verdict(Act.WAIT, code=exc.limit, retry_after=exc.retry_after)
    if isinstance(exc, ServerError | ApiConnectionError | InvalidRequest):
        # Unreadable: says nothing about the task, so it never fails it.
        retry_after = exc.retry_after if isinstance(exc, ServerError) else None
        return Verdict(Act.UNREADABLE, note=str(exc) or type(exc).__name__, retry_after=retry_after)
    if isinstance(exc, NotFound):
        return Verdict(Act.NOT_FOUND, code="TASK_NOT_FOUND", note=exc.message)
    if isinstance(exc, AccountError):
        return Verdict(Act.STOP_ACCOUNT, code=f"HTTP_{exc.status}", note=exc.message)
    return None


def on_download(
    exc: BaseException, *, now: float, expires_at: float, last_try: bool
) -> Verdict | None:
    """A result download that raised `exc`, on try `last_try` or not, at wall time `now` for
    results that die at `expires_at`. None: not a download failure (a bug): re-raise it."""
    if isinstance(exc, DiskFull):
        return Verdict(Act.STOP_RUN, note=str(exc))
    if isinstance(exc, DownloadTooLarge | UnsafeUrl):
        return Verdict(Act.FAIL, code="DOWNLOAD_REFUSED", note=f"{type(exc).__name__}: {exc}")
    if isinstance(exc, DownloadExpired):
        if now >= expires_at:
            return Verdict(Act.EXPIRE, note=f"result URL expired: {exc}")
        if last_try:
            return Verdict(Act.LEAVE, note=f"result refused before its expiry: {exc}")
        return Verdict(Act.RETRY, note=f"result refused ({exc}), will retry")
    if isinstance(exc, OutputConflict):  # the bucket holds other bytes under the key
        return Verdict(Act.FAIL, code=exc.code, note=str(exc))
    if isinstance(exc, DownloadRejected):  # not a video: an error page, a cut MP4, ...
        if last_try:
            return Verdict(Act.FAIL, code=exc.code, note=str(exc))
        return Verdict(Act.RETRY, code=exc.code, note=f"download refused ({exc}), will retry")
    if isinstance(exc, DownloadError):
        return Verdict(Act.RETRY, note=f"download failed ({exc}), will retry")
    return None
