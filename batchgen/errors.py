"""The exception tree, shaped by how callers react, not by where errors come from.

Foreign exceptions (aiohttp, sqlite3, OSError, yaml) are translated at the module that owns
that boundary; everything above it sees only these.
"""

from __future__ import annotations

from batchgen import exitcodes


class BatchgenError(Exception):
    """Base of every error batchgen raises on purpose. `exit_code` is what the CLI returns."""

    exit_code = exitcodes.SOME_FAILED


class UsageError(BatchgenError):
    """Bad command-line usage or configuration."""

    exit_code = exitcodes.USAGE


class ManifestError(BatchgenError):
    """A manifest that cannot be used. Carries every problem found, each with its place."""

    exit_code = exitcodes.USAGE

    def __init__(self, problems: list[ManifestProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ManifestProblem:
    """One problem in a manifest: where it is (file:line or file: row N, column C) and what."""

    __slots__ = ("json_path", "message", "where")

    def __init__(self, where: str, json_path: str, message: str) -> None:
        self.where = where
        self.json_path = json_path
        self.message = message

    def __str__(self) -> str:
        path = f"{self.json_path}: " if self.json_path else ""
        return f"{self.where}: {path}{self.message}"

    def __repr__(self) -> str:
        return f"ManifestProblem({self.where!r}, {self.json_path!r}, {self.message!r})"


class StateError(BatchgenError):
    """The state file is unusable (corrupt, newer schema, not a batchgen state file)."""

    exit_code = exitcodes.USAGE


class IllegalTransition(StateError):
    """A move between job states that batchgen/states.py does not hold: refused, the row left
    as it was. A bug, never a user's mistake: it names the job and the move."""


class StateDiskFull(StateError):
    """The disk under the state file is full: stop cleanly, a later run continues."""

    exit_code = exitcodes.WORK_LEFT


class StateLocked(BatchgenError):
    """Another run holds this state file."""

    exit_code = exitcodes.LOCKED


class ApiError(BatchgenError):
    """The API answered with an error (as an HTTP status or as a `code` in a 200 body).

    What the answer proves about a submit rests on two facts kept here (core/verdicts.py
    judges them): `envelope`, whether the answer was in the API's own JSON envelope (an
    intermediary's page is not the API's word), and `task_id`, a task the error answer names
    anyway (a sloppy server that made it, then failed)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        retry_after: float | None = None,
        envelope: bool = True,
        task_id: str | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.retry_after = retry_after
        self.envelope = envelope
        self.task_id = task_id
        super().__init__(f"API error {status}: {message}")


class RateLimited(ApiError):
    """429: wait (honour Retry-After) and retry. `limit` says which limit the answer named
    (policy.Limit's values: "rate", "concurrency" or "unknown"): a rate 429 slows the whole
    client down, a concurrency 429 holds submits until a task ends."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        retry_after: float | None = None,
        limit: str = "unknown",
        envelope: bool = True,
        task_id: str | None = None,
    ) -> None:
        super().__init__(
            status, message, retry_after=retry_after, envelope=envelope, task_id=task_id
        )
        self.limit = limit


class ServerError(ApiError):
    """5xx: transient, retry with backoff."""


class BadAnswer(ServerError):
    """A 2xx answer we cannot read (not JSON, resultJson broken): transient for polls; for a
    submit, a task may exist."""


class NotFound(ApiError):
    """The provider does not know this task id (the reference is silent on how it says so)."""


class SubmitSkipped(Exception):
    """`before_send` refused at the last moment (the job was cancelled): nothing was sent."""


class UntrackableTaskId(Exception):
    """The submit was answered with a task id that cannot be sent back (empty, control
    characters, too long): the task exists, but batchgen cannot poll or collect it. `shown`
    is the id for terminals and logs, `kept` the whole id escaped, for the state file."""

    def __init__(self, reason: str, *, shown: str, kept: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.shown = shown
        self.kept = kept


class InvalidRequest(ApiError):
    """400 for this request only: the job fails, the batch goes on."""


class AccountError(ApiError):
    """Account-level: stop all new submits. Exit code 3."""

    exit_code = exitcodes.ACCOUNT


class AuthError(AccountError):
    """401: missing or invalid API key."""


class CreditsExhausted(AccountError):
    """400 'Insufficient credits'."""


class WrongEndpoint(AccountError):
    """The API answered with a redirect (3xx): the base URL is not the API's (http instead of
    https, a moved host). Requests are never followed there (a POST must not be replayed
    elsewhere, nor the key sent to another host), so every request would meet the same
    answer: stop, as for a bad key, instead of failing each job in turn."""


class ApiConnectionError(BatchgenError):
    """No usable answer. `sent` tells whether the request may have reached the server,
    which decides if a failed submit is retryable or ambiguous."""

    def __init__(self, message: str, *, sent: bool, timeout: bool = False) -> None:
        self.sent = sent
        self.timeout = timeout
        super().__init__(message)


class DownloadError(BatchgenError):
    """A result file could not be fetched."""


class DownloadTransient(DownloadError):
    """Worth retrying: connection cut, 5xx, short body."""


class DownloadExpired(DownloadError):
    """The result URL answered 403/404/410: it has outlived its 15 days (or never existed)."""


class DownloadTooLarge(DownloadError):
    """The file exceeds the configured size cap."""


class DiskFull(DownloadError):
    """No space left (or the output folder is not writable): stop the run cleanly, exit 75."""

    exit_code = exitcodes.WORK_LEFT


class UnsafeUrl(DownloadError):
    """A URL from outside that batchgen refuses to fetch (not http(s), credentials, etc.)."""


class DownloadRejected(DownloadTransient):
    """The server answered in full, but not with a video: an HTML or JSON page, a body in a
    coding batchgen cannot decode, an MP4 cut short. Retried like a cut (a CDN's error page
    may pass); when it persists the job fails with `code`, which says why."""

    def __init__(self, message: str, code: str = "NOT_A_VIDEO") -> None:
        self.code = code
        super().__init__(message)


class OutputConflict(DownloadError):
    """The result's key in the output bucket already holds other bytes: the job fails with
    `code` and nothing is overwritten. Not retried: the next try would find the same bytes."""

    def __init__(self, message: str, code: str = "OUTPUT_CONFLICT") -> None:
        self.code = code
        super().__init__(message)


class OutputStoreUnusable(BatchgenError):
    """The output bucket cannot be used (missing, refused, unreachable): found by the probe
    before any submit. Exit 3, as for the API's own account-level failures."""

    exit_code = exitcodes.ACCOUNT


class OutputStoreNotConfigured(OutputStoreUnusable):
    """No credentials for the output bucket anywhere batchgen looks: exit 2, fix the setup."""

    exit_code = exitcodes.USAGE
