"""What a run's end says, as data: the summary every notifier sends, and its words.

Pure: the caller reads the state file and the clock; this module only shapes the facts, so
the JSON POST, the apprise message and the metrics all describe the same run the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from batchgen import exitcodes

MAX_FAILURES = 50  # failures listed in a summary; `failures_total` counts them all
SHOWN_IN_MESSAGE = 5  # failed jobs named in a chat message before "and N more"

EXIT_WORDS = {e.code: e.words for e in exitcodes.TABLE}


def outcome_of(exit_code: int) -> str:
    """--notify-on's words: success is exit 0, incomplete is 75 (work left, normal under
    --no-wait), anything else is a failure."""
    if exit_code == exitcodes.OK:
        return "success"
    if exit_code == exitcodes.WORK_LEFT:
        return "incomplete"
    return "failure"


def exit_words(exit_code: int) -> str:
    return exitcodes.words(exit_code)


@dataclass(frozen=True)
class RunFacts:
    """One finished run as read from its state file and clock."""

    batch: str
    run_id: str  # the uuid of this run, the same in every ping and POST
    run_number: int  # the state file's run row (`status --json`: last_run.id)
    exit_code: int
    how: str
    counts: dict[str, int]
    failures_total: int
    failures: list[tuple[str, str, str]]  # (id, code, message), first few
    spent_micros: int
    cap_micros: int | None
    started_at: float  # epoch seconds
    ended_at: float
    report: str | None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _usd(micros: int | None) -> float | None:
    return None if micros is None else float(Decimal(micros) / 1_000_000)


def summary(facts: RunFacts) -> dict[str, Any]:
    """The JSON body of --notify-json (field names are an interface: add, never rename)."""
    return {
        "batch": facts.batch,
        "run_id": facts.run_id,
        "run_number": facts.run_number,
        "exit_code": facts.exit_code,
        "outcome": outcome_of(facts.exit_code),
        "exit_meaning": exit_words(facts.exit_code),
        "how": facts.how,
        "counts": dict(facts.counts),
        "failures": [
            {"id": i, "code": code, "message": message[:500]}
            for i, code, message in facts.failures[:MAX_FAILURES]
        ],
        "failures_total": facts.failures_total,
        "spent_usd": _usd(facts.spent_micros),
        "cap_usd": _usd(facts.cap_micros),
        "started_at": _iso(facts.started_at),
        "ended_at": _iso(facts.ended_at),
        "duration_s": round(facts.ended_at - facts.started_at, 3),
        "report": facts.report,
    }


def message(facts: RunFacts) -> tuple[str, str]:
    """(title, body) of a chat message: the batch, the exit in words, counts, the first few
    failed jobs then a count, the spend, and where the report is."""
    code = facts.exit_code
    title = f"batchgen: {facts.batch} {outcome_of(code)} (exit {code}: {exit_words(code)})"
    counts = ", ".join(f"{state} {n}" for state, n in facts.counts.items() if n) or "no jobs"
    lines = [facts.how, f"jobs: {counts}"]
    if facts.failures_total:
        shown = facts.failures[:SHOWN_IN_MESSAGE]
        named = ", ".join(f"{i} ({code})" for i, code, _ in shown)
        more = facts.failures_total - len(shown)
        lines.append(f"failed: {named}" + (f" and {more} more" if more > 0 else ""))
    spent = f"spent ${facts.spent_micros / 1_000_000:.2f}"
    if facts.cap_micros is not None:
        spent += f" of a ${facts.cap_micros / 1_000_000:.2f} cap"
    lines.append(spent)
    if facts.report:
        lines.append(f"report: {facts.report}")
    return title, "\n".join(lines)
