"""Jobs that continue other jobs' tasks, in a run: the waiting set.

A child (`extends`, batchgen/core/chains.py) is submitted only once its parent succeeded, with
the parent's task id in the placeholder's place. Until then it holds no in-flight slot: the
submitter's pass skips it and notes it under its parent here; when the parent's coroutine
ends, the engine asks `ended(parent)`: succeeded, and its children get a new pass; ended
without a result, and they fail with PARENT_FAILED (their own children with them), nothing
paid. A parent done in an earlier run is read from the state file: its recorded task id goes.
"""

from __future__ import annotations

import logging
from typing import Any

from batchgen import store as st
from batchgen.core.chains import PARENT_FAILED, Next, decide, fill, parent_in, why_failed
from batchgen.engine.context import RunContext
from batchgen.errors import IllegalTransition
from batchgen.inputs.prepare import InputRejected, PrepareInputs
from batchgen.store.links import Parent

log = logging.getLogger("batchgen.engine")


class Chains:
    def __init__(self, run: RunContext) -> None:
        self.run = run
        self.parents: dict[int, str] = run.store.links.children()  # child seq -> parent job id
        self.waiting: dict[int, dict[int, st.JobRow]] = {}  # parent seq -> its waiting children
        self._held: set[int] = set()  # the children in `waiting`: a pass skips them cheaply

    def __repr__(self) -> str:
        n = sum(len(c) for c in self.waiting.values())
        return f"<Chains children={len(self.parents)} waiting={n} on {len(self.waiting)}>"

    def may_go(self, row: st.JobRow) -> bool:
        """Whether a pending job may take a slot now: yes unless it waits for its parent (noted
        here, no slot) or its parent ended without a result (it fails here, unsent)."""
        parent_id = self.parents.get(row.seq)
        if parent_id is None:
            return True
        if row.seq in self._held:  # still waiting: its parent has not ended since (no query)
            return False
        parent = self.run.store.links.parent(parent_id)
        verdict = decide(parent.state, parent.task_id)
        if verdict is Next.GO:
            return True
        if verdict is Next.WAIT and parent.seq is not None:
            self.waiting.setdefault(parent.seq, {})[row.seq] = row
            self._held.add(row.seq)
        else:
            self._fail(row, parent)
        return False

    def ended(self, seq: int) -> bool:
        """A job's coroutine ended: True when children wait for it and may go now (the engine
        starts a new pass); children of a parent that ended without a result fail here."""
        children = self.waiting.get(seq)
        if not children:
            return False
        row = self.run.store.jobs.by_seq(seq)
        parent = self.run.store.links.parent(row.id) if row is not None else None
        if parent is None:
            return False
        verdict = decide(parent.state, parent.task_id)
        if verdict is Next.WAIT:
            return False  # e.g. put back to pending after a transient failure
        del self.waiting[seq]
        self._held.difference_update(children)
        if verdict is Next.GO:
            return True
        for child in children.values():
            self._fail(child, parent)
        return False

    def _fail(self, row: st.JobRow, parent: Parent) -> None:
        """PARENT_FAILED, then the same for the children waiting on this one. A child moved
        meanwhile by another process (`batchgen cancel`) is left as it is."""
        try:
            self.run.fail(row, PARENT_FAILED, why_failed(parent.id, parent.state, parent.fail_code))
        except IllegalTransition as exc:
            log.info("%s: not failed for its parent (%s)", row.id, exc)
        for child in self.waiting.pop(row.seq, {}).values():
            self._held.discard(child.seq)
            self._fail(child, self.run.store.links.parent(row.id))

    def still_waiting(self) -> int:
        return sum(len(c) for c in self.waiting.values())

    def wrap(self, inputs: PrepareInputs | None) -> PrepareInputs | None:
        """The submit's input hook, with the parent's task id put in its placeholder's place
        first (read now from the state file). A batch without links keeps the hook as it is."""
        if not self.parents:
            return inputs

        async def prepare(job_id: str, body: dict[str, Any]) -> dict[str, Any]:
            body = self.with_parent_task(body)
            return body if inputs is None else await inputs(job_id, body)

        return prepare

    def with_parent_task(self, body: dict[str, Any]) -> dict[str, Any]:
        inp = body.get("input")
        names = [p for v in inp.values() if (p := parent_in(v))] if isinstance(inp, dict) else []
        if not names:
            return body
        parent = self.run.store.links.parent(names[0])
        if decide(parent.state, parent.task_id) is not Next.GO or parent.task_id is None:
            # never reached through may_go; a guard so no placeholder is ever sent
            raise InputRejected(
                why_failed(parent.id, parent.state, parent.fail_code), PARENT_FAILED
            )
        return fill(body, parent.task_id)
