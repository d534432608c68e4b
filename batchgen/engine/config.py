"""What an engine is given (EngineConfig), what it counts (EngineStats) and what a run ends
with (RunOutcome and its exit codes)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from batchgen import exitcodes
from batchgen.core.policy import Backoff
from batchgen.core.schedule import PollSchedule
from batchgen.settings import Pace, RunOptions

# The exit codes a run ends with; their one definition, with meanings, is batchgen/exitcodes.py.
EXIT_OK = exitcodes.OK
EXIT_SOME_FAILED = exitcodes.SOME_FAILED
EXIT_ACCOUNT = exitcodes.ACCOUNT
EXIT_BUDGET = exitcodes.BUDGET  # submits stopped at the spend cap (or the balance)
EXIT_WORK_LEFT = exitcodes.WORK_LEFT


@dataclass(frozen=True)
class EngineConfig:
    """The engine's group of the run's settings. Built from RunOptions by
    `engine_config`; settings.py holds every default a user can change; only the engine's
    own limits have defaults here."""

    output_dir: Path
    filename_template: str
    max_in_flight: int
    poll: PollSchedule
    backoff: Backoff
    # An unreadable status answer never fails a task (batchgen/engine/outage.py): its polls
    # back off up to poll_backoff.cap, and after status_outage_s of its status unreadable it
    # is not polled again in this run. None: keep asking for as long as it takes.
    poll_backoff: Backoff
    status_outage_s: float | None
    download_workers: int
    result_lifetime_s: float
    no_wait: bool  # cron: submit what fits, collect what is done, exit
    drain_s: float  # on stop: how long in-flight HTTP calls may finish
    page_size: int  # pending jobs read from the state file at a time
    callback_grace_s: float  # after the end of the expected generation time
    callback_poll_every_s: float
    # News from callbacks costs at most one status request per task per this window (see
    # batchgen.engine.wakes); news within it is confirmed when it ends.
    callback_guard_s: float
    # A task still pending or processing this long after its submit (30 times the documented
    # generation time) stops being polled in this run, so the run can end; it stays in flight
    # and keeps its slot, and the next run polls it again. None: poll for as long as it takes.
    stuck_after_s: float | None
    submit_limit: int | None = None  # jobs submitted in this run at most (--limit)
    only_ids: frozenset[str] | None = None  # submit only these jobs (--only)
    max_submit_tries: int = 8  # per job per run, for answers that prove no task was made
    max_not_found: int = 5  # "unknown task" answers in a row before failing the job
    download_tries: int = 3  # per file per run, beyond the downloader's own retries


def engine_config(opts: RunOptions, pace: Pace | None = None, **engine_limits: int) -> EngineConfig:
    """The engine's group of a run's settings, with its durations resolved (`pace`, else
    `opts.paced()`): the only place a RunOptions becomes an EngineConfig. `engine_limits`
    (max_submit_tries, max_not_found, download_tries) are for tests; runs use EngineConfig's
    own."""
    p = pace or opts.paced()
    lim = opts.limits
    return EngineConfig(
        output_dir=opts.files.output_dir,
        filename_template=opts.files.filename_template,
        max_in_flight=lim.max_in_flight,
        poll=PollSchedule(poll_after=p.poll_after_s, poll_every=p.poll_every_s),
        backoff=Backoff(base=p.backoff_base_s, cap=p.backoff_cap_s),
        download_workers=lim.download_concurrency,
        result_lifetime_s=opts.timing.result_lifetime_s,
        no_wait=opts.timing.no_wait,
        drain_s=opts.timing.drain_s,
        page_size=lim.page_size,
        callback_grace_s=p.callback_grace_s,
        callback_poll_every_s=p.callback_poll_every_s,
        callback_guard_s=p.callback_guard_s,
        stuck_after_s=p.stuck_after_s or None,  # 0: never
        poll_backoff=Backoff(
            base=min(p.backoff_base_s, p.poll_backoff_cap_s), cap=p.poll_backoff_cap_s
        ),
        status_outage_s=p.status_outage_s or None,  # 0: never
        submit_limit=lim.submit_limit,
        only_ids=frozenset(lim.only_ids) if lim.only_ids is not None else None,
        **engine_limits,
    )


@dataclass
class EngineStats:
    """Live figures for progress displays; read-only for everyone but the engine."""

    submitted: int = 0
    polls: int = 0
    done: int = 0
    failed: int = 0
    ambiguous: int = 0
    orphaned: int = 0
    expired: int = 0
    downloaded_bytes: int = 0
    rate_limited: int = 0
    started_at: float = field(default_factory=time.monotonic)


@dataclass
class RunOutcome:
    exit_code: int
    how: str
    counts: dict[str, int]
    account_error: str | None = None
    messages: list[str] = field(default_factory=list)

    def __getitem__(self, state: str) -> int:
        """`outcome["done"]`: one state's count, as when `batchgen.outcome()` gave a dict."""
        return self.counts[state]


def describe(outcome: RunOutcome) -> str:
    parts = [f"{k} {v}" for k, v in outcome.counts.items() if v]
    return f"{outcome.how}: " + (", ".join(parts) or "no jobs")
