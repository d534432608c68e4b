"""A YAML job with `matrix:` -> one job per combination, each built and checked as if written
by hand, every mistake placed (file:line) and told with the combination it comes from.

The expansion is `matrix.py`'s; the placeholders and ids are `placeholders.py`'s. Here: which
variables set request fields, which mistakes stop the manifest, and where they point.
"""

from __future__ import annotations

import re
from typing import Any

from batchgen import models
from batchgen.errors import ManifestProblem
from batchgen.manifest import meta as jobmeta
from batchgen.manifest.jobs import ID_PATTERN, _Build
from batchgen.manifest.matrix import Combination, MatrixTooBig, expand, label, same
from batchgen.manifest.placeholders import combination_id, names_in, render_tree, strings
from batchgen.manifest.places import YamlSource
from batchgen.manifest.text import RawJob

DEFAULT_MAX_JOBS = 1000
"""The most jobs one matrix may give (combinations times `repeat`): a typo in a list should
not order 40,000 videos. A manifest raises it with `max_jobs:` at its top level."""

_NOT_VARIABLES = ("repeat", "input", "matrix", "meta")
_SHOWN = 3  # combinations named in one message


class MatrixSource(YamlSource):
    """A combination's place: the job's lines, except that a field a variable sets points at
    that variable in `matrix:` (the value to fix is there, not in the job)."""

    __slots__ = ("set_by",)

    def __init__(self, base: YamlSource, set_by: dict[str, tuple]) -> None:
        super().__init__(base.display, base.lines, base.prefix, base.raw)
        self.set_by = set_by

    def locate(self, parts: tuple) -> tuple[str, str] | None:
        name = parts[1] if len(parts) > 1 and parts[0] == "input" else parts[0] if parts else None
        if name in self.set_by:
            return self.at(self.set_by[name])
        return super().locate(parts)


