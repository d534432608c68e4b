"""The sandbox's memory between runs: a journal of the tasks an in-process simulator created.

`batchgen run --sandbox` starts a simulator inside the run, so without this an interrupted
sandbox run left tasks that no later simulator knew: `resume --sandbox` then met 404s and
failed every job in flight, which is the very promise (interrupt, resume, nothing lost) a new
user tries first. The journal sits beside the state file. Its first line holds the seed, time
scale and port; each further line one task (id, creation time, the parts of the body that
decide its life). A later sandbox with the same time scale reopens it: same seed, same port
when free (so recorded result URLs still work), every task redrawn identically (tasks.py is
pure given seed, id and body) at its original wall-clock age. Lines are appended and flushed
as tasks are created, so a killed run loses none that were answered.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO, Any

from batchgen import models
from batchgen.models import DEFAULT_MODEL
from batchgen.simulator.server import Simulator
from batchgen.simulator.tasks import Task

VERSION = 1


def journal_path(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".sandbox.jsonl")


class TaskJournal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.header: dict[str, Any] | None = None
        self.records: list[dict[str, Any]] = []
        self._out: IO[str] | None = None

    def load(self, time_scale: float) -> dict[str, Any] | None:
        """The header of an existing journal written at `time_scale`, with its tasks in
        `records`; None (and a fresh journal later) if there is none or it does not fit."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return None
        try:
            header = json.loads(lines[0]) if lines else None
        except ValueError:
            return None
        if (
            not isinstance(header, dict)
            or header.get("version") != VERSION
            or header.get("time_scale") != time_scale
            or not isinstance(header.get("seed"), int)
        ):
            return None
        for line in lines[1:]:
            try:
                rec = json.loads(line)
            except ValueError:
                break  # a line cut by a kill: everything before it is whole
            if isinstance(rec, dict) and isinstance(rec.get("task_id"), str):
                self.records.append(rec)
        self.header = header
        return header

    def attach(self, sim: Simulator) -> None:
        """Restore the loaded tasks into `sim` and record every task it creates from now on."""
        now, wall_ms = sim.now(), time.time() * 1000
        for rec in self.records:
            create_ms = int(rec.get("create_ms", 0))
            body = rec.get("body") if isinstance(rec.get("body"), dict) else {}
            model = rec.get("model") if isinstance(rec.get("model"), str) else DEFAULT_MODEL
            owner = rec.get("owner") if isinstance(rec.get("owner"), str) else ""
            created = now - (wall_ms - create_ms) / 1000
            task = sim.store.restore(rec["task_id"], body, created, create_ms, model, owner)
            sim.charge(task, body)  # the account remembers what it spent
        port = int(sim.origin.rsplit(":", 1)[1])
        header = {
            "version": VERSION,
            "seed": sim.config.seed,
            "time_scale": sim.config.time_scale,
            "port": port,
        }
        if header != self.header:  # new, or the port moved: rewrite it whole, then append
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(
                "".join(json.dumps(r) + "\n" for r in [header, *self.records]), encoding="utf-8"
            )
            tmp.replace(self.path)
            self.header = header
        self._out = self.path.open("a", encoding="utf-8")
        sim.store.on_create = self._append

    def _append(self, task: Task, body: dict[str, Any]) -> None:
        inp = body.get("input") if isinstance(body.get("input"), dict) else {}
        kept = {  # only what decides a task's life (tasks.draw_task)
            "request_type": body.get("request_type"),
            "callback_url": body.get("callback_url"),
            "input": {
                "prompt": inp.get("prompt"),
                "duration": inp.get("duration"),
                "mode": inp.get("mode"),  # the price
            },
        }
        spec = models.find(task.model)
        if spec is not None and spec.parent_field and spec.parent_field in inp:
            kept["input"][spec.parent_field] = inp[spec.parent_field]  # redrawn alike
        rec = {
            "task_id": task.task_id,
            "create_ms": task.create_ms,
            "body": kept,
            "model": task.model,  # where its status is asked
            "owner": task.owner,  # a key's fingerprint: whose tasks an extension may name
        }
        assert self._out is not None
        self._out.write(json.dumps(rec) + "\n")
        self._out.flush()  # in the OS now: a killed run keeps it

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
