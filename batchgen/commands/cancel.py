"""`batchgen cancel STATE [--ids ID,...]`: stop submitting those jobs (all pending ones without
--ids). Tasks already created run to their end and are still downloaded; `batchgen retry
--cancelled` undoes a cancel. Takes the state lock: exits 4 while a run is going on.
"""

from __future__ import annotations

import argparse
import sys

from batchgen import store as st
from batchgen.commands.argtypes import id_list
from batchgen.commands.common import locked_store
from batchgen.commands.retry import explain_ids


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cancel",
        allow_abbrev=False,
        help="stop submitting jobs (tasks already created still finish and are downloaded)",
        description=__doc__,
    )
    p.add_argument("state", metavar="STATE", help="the state file (batchgen.db)")
    p.add_argument(
        "--ids", type=id_list, metavar="ID,...", help="only these jobs (default: every pending job)"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    with locked_store(args.state) as store:
        if args.ids:
            rows = [
                (r.seq, r.id)
                for i in args.ids
                if (r := store.jobs.get(i)) and r.state == st.PENDING
            ]
        else:
            rows = [(r.seq, r.id) for r in store.jobs.in_state(st.PENDING)]
        n = store.moves.cancel(seq for seq, _ in rows)
        problems = (
            explain_ids(store, args.ids, {i for _, i in rows}, (st.PENDING,)) if args.ids else []
        )
        counts = store.jobs.counts()
    for line in problems:
        print(f"warning: {line}", file=sys.stderr)
    running = counts[st.SUBMITTING] + counts[st.IN_FLIGHT] + counts[st.SUCCEEDED]
    print(f"{n} pending job(s) cancelled: they will not be submitted")
    if running:
        print(
            f"{running} job(s) already submitted still run to their end and are downloaded by "
            "the next run"
        )
    return 0