def add_matrix_job(build: _Build, job: dict[str, Any], src: YamlSource, max_jobs: int) -> None:
    """Expand `job` into `build`: its combinations as jobs, or its mistakes as problems."""
    matrix = job["matrix"]
    if not isinstance(matrix, dict):
        return  # the manifest schema has said what it must be
    lists = {k: v for k, v in matrix.items() if k not in ("include", "exclude")}
    entries = {
        k: matrix.get(k) if isinstance(matrix.get(k), list) else [] for k in ("include", "exclude")
    }

    def problem(spec: tuple, message: str) -> None:
        build.add(ManifestProblem(*src.at(spec), message))

    names = [
        *lists,
        *(
            k
            for key in ("include", "exclude")
            for e in entries[key]
            if isinstance(e, dict)
            for k in e
        ),
    ]
    bad = False
    for name in dict.fromkeys(names):
        why = jobmeta.name_problem(name) or (
            f"{name!r} cannot be a matrix variable" if name in _NOT_VARIABLES else None
        )
        if why is not None:
            problem(("matrix", name) if name in lists else ("matrix",), why)
            bad = True
    if not lists and not entries["include"]:
        problem(("matrix",), "a matrix needs at least one variable with a list of values")
        bad = True
    if bad or not all(isinstance(v, list) and v for v in lists.values()):
        return  # empty lists and wrong types: the manifest schema placed them
    count = _count(job.get("repeat"))
    try:
        expansion = expand(
            lists,
            _dicts(entries["exclude"]),
            _dicts(entries["include"]),
            cap=max(max_jobs // count, 0),
        )
    except MatrixTooBig:
        problem(
            ("matrix",),
            f"the matrix gives more than {max_jobs} jobs (max_jobs, default "
            f"{DEFAULT_MAX_JOBS}); if you mean it, raise it with `max_jobs: N` at the top "
            "of the manifest",
        )
        return
    combos = expansion.combinations
    if not combos:
        problem(("matrix",), "the matrix gives no combination (every one is excluded)")
        return
    variables = set(expansion.variables)
    if not _placeholders_ok(job, combos, variables, problem):
        return
    own_meta = jobmeta.clean(job.get("meta"), lambda at, m: problem(("meta", *at), m))
    for key in own_meta.keys() & variables:
        problem(("meta", key), f"{key!r} is also a matrix variable, which sets it")
    set_by = _field_variables(build, job, lists, expansion.variables, problem)
    if set_by is None:
        return
    _add_combinations(build, job, src, combos, set_by, lists, own_meta, problem)


def _add_combinations(
    build: _Build,
    job: dict[str, Any],
    src: YamlSource,
    combos: list[Combination],
    set_by: dict[str, tuple],
    lists: dict[str, list[Any]],
    own_meta: dict[str, Any],
    problem: Any,
) -> None:
    """Each combination as a job; the same body mistake in many combinations is told once."""
    template = job.get("id") if isinstance(job.get("id"), str) else None
    ids: dict[str, str] = {}
    grouped: dict[tuple[str, str, str], list[str]] = {}
    written = {k: v for k, v in job.items() if k not in ("matrix", "meta", "id")}
    id_re = re.compile(ID_PATTERN)
    for combo in combos:
        job_id = combination_id(template, combo, job)
        if not id_re.fullmatch(job_id):
            problem(
                ("id",),
                f"combination {label(combo)} gives the id {job_id!r}, which is not "
                "1 to 128 letters, digits, '.', '_' or '-' starting with a letter or digit",
            )
            continue
        if job_id in ids:
            problem(
                ("id",),
                f"combinations {ids[job_id]} and {label(combo)} both give the id "
                f"{job_id!r}: put a variable that tells them apart in the id",
            )
            continue
        ids[job_id] = label(combo)
        raw = render_tree(written, combo)
        for name, value in combo.items():
            if name in set_by:
                inp = raw.get("input")
                if isinstance(inp, dict) and name in inp:
                    inp[name] = value
                else:
                    raw[name] = value
        place = MatrixSource(src, {f: _value_at(at, combo, lists) for f, at in set_by.items()})
        own = raw.get("model")
        spec = (
            models.find(build.model if own is None else own)
            if isinstance(own, str | None)
            else None
        )
        top, inp = build.split(raw, place, spec.aliases if spec else build.all_aliases)
        start = len(build.problems)
        build.job(
            RawJob(
                top,
                inp,
                job_id,
                job.get("repeat"),
                place,
                own,
                meta={**own_meta, **combo},
                matrix=src.where,
                extends=raw.get("extends"),
            )
        )
        news = build.problems[start:]
        del build.problems[start:]
        for entry in news:
            if isinstance(entry, ManifestProblem):
                key = (entry.where, entry.json_path, entry.message)
                grouped.setdefault(key, []).append(label(combo))
            else:
                build.problems.append(entry)
    for (where, path, message), labels in grouped.items():
        shown = "; ".join(labels[:_SHOWN])
        more = f" and {len(labels) - _SHOWN} more" if len(labels) > _SHOWN else ""
        word = "combination" if len(labels) == 1 else "combinations"
        build.add(ManifestProblem(where, path, f"{message} (in {word} {shown}{more})"))


def _placeholders_ok(
    job: dict[str, Any], combos: list[Combination], variables: set[str], problem: Any
) -> bool:
    """Every `{name}` names a variable, and every combination has a value for it."""
    ok = True
    for path, text in strings({k: v for k, v in job.items() if k != "matrix"}):
        for name in names_in(text):
            if name not in variables:
                known = ", ".join(sorted(variables))
                problem(
                    path, f"placeholder {{{name}}} names no matrix variable; the matrix has {known}"
                )
                ok = False
                continue
            lacking = [c for c in combos if name not in c]
            if lacking:
                more = f" and {len(lacking) - 1} more" if len(lacking) > 1 else ""
                problem(
                    path,
                    f"placeholder {{{name}}} has no value in combination {label(lacking[0])}{more}",
                )
                ok = False
    return ok


def _field_variables(
    build: _Build, job: dict[str, Any], lists: dict, variables: tuple[str, ...], problem: Any
) -> dict[str, tuple] | None:
    """Variables named like a request field (or its alias) -> where their values are written.
    A job that also writes such a field itself must write it as `{name}`."""
    aliases = {name: target for target, names in build.all_aliases.items() for name in names}
    fields = {*build.fields.top, *build.fields.inputs, *aliases, "model"}
    set_by: dict[str, tuple] = {}
    ok = True
    for name in variables:
        if name not in fields:
            continue
        inp = job.get("input")
        for spec, written in (
            ((name,), job.get(name)),
            (("input", name), inp.get(name) if isinstance(inp, dict) else None),
        ):
            if written is not None and written != f"{{{name}}}":
                problem(
                    spec,
                    f"the matrix variable {name!r} sets {name}: write it here as "
                    f"'{{{name}}}' or not at all",
                )
                ok = False
        at = ("matrix", name) if name in lists else ("matrix", "include")
        set_by[name] = at
        if name in aliases:
            set_by[aliases[name]] = at
    return set_by if ok else None


def _value_at(at: tuple, combo: Combination, lists: dict[str, list[Any]]) -> tuple:
    """The place of this combination's value of a variable: its item in the list, if there."""
    if len(at) == 2 and at[1] in lists:
        values = lists[at[1]]
        value = combo.get(at[1])
        for i, v in enumerate(values):
            if same(v, value):
                return (*at, i)
    return at


def _text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _dicts(entries: list[Any]) -> list[dict[str, Any]]:
    return [e for e in entries if isinstance(e, dict)]


def _count(repeat: Any) -> int:
    if isinstance(repeat, int) and not isinstance(repeat, bool) and repeat >= 1:
        return repeat
    return 1
