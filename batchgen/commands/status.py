"""`batchgen status STATE [--json]`: where a batch stands, from the state file alone.

Counts per state, failures grouped by fail code with an example, ambiguous and orphaned jobs
(both may hold a paid task: they are listed with their notes), results not
yet downloaded whose URLs expire within 48 hours, whether a run holds the state file now, and
how the last run started and ended. Read-only: safe while a run goes on (WAL readers never block
the writer).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batchgen import money
from batchgen import store as st
from batchgen.accounts import report as account_report
from batchgen.accounts.db import AccountDbError
from batchgen.adapters.lock import holder_of
from batchgen.money.prices import usd
from batchgen.store import views
from batchgen.ui.snapshot import LABELS, fmt_duration

EXPIRY_WARNING_S = 48 * 3600.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        allow_abbrev=False,
        help="show where a batch stands: counts, failures, ambiguous jobs, expiring results",
        description="Show where a batch stands, from its state file. Safe during a run.",
    )
    p.add_argument("state", metavar="STATE", help="the state file (batchgen.db)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument(
        "--account-db",
        metavar="PATH|URL|none",
        help="where to read the account's share (default: as a run would choose)",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=20,
        metavar="N",
        help="list at most N ambiguous and N expiring jobs (default 20; 0 for all)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    store = st.Store(Path(args.state), readonly=True)
    state_path = store.path  # a run's folder names its batchgen.db
    try:
        info = collect(store, state_path, limit=args.limit)
    finally:
        store.close()
    info["account"] = _account_share(state_path, args.account_db)
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
    else:
        sys.stdout.write(render(info))
    sys.stdout.flush()
    return 0


def _account_share(state_path: Path, option: str | None) -> dict[str, Any] | None:
    """This state file's share of its account (accounts/report.py); None when unknown. A
    database that cannot be read says so instead of failing `status`."""
    try:
        _, accounts = account_report.listing(option)
    except AccountDbError as exc:
        return {"error": str(exc)}
    return account_report.share_of(state_path, accounts)


def collect(
    store: st.Store, state_path: Path, *, limit: int = 20, now: float | None = None
) -> dict[str, Any]:
    now = time.time() if now is None else now
    db = store.db
    cap = limit if limit > 0 else -1  # SQLite: LIMIT -1 is no limit
    counts = store.jobs.counts()
    failures = [
        {"code": code or "UNKNOWN", "count": n, "example_id": job_id, "example_message": msg}
        for code, n, job_id, msg in views.failures(db)
    ]
    ambiguous, orphaned = (
        [
            {"id": job_id, "note": note, "attempts": attempts}
            for job_id, note, attempts in views.noted(db, state, cap)
        ]
        for state in (st.AMBIGUOUS, st.ORPHANED)
    )
    soon = now + EXPIRY_WARNING_S
    expiring_total, soonest = views.expiring(db, soon, cap)
    expiring = [
        {"id": job_id, "expires_at": _iso(exp), "expires_in_s": round(exp - now, 1)}
        for job_id, exp in soonest
    ]
    holder = holder_of(state_path)
    runs = views.last_runs(db, 2)
    last_run = _run_info(runs[0], holder) if runs else None
    return {
        "state": str(state_path),
        "total": sum(counts.values()),
        "counts": counts,
        "running": {"pid": holder if holder and holder > 0 else None} if holder else None,
        "failures": failures,
        "ambiguous": ambiguous,
        "ambiguous_total": counts[st.AMBIGUOUS],
        "orphaned": orphaned,
        "orphaned_total": counts[st.ORPHANED],
        "expiring": expiring,
        "expiring_total": expiring_total,
        "last_run": last_run,
        "runs": views.runs_count(db),
        "money": money.status_info(store),
        "accounts": store.accounts.overview(),  # several accounts (--accounts): who made what
    }


def _run_info(row: tuple, holder: int | None) -> dict[str, Any]:
    run_id, pid, started, ended, code, how = row
    if ended is not None:
        outcome = "ended"
    elif holder is not None:
        outcome = "running"
    else:
        outcome = "vanished"  # killed (SIGKILL, second signal, power cut) before recording
    return {
        "id": run_id,
        "pid": pid,
        "started_at": _iso(started),
        "ended_at": _iso(ended),
        "exit_code": code,
        "how": how,
        "outcome": outcome,
        "duration_s": round(ended - started, 3) if ended is not None else None,
    }


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _local(iso: str | None) -> str:
    if iso is None:
        return "-"
    ts = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return ts.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def render(info: dict[str, Any]) -> str:
    counts = info["counts"]
    out = [f"{info['state']}: {info['total']} job{'s' if info['total'] != 1 else ''}"]
    shown = [f"{LABELS[s]} {counts[s]}" for s in LABELS if counts.get(s)]
    out.append("  " + (" · ".join(shown) or "no jobs"))
    if info["running"] is not None:
        pid = info["running"]["pid"]
        out.append(f"running now: {'process ' + str(pid) if pid else 'another process'}")
    if info["failures"]:
        out.append("failed, by fail code:")
        width = max(len(f["code"]) for f in info["failures"])
        for f in info["failures"]:
            out.append(
                f"  {f['code']:<{width}}  {f['count']:>5}  e.g. {f['example_id']}: "
                f"{f['example_message']}"
            )
        out.append("  (`batchgen retry STATE --failed` or `--codes CODE,...` queues them again)")
    if info["ambiguous_total"]:
        out.append(
            f"ambiguous: {info['ambiguous_total']} job(s) whose submit may or may not have "
            "created a task (never resubmitted silently):"
        )
        for a in info["ambiguous"]:
            out.append(f"  {a['id']}  {a['note']}")
        _more(out, info["ambiguous_total"], len(info["ambiguous"]))
        out.append(
            "  (`batchgen retry STATE --ambiguous` submits them again: may pay twice for them)"
        )
    if info["orphaned_total"]:
        out.append(
            f"orphaned: {info['orphaned_total']} job(s) whose submit created a task under an id "
            "that cannot be sent back to the API (never polled, never resubmitted silently):"
        )
        for a in info["orphaned"]:
            out.append(f"  {a['id']}  {a['note']}")
        _more(out, info["orphaned_total"], len(info["orphaned"]))
        out.append("  (`batchgen retry STATE --orphaned` submits them again: pays twice for each)")
    if info["expiring_total"]:
        out.append(
            f"not downloaded yet, result URLs expiring within 48 h: {info['expiring_total']} "
            "(run `batchgen resume STATE` soon):"
        )
        for e in info["expiring"]:
            left = e["expires_in_s"]
            when = "expired already" if left <= 0 else f"in {fmt_duration(left)}"
            out.append(f"  {e['id']}  expires {_local(e['expires_at'])} ({when})")
        _more(out, info["expiring_total"], len(info["expiring"]))
    if info.get("money"):
        out.extend(money.render_status(info["money"]))
    for a in info.get("accounts") or []:
        out.append(
            f"account {a['name']}: {a['jobs']} job(s) sent by it, {a['in_flight']} in flight, "
            f"{usd(a['spent_micros'])} spent"
        )
    out.extend(describe_account(info.get("account")))
    out.append(describe_last_run(info["last_run"]))
    return "\n".join(out) + "\n"


def describe_account(share: dict[str, Any] | None) -> list[str]:
    """This batch's share of its account, as the account database has it."""
    if not share:
        return []
    if "error" in share:
        return [f"account: the account database cannot be read ({share['error']})"]
    line = (
        f"account {share['account']}: this batch holds {share['tasks_of_this_state']} of its "
        f"{share['tasks_of_the_account']} task(s) in flight; {share['runs_living']} run(s) "
        "of the account living"
    )
    extra = [f"  paused {share['paused_for_s']:.1f} s more"] if share["paused_for_s"] > 0 else []
    if share["stopped"]:
        extra.append(f"  stopped: {share['stopped']}")
    return [line, *extra]


def describe_last_run(run: dict[str, Any] | None) -> str:
    if run is None:
        return "last run: none yet"
    text = f"last run: started {_local(run['started_at'])}"
    if run["outcome"] == "ended":
        text += f", ended {_local(run['ended_at'])}, exit {run['exit_code']} ({run['how']})"
    elif run["outcome"] == "running":
        text += f", still running (process {run['pid']})"
    else:
        text += (
            f", never recorded its end (process {run['pid']} was killed or crashed; "
            "nothing is lost: the next run continues)"
        )
    return text


def _more(out: list[str], total: int, shown: int) -> None:
    if total > shown:
        out.append(f"  ... and {total - shown} more (--limit 0 shows all)")
