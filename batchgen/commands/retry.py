"""`batchgen retry STATE [--failed] [--codes C,...] [--ambiguous] [--orphaned] [--expired]
[--ids ID,...]`.

Puts the chosen jobs back for the next run, and says how many. A job whose task exists and may
still deliver keeps it and is polled again (failed downloads or file checks while the results
live, a status that was unreadable): nothing is paid again. The others (failed by the provider,
unknown to it, ambiguous with no task id, orphaned, expired) get a new task, paid again. State
flags add up (`--failed --ambiguous` takes both); `--ids` narrows them to those ids, or alone
takes those ids in any state that can be retried. Orphaned jobs (a task was surely created,
under an id that cannot be sent back) are taken only by `--orphaned` or by naming them in
`--ids`, never by `--ambiguous`: each pays a second time. Takes the state lock: while a run is
going on it exits 4 instead of racing the engine.
"""

from __future__ import annotations

import argparse
import sys

from batchgen import store as st
from batchgen.commands.argtypes import id_list
from batchgen.commands.common import locked_store
from batchgen.errors import UsageError
from batchgen.store import views

RETRYABLE = (st.FAILED, st.AMBIGUOUS, st.ORPHANED, st.EXPIRED, st.CANCELLED)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "retry",
        allow_abbrev=False,
        help="queue failed, ambiguous, orphaned, expired or cancelled jobs again for the next run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("state", metavar="STATE", help="the state file (batchgen.db)")
    p.add_argument("--failed", action="store_true", help="every failed job")
    p.add_argument(
        "--codes",
        type=id_list,
        metavar="CODE,...",
        help="failed jobs with these fail codes, any case (e.g. CONTENT_VIOLATION,"
        "INVALID_IMAGE_URL); a code no failed job has is an error",
    )
    p.add_argument(
        "--ambiguous",
        action="store_true",
        help="jobs whose submit may have created a task (may pay twice for them)",
    )
    p.add_argument(
        "--orphaned",
        action="store_true",
        help="jobs whose task was created under an id batchgen cannot track (pays twice)",
    )
    p.add_argument("--expired", action="store_true", help="jobs whose results expired")
    p.add_argument("--cancelled", action="store_true", help="jobs cancelled earlier")
    p.add_argument("--ids", type=id_list, metavar="ID,...", help="only these job ids")
    p.add_argument(
        "--dry-run", action="store_true", help="say what would be retried, change nothing"
    )
    p.set_defaults(handler=run)


def select(store: st.Store, args: argparse.Namespace) -> tuple[list[tuple[int, str, str]], str]:
    """(seq, id, state) of the chosen jobs, and a description of the choice."""
    states = [st.FAILED] if args.failed or args.codes else []
    for flag, state in (
        ("ambiguous", st.AMBIGUOUS),
        ("orphaned", st.ORPHANED),
        ("expired", st.EXPIRED),
        ("cancelled", st.CANCELLED),
    ):
        if getattr(args, flag):
            states.append(state)
    if not states and not args.ids:
        raise UsageError(
            "say which jobs to retry: --failed, --codes CODE,..., --ambiguous, --orphaned, "
            "--expired, "
            "--cancelled and/or --ids ID,... (see `batchgen status STATE`)"
        )
    codes = _known_codes(store, args.codes) if args.codes else ()
    rows = views.retry_candidates(store.db, states, codes)
    where = ", ".join(states) if states else "any retryable state"
    if args.ids:
        wanted = set(args.ids)
        rows = [r for r in rows if r[1] in wanted]
    return rows, where


def _known_codes(store: st.Store, given: list[str]) -> list[str]:
    """The --codes, upper-cased (fail codes are CONTENT_VIOLATION, never content_violation),
    each held by some failed job here: a typo must not retry nothing without a word."""
    failures = [(code, n) for code, n, _, _ in views.failures(store.db) if code]
    stored = {code.upper(): code for code, _ in failures}  # as the state file spells them
    unknown = [code for code in given if code.strip().upper() not in stored]
    if unknown:
        here = ", ".join(f"{code} ({n})" for code, n in sorted(failures)) or "none"
        raise UsageError(
            f"--codes: no failed job has fail code {', '.join(unknown)}; the failed jobs' codes "
            f"in this state file: {here} (see `batchgen status STATE`)"
        )
    return [stored[code.strip().upper()] for code in given]


def run(args: argparse.Namespace) -> int:
    with locked_store(args.state) as store:
        rows, _ = select(store, args)
        problems = explain_ids(store, args.ids, {r[1] for r in rows}, RETRYABLE) if args.ids else []
        n, polled = (0, 0) if args.dry_run else store.moves.requeue(seq for seq, _, _ in rows)
    for line in problems:
        print(f"warning: {line}", file=sys.stderr)
    by_state: dict[str, int] = {}
    for _, _, state in rows:
        by_state[state] = by_state.get(state, 0) + 1
    detail = ", ".join(f"{state} {k}" for state, k in by_state.items())
    if args.dry_run:
        print(
            f"would put {len(rows)} job(s) back in the queue" + (f" ({detail})" if detail else "")
        )
        return 0
    print(
        f"{n + polled} job(s) put back in the queue"
        + (f" ({detail})" if detail else "")
        + (
            f"; {n} get a new task, {polled} keep theirs and are polled again"
            if n and polled
            else f"; {polled} keep their task and are polled again"
            if polled
            else ""
        )
        + ("; the next `batchgen resume STATE` (or cron run) continues them" if n + polled else "")
    )
    if by_state.get(st.AMBIGUOUS):
        print(
            f"note: {by_state[st.AMBIGUOUS]} of them were ambiguous: if their first submit did "
            "create a task, you pay for that job twice",
            file=sys.stderr,
        )
    if by_state.get(st.ORPHANED):
        print(
            f"warning: {by_state[st.ORPHANED]} of them were orphaned: their first task exists "
            "and was paid for; the next run pays for each of them again",
            file=sys.stderr,
        )
    return 0


def explain_ids(
    store: st.Store, ids: list[str], chosen: set[str], allowed: tuple[str, ...]
) -> list[str]:
    """Why some of the --ids were not taken: unknown, or in a state the command does not touch."""
    out: list[str] = []
    unknown: list[str] = []
    for job_id in ids:
        if job_id in chosen:
            continue
        row = store.jobs.get(job_id)
        if row is None:
            unknown.append(job_id)
        elif row.state not in allowed:
            out.append(f"{job_id} is {row.state}: left as it is")
        else:
            out.append(f"{job_id} is {row.state}, which the other options did not select")
    if unknown:
        shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        out.append(f"{len(unknown)} unknown id(s): {shown}")
    return out
