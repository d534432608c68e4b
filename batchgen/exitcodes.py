"""batchgen's exit codes, defined once: the number, what it means and what to do about it.

The CLI, the engine's outcome, the exception tree, the notifiers' words and the
documentation's table (docs/reference/exit-codes.md, generated from TABLE) all read them
here. A leaf: it imports nothing of batchgen.
"""

from __future__ import annotations

from dataclasses import dataclass

OK = 0
SOME_FAILED = 1
USAGE = 2  # bad usage, an invalid manifest or an unusable state file: nothing was sent
ACCOUNT = 3
LOCKED = 4
BUDGET = 5  # submits stopped at the spend cap (or the balance): raise it, run again
CRASHED = 70  # a run that ended without an outcome (EX_SOFTWARE), as the runs table records it
WORK_LEFT = 75
INTERRUPTED = 130  # a second SIGINT/SIGTERM, or Ctrl-C outside a run


@dataclass(frozen=True)
class ExitCode:
    code: int
    words: str  # a few words, for a notification's message
    meaning: str  # the table's sentence
    action: str  # what to do


TABLE: tuple[ExitCode, ...] = (
    ExitCode(OK, "every job is done", "every job is done", "nothing"),
    ExitCode(
        SOME_FAILED,
        "finished, but some jobs failed",
        "finished, but some jobs failed, expired, are ambiguous or orphaned; for "
        "`batchgen doctor`, a check failed",
        "`batchgen status`, then `batchgen retry` if wanted; for `doctor`, fix what it names",
    ),
    ExitCode(
        USAGE,
        "bad usage or an unusable state file",
        "bad usage, invalid manifest, or an unusable state file; nothing was sent",
        "fix what the message says",
    ),
    ExitCode(
        ACCOUNT,
        "account-level failure",
        "account-level failure (invalid API key, credits exhausted, or a base URL that "
        "redirects or has no API): submits stopped, tasks already created were still "
        "collected; for `batchgen balance`, the balance could not be read",
        "fix the account or `--base-url`, run again",
    ),
    ExitCode(
        LOCKED,
        "another process holds the state file",
        "another batchgen process holds this state file (`run`, `resume`, `retry`, `cancel`)",
        "wait for it, or stop it with SIGTERM",
    ),
    ExitCode(
        BUDGET,
        "stopped at the spend cap",
        "submits stopped at the spend cap (`--max-spend`), or before spending because the "
        "estimate exceeds the balance; tasks already created were still collected, "
        "unsubmitted jobs stay pending",
        "raise `--max-spend`, add funds or pass `--yes`, run again",
    ),
    ExitCode(
        CRASHED,
        "crashed",
        "not an exit of the command: what the state file records for a run that ended "
        "without an outcome (a crash, or a kill), as `status --json` and the notifiers show it",
        "`batchgen status`; run again, it resumes",
    ),
    ExitCode(
        WORK_LEFT,
        "stopped with work left",
        "stopped with work left (`--no-wait`, `--max-runtime`, `--limit`/`--only`, first "
        "SIGINT/SIGTERM, disk full, a status outage longer than `--status-outage`, stuck tasks)",
        "run again; cron does this",
    ),
    ExitCode(
        INTERRUPTED,
        "interrupted",
        "a second SIGINT/SIGTERM exited at once",
        "run again; `batchgen status` shows what is left",
    ),
)

BY_CODE: dict[int, ExitCode] = {e.code: e for e in TABLE}


def words(code: int) -> str:
    """A few words for an exit code, for a notification."""
    known = BY_CODE.get(code)
    return known.words if known else f"exit {code}"
