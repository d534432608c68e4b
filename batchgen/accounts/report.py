"""What `batchgen accounts` and `batchgen status` show of the account database: its
accounts, their runs, slots and tasks, and one state file's share. Read-only, never a key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from batchgen.accounts.db import AccountDbError
from batchgen.accounts.identity import db_location, is_postgres


def listing(option: str | None) -> tuple[str | None, list[dict[str, Any]]]:
    """(where the database is, its accounts); (None, []) when opted out, [] when none yet."""
    from batchgen.accounts.session import connect  # the engine side stays out of `status`

    location = db_location(option)
    if location is None:
        return None, []
    if not is_postgres(location) and not Path(location).exists():
        return location, []
    db = connect(location)
    try:
        return location, db.listing()
    finally:
        db.close()


def share_of(state_path: str | Path, accounts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The account a state file's runs used, and how much of it they hold now."""
    state = os.path.abspath(state_path)
    for acct in accounts:
        runs = [r for r in acct["runs"] if r["state"] == state]
        mine = [t for t in acct["tasks"] if t.get("state") == state]
        if not runs and not mine:
            continue
        return {
            "account": acct["label"],
            "tasks_of_this_state": len(mine),
            "tasks_of_the_account": len(acct["tasks"]),
            "reserved": acct["reserved"],
            "runs_living": sum(1 for r in acct["runs"] if r["alive"]),
            "this_state_running": any(r["alive"] for r in runs),
            "paused_for_s": round(float(acct["paused_for"]), 3),
            "stopped": acct["stopped"],
        }
    return None


def render(location: str | None, accounts: list[dict[str, Any]], *, tasks: int = 10) -> str:
    if location is None:
        return "account database: off (--account-db none)\n"
    if not accounts:
        return f"account database: {location}\nno account has run yet\n"
    out = [f"account database: {location}"]
    for a in accounts:
        living = [r for r in a["runs"] if r["alive"]]
        out.append(
            f"\n{a['label']}: {len(a['tasks'])} task(s) in flight, {a['reserved']} submit(s) "
            f"waiting for their answer, {a['requests_last_60s']} request(s) in the last 60 s, "
            f"{len(living)} run(s) living"
        )
        if a["paused_for"] > 0:
            out.append(f"  paused {a['paused_for']:.1f} s more ({a['pause_why']})")
        if a["stopped"]:
            out.append(f"  stopped: {a['stopped']}")
        for r in a["runs"]:
            held = sum(1 for t in a["tasks"] if t["run"] == r["run"])
            state = "living" if r["alive"] else "dead"
            out.append(
                f"  run {r['run']} ({state}, pid {r['pid']} on {r['host']}): {r['state']}, "
                f"{held} task(s), max in flight {r['max_in_flight']}, rate {r['rate']}"
            )
        for t in a["tasks"][:tasks]:
            by = f", polled by run {t['poller']}" if t["poller"] else ""
            out.append(f"    task {t['task_id']} ({t['model']}) of run {t['run']}{by}")
        if len(a["tasks"]) > tasks:
            out.append(f"    ... and {len(a['tasks']) - tasks} more")
    return "\n".join(out) + "\n"


__all__ = ["AccountDbError", "listing", "render", "share_of"]
