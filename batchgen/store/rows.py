"""What the store hands out (rows as frozen dataclasses) and the pure rules read off them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from batchgen.models import DEFAULT_MODEL
from batchgen.states import JobState

EXPIRED = JobState.EXPIRED
FAILED = JobState.FAILED
ORPHANED = JobState.ORPHANED


POLL_ERRORS = "POLL_ERRORS"
"""The fail code earlier versions gave a task whose status stayed unreadable (today such a
task stays in flight): never the provider's word, so `retry` polls such a task again."""


def retry_keeps_task(
    *,
    state: str,
    task_id: str | None,
    fail_code: str | None,
    has_results: bool,
    expires_at: float | None,
    now: float,
) -> bool:
    """`batchgen retry`: poll this job's task again (True) or submit a new one (False)?

    A task that exists is paid for; a new one is paid again. So a job keeps its task id
    unless the task cannot deliver any more:
    - no task id (never created, or the submit's answer was lost), or orphaned (its id
      cannot be sent back, so it cannot be polled): new task;
    - expired, or results past their lifetime: whatever it made is gone, new task;
    - failed after the provider said success (its results are recorded: a download or file
      check failed) or with POLL_ERRORS (the status was unreadable): poll it again;
    - failed otherwise: the provider said so (its failCode, or it does not know the task,
      TASK_NOT_FOUND), or the submit was refused: new task;
    - any other state with a task id (ambiguous, cancelled): poll it again."""
    if task_id is None or state in (EXPIRED, ORPHANED):
        return False
    if expires_at is not None and now >= expires_at:
        return False
    if state == FAILED:
        return has_results or fail_code == POLL_ERRORS
    return True


def body_sha(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class JobRow:
    seq: int
    id: str
    body: str
    state: str
    task_id: str | None
    duration: int | None
    mode: str | None
    submitted_at: float | None
    submit_attempts: int
    model: str = DEFAULT_MODEL  # the model whose endpoints this job is sent to and polled at

    def body_dict(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class FileRow:
    job_seq: int
    idx: int
    url: str
    path: str | None
    bytes: int | None
    sha256: str | None
    mtime_ns: int | None
    done_at: float | None


@dataclass(frozen=True, slots=True)
class SyncResult:
    added: int
    unchanged: int
    changed: list[str]  # ids whose body differs from the state file's and was not applied
    resubmitted: list[str]  # ids whose changed body replaced the old one (--resubmit-changed)


_JOB_COLS = "seq, id, body, state, task_id, duration, mode, submitted_at, submit_attempts, model"
