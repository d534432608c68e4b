"""A job's states and the one table of moves between them.

The state file is the only memory batchgen has between runs, and a wrong move in it costs
money: a job moved back to `pending` while its task exists is paid twice; a `submitting` job
moved anywhere but through its answer loses a task. So every change of a job's state goes
through the store (batchgen/store/moves.py), which refuses any move this table does not hold.

Who makes each move:
- pending -> submitting: the intent, committed before a POST leaves;
- pending -> failed: an input image refused before anything was sent;
- pending -> cancelled: `batchgen cancel`;
- submitting -> in_flight | pending | ambiguous | orphaned | failed: the submit's answer (a
  task id; surely no task; unknown; an id that cannot be sent back; refused). A run that
  restarts finds `submitting` jobs it cannot judge: ambiguous;
- in_flight -> succeeded | failed | expired: the provider's answer, or the result's lifetime;
- succeeded -> done | failed | expired: the download verified, refused, or too late;
- done -> succeeded: a finished file vanished or changed on disk (fetched again);
- back to pending: `retry` and `--resubmit-ambiguous` (a new task, paid again), a transient
  provider failure resubmitted under the spend policy (in_flight -> pending), or a changed
  manifest body with `--resubmit-changed` (any state but submitting);
- back to in_flight: `retry` of a job whose task exists and may still deliver (polled again).
"""

from __future__ import annotations

import enum


class JobState(enum.StrEnum):
    """The `state` column. The values are what the state file stores: never rename one."""

    PENDING = "pending"
    SUBMITTING = "submitting"  # a POST may be on the wire
    IN_FLIGHT = "in_flight"  # a task exists; its id is recorded
    SUCCEEDED = "succeeded"  # the provider finished; result URLs recorded, files not yet all
    DONE = "done"  # every file on disk and verified
    FAILED = "failed"
    AMBIGUOUS = "ambiguous"  # a task may or may not exist: never resubmitted on its own
    ORPHANED = "orphaned"  # a task exists under an id that cannot be sent back
    EXPIRED = "expired"  # the result's lifetime ended before it was saved
    CANCELLED = "cancelled"


S = JobState
_ANY_BUT_SUBMITTING = frozenset(S) - {S.SUBMITTING}

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    S.PENDING: frozenset({S.SUBMITTING, S.FAILED, S.CANCELLED, S.PENDING}),
    S.SUBMITTING: frozenset({S.IN_FLIGHT, S.PENDING, S.AMBIGUOUS, S.ORPHANED, S.FAILED}),
    S.IN_FLIGHT: frozenset({S.SUCCEEDED, S.FAILED, S.EXPIRED, S.PENDING}),
    S.SUCCEEDED: frozenset({S.DONE, S.FAILED, S.EXPIRED, S.PENDING}),
    S.DONE: frozenset({S.SUCCEEDED, S.PENDING}),
    S.FAILED: frozenset({S.PENDING, S.IN_FLIGHT}),
    S.AMBIGUOUS: frozenset({S.PENDING, S.IN_FLIGHT}),
    S.ORPHANED: frozenset({S.PENDING}),
    S.EXPIRED: frozenset({S.PENDING}),
    S.CANCELLED: frozenset({S.PENDING, S.IN_FLIGHT}),
}
"""from -> the states it may move to. `pending -> pending` is a changed manifest body taken
for a job not yet sent (`--resubmit-changed`)."""

STATES: tuple[JobState, ...] = tuple(JobState)

WORK_LEFT = frozenset({S.PENDING, S.SUBMITTING, S.IN_FLIGHT, S.SUCCEEDED})
"""A run has more to do for these (exit 75 when it stops with any left)."""

FINISHED = frozenset(JobState) - WORK_LEFT
"""Nothing more happens to these without the user (`retry`, `--resubmit-ambiguous`)."""

UNSUCCESSFUL = (S.FAILED, S.EXPIRED, S.AMBIGUOUS, S.ORPHANED)
"""Finished without a result: the run exits 1 and lists them (cancelled is the user's own)."""

RETRYABLE = (S.FAILED, S.AMBIGUOUS, S.ORPHANED, S.EXPIRED, S.CANCELLED)
"""What `batchgen retry` may put back (batchgen/store/moves.py `requeue`)."""


def allowed(src: str, dst: str) -> bool:
    """Whether the table holds the move src -> dst."""
    return JobState(dst) in TRANSITIONS[JobState(src)]


def sources(dst: JobState) -> tuple[JobState, ...]:
    """Every state the table lets move to `dst`, in the enum's order (for SQL guards)."""
    return tuple(s for s in JobState if dst in TRANSITIONS[s])


def _check_table() -> None:
    assert set(TRANSITIONS) == set(JobState), "every state needs a row"
    for src in _ANY_BUT_SUBMITTING:  # --resubmit-changed reaches pending from all of these
        assert S.PENDING in TRANSITIONS[src], src


_check_table()
