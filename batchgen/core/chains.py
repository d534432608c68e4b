"""Jobs that build on jobs (`extends: PARENT_ID`): the pure rules.

Some models continue another task: veo-3-1-extend names a finished veo-3-1 task in `taskId`,
grok-video a grok-image task in `task_id` (a model spec's `parent_field`/`parent_model`). The
parent's task id exists only once the parent ran, so a manifest names the parent *job*; the
body carries a placeholder for it (`batchgen:extends:<job id>`: the job's identity follows its
parent, as a local image's follows its content) and the engine puts the parent's task id in
its place right before the child's submit, once the parent succeeded. A parent that ends
without a result fails its children with PARENT_FAILED, and nothing is paid for them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any

PLACEHOLDER = "batchgen:extends:"
PARENT_FAILED = "PARENT_FAILED"
"""The fail code of a job whose parent ended without a result (it was never submitted)."""

READY = frozenset({"succeeded", "done"})  # the parent's task finished with a result
WAITING = frozenset({"pending", "submitting", "in_flight"})  # it may still get one


def placeholder(parent_id: str) -> str:
    return f"{PLACEHOLDER}{parent_id}"


def parent_in(value: Any) -> str | None:
    """The parent job id a placeholder names, else None."""
    if isinstance(value, str) and value.startswith(PLACEHOLDER) and len(value) > len(PLACEHOLDER):
        return value[len(PLACEHOLDER) :]
    return None


def fill(body: dict[str, Any], task_id: str) -> dict[str, Any]:
    """`body` with every placeholder of its `input` replaced by the parent's task id."""
    inp = body.get("input")
    if not isinstance(inp, dict) or not any(parent_in(v) for v in inp.values()):
        return body
    return {**body, "input": {k: task_id if parent_in(v) else v for k, v in inp.items()}}


class Next(enum.Enum):
    WAIT = "wait"  # the parent may still succeed: no slot, no submit
    GO = "go"  # the parent succeeded: submit with its task id
    FAIL = "fail"  # the parent ended without a result: fail with PARENT_FAILED


def decide(parent_state: str | None, parent_task_id: str | None) -> Next:
    """What a pending child does, from its parent's row (None: no such job)."""
    if parent_state in READY and parent_task_id:
        return Next.GO
    if parent_state in WAITING:
        return Next.WAIT
    return Next.FAIL


def why_failed(parent_id: str, parent_state: str | None, parent_code: str | None) -> str:
    """The message of a PARENT_FAILED job."""
    if parent_state is None:
        return f"its parent job {parent_id!r} is not in this batch"
    code = f" ({parent_code})" if parent_code else ""
    return f"its parent job {parent_id!r} ended {parent_state}{code}: nothing was sent for it"


def link_problems(
    links: Mapping[str, tuple[str, str | None]],
    parent_field: Callable[[str], str],
    parent_model: Callable[[str], str],
) -> dict[str, str]:
    """job id -> why its `extends` cannot be kept, for every job whose `extends` is wrong.

    `links` maps each job id to (its model, the job it extends or None); `parent_field(model)`
    is the field a model names its parent in ("" when it builds on nothing) and
    `parent_model(model)` the model that parent must be. Checked: the model can extend, the
    parent exists, no cycle, and the parent is of the model the child continues."""
    out: dict[str, str] = {}
    takes: dict[str, str] = {}  # "p" -> "p-1": a job with `repeat` has numbered ids
    for job_id in links:
        base, sep, n = job_id.rpartition("-")
        if sep and n.isdigit():
            takes.setdefault(base, job_id)
    for job_id, (model, parent) in links.items():
        if parent is None:
            continue
        if not parent_field(model):
            out[job_id] = (
                f"{model} does not continue another task; extends is for models that do "
                "(veo-3-1-extend: taskId, grok-video: task_id)"
            )
        elif parent not in links:
            hint = (
                f" (with repeat, its takes are {takes[parent]!r}, ...)" if parent in takes else ""
            )
            out[job_id] = f"no job has id {parent!r} in this batch{hint}"
        elif parent == job_id:
            out[job_id] = "a job cannot extend itself"
    for job_id, cycle in _cycles(links).items():
        out.setdefault(job_id, "a cycle: " + " -> ".join(cycle))
    for job_id, (model, parent) in links.items():
        if parent is None or job_id in out or parent not in links:
            continue
        want, got = parent_model(model), links[parent][0]
        if want and got != want:
            out[job_id] = f"job {parent!r} is a {got} job; {model} continues a {want} task"
    return out


def _cycles(links: Mapping[str, tuple[str, str | None]]) -> dict[str, list[str]]:
    """Each job on a cycle of `extends` -> the cycle from it back to it. Every job has at most
    one parent, so walking up from each job once finds every cycle in linear time."""
    state: dict[str, int] = {}  # 1: on the current walk, 2: done
    found: dict[str, list[str]] = {}
    for start in links:
        walk: list[str] = []
        node: str | None = start
        while node is not None and node in links and state.get(node) is None:
            state[node] = 1
            walk.append(node)
            node = links[node][1]
        if node is not None and state.get(node) == 1:
            loop = walk[walk.index(node) :]
            for n, member in enumerate(loop):
                found[member] = [*loop[n:], *loop[:n], member]
        for member in walk:
            state[member] = 2
    return found
