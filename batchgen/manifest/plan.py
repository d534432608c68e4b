"""What a batch will cost and where its files go: pure helpers, shared by the commands.

`estimate_requests(jobs)` counts API requests at the advised polling; `check_filename(t)` checks
an `output.filename` template.
"""

from __future__ import annotations

import math
import string
from collections.abc import Collection, Iterable
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from batchgen import models
from batchgen.settings import POLL_AFTER_S
from batchgen.settings import POLL_EVERY_S as DEFAULT_POLL_EVERY_S

if TYPE_CHECKING:
    from batchgen.manifest import Job

FILENAME_FIELDS = ("id", "index", "task_id", "mode")

# --- the polling estimate -------------------------------------------------------------------

FIRST_POLL_S = int(POLL_AFTER_S)  # the run's defaults (batchgen/settings.py)
POLL_EVERY_S = int(DEFAULT_POLL_EVERY_S)
MEAN_GENERATION_S = {5: 75, 10: 105}


def requests_for(body: dict, model: str | None = None) -> int:
    """API requests one job needs at the advised polling: 1 submit, a poll at 60 s, then one
    every 5 s until the mean generation time is reached (the model's spec; Kling 2.1: 75 s for
    5 s videos, 105 s for 10 s). A callback job is told of its end: 1 request."""
    if body.get("request_type") == "callback":
        return 1
    inp = body.get("input")
    duration = inp.get("duration") if isinstance(inp, dict) else None
    spec = models.find(model) if model is not None else None
    if spec is not None:
        mean = sum(spec.generation_for(inp if isinstance(inp, dict) else {})) / 2
    else:
        mean = MEAN_GENERATION_S.get(duration, MEAN_GENERATION_S[10])  # type: ignore[arg-type]
    polls = 1 + max(0, math.ceil((mean - FIRST_POLL_S) / POLL_EVERY_S))
    return 1 + polls


def estimate_requests(jobs: Iterable[Job]) -> int:
    return sum(requests_for(job.body, job.model) for job in jobs)


def check_filename(template: str, meta_keys: Collection[str] = ()) -> list[str]:
    """Problems of an `output.filename` template (empty list: fine). `meta_keys`: the meta
    names every job has, which the template may use as well (`{season}`)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return [f"filename template {template!r} is not valid ({exc}); write '{{{{' for '{{'"]
    out: list[str] = []
    used: set[str] = set()
    sample: dict[str, object] = dict.fromkeys(meta_keys, "x")
    sample.update(id="job-1", index=7, task_id="task_1", mode="pro-image-to-video")
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in sample:
            allowed = ", ".join("{" + f + "}" for f in FILENAME_FIELDS)
            out.append(
                f"unknown placeholder {{{name}}} in filename; use {allowed} or a meta name "
                "every job has"
            )
            continue
        if conversion:
            out.append(f"placeholder {{{name}!{conversion}}}: conversions are not allowed")
            continue
        try:
            format(sample[name], spec or "")
        except ValueError:
            out.append(f"placeholder {{{name}:{spec}}} has a format that does not fit it")
            continue
        used.add(name)
    if out:
        return out
    if not used & {"id", "index", "task_id"}:
        out.append("filename must contain {id}, {index} or {task_id} so each job gets its own file")
    rendered = PurePosixPath(template.format(**sample).replace("\\", "/"))
    if rendered.is_absolute() or ".." in rendered.parts:
        out.append("filename must stay inside output.dir (no absolute path, no '..')")
    return out
