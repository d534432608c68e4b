"""A manifest's jobs as they are built: each raw job merged over the defaults, its aliases
resolved, its body checked against its model's request schema, its id given or derived, its
local image files found, and every problem kept with its place (file, line, field)."""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchgen import models
from batchgen.core.chains import link_problems, placeholder
from batchgen.errors import ManifestError, ManifestProblem
from batchgen.inputs.local import LocalImage, LocalResolver
from batchgen.inputs.localvideo import LocalVideo
from batchgen.manifest.csvfile import CsvSource
from batchgen.manifest.jobmodels import Rules, model_rules, union_fields
from batchgen.manifest.media import resolve_media
from batchgen.manifest.places import YamlSource, path_parts
from batchgen.manifest.schema import (
    DEFAULT_MODEL,
    RequestFields,
    known_models,
    validate_document,
    validate_request,
)
from batchgen.manifest.text import RawJob, Source
from batchgen.settings import DEFAULT_FILENAME_TEMPLATE

ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
MAX_PROBLEMS = 1000
"""Problems beyond this many are counted, not listed (a 100k-row file can be wrong 100k times)."""
DEFAULT_FILENAME = DEFAULT_FILENAME_TEMPLATE  # the run's default (batchgen/settings.py)
MANIFEST_SCHEMA = "manifest.schema.json"
MAX_REPEAT = 1000  # also in schemas/manifest.schema.json

_ID_RE = re.compile(ID_PATTERN)
_JOB_META = ("id", "repeat", "input", "model", "matrix", "meta", "extends")


@dataclass(frozen=True, slots=True)
class Job:
    id: str  # given or derived
    body: dict  # exactly the JSON body to POST
    where: str  # "manifests/x.yaml:12" or "manifests/x.csv: row 3"
    index: int  # 0-based position in the expanded job list (manifest order)
    model: str = DEFAULT_MODEL  # the job's own, else the manifest's `model`
    meta: Mapping[str, Any] = field(default_factory=dict)  # `meta:`; a matrix job's variables
    matrix: str | None = None  # "manifests/x.yaml:12": the matrix job it was expanded from
    extends: str | None = None  # the job whose task this one continues (batchgen/core/chains)


@dataclass
class Manifest:
    path: Path
    name: str  # from `name`, else the file stem
    model: str  # default "kling-2-1"
    output_dir: str | None  # output.dir as written, or None
    filename_template: str  # output.filename, default "{id}.mp4"
    jobs: list[Job] = field(default_factory=list)
    # Image files named by jobs, by content (batchgen.inputs.local), and `images:` settings.
    local_images: dict[str, LocalImage | LocalVideo] = field(default_factory=dict)
    image_store: str | None = None
    image_url_ttl: str | None = None
    budget: dict[str, Any] = field(default_factory=dict)  # `budget:` (batchgen/money/)

    def __repr__(self) -> str:
        return (
            f"<Manifest {str(self.path)!r} name={self.name!r} model={self.model!r} "
            f"jobs={len(self.jobs)}>"
        )


# --- building the jobs ----------------------------------------------------------------------


class _Build:
    """Collects jobs and problems for one manifest file."""

    def __init__(self, display: str, model: str) -> None:
        self.display = display
        self.model = model  # the manifest's: a job without its own `model` gets this one
        self._rules: dict[str, Rules] = {model: model_rules(model)}
        names = known_models()
        self.fields = union_fields(names)
        self.input_names = frozenset(self.fields.inputs)
        self.all_aliases: dict[str, tuple[str, ...]] = {}
        for name in names:
            self.all_aliases.update(models.get(name).aliases)
        self.problems: list[ManifestProblem | tuple] = []
        self.groups: dict[tuple, list[str]] = {}
        self.hidden = 0
        self.defaults: tuple[dict, dict] | None = None
        self.defaults_src: YamlSource | None = None
        self.pending: list[tuple] = []  # (body, id, repeat, source, model, meta, matrix, extends)
        self.local = LocalResolver(Path("."))  # base_dir: the folder of the file being read

    def add(self, problem: ManifestProblem) -> None:
        if len(self.problems) >= MAX_PROBLEMS:
            self.hidden += 1
        else:
            self.problems.append(problem)

    def rules(self, model: Any, src: Source) -> Rules | None:
        """The rules of a job's model; None (and a problem at its place) if it has no spec."""
        rules = self._rules.get(model) if isinstance(model, str) else None
        if rules is not None:
            return rules
        if isinstance(model, str) and models.find(model) is not None:
            rules = self._rules[model] = model_rules(model)
            return rules
        if isinstance(src, YamlSource):
            where, path = src.at(("model",))
        else:
            where, path = f"{src.where}, column model", "model"
        self.add(ManifestProblem(where, path, models.refusal(model)))
        return None

    def split(
        self, raw: dict, src: YamlSource, aliases: Mapping[str, tuple[str, ...]]
    ) -> tuple[dict, dict]:
        """A YAML job's fields -> (top-level request fields, input fields). Input fields may be
        written inside `input:` or directly in the job; a model's aliases spell a list field
        item by item (Kling: `image_url`/`end_image_url` spell `image_urls`)."""
        fields = self.fields
        alias_names = {name for names in aliases.values() for name in names}
        nested = raw.get("input")
        top: dict[str, Any] = {}
        inp: dict[str, Any] = dict(nested) if isinstance(nested, dict) else {}
        for key, value in raw.items():
            if key in _JOB_META or key in alias_names:
                continue
            if key in fields.top:
                top[key] = value
            elif key in self.input_names:
                if isinstance(nested, dict) and key in nested:
                    self.add(ManifestProblem(*src.at((key,)), "given twice: here and in input"))
                inp[key] = value
            else:
                allowed = [*_JOB_META, *fields.top, *fields.inputs, *sorted(alias_names)]
                self.add(ManifestProblem(*src.at((key,)), _unknown(key, allowed)))
        for target, names in aliases.items():
            self._alias(raw, src, inp, target, names)
        return top, inp

    def _alias(
        self, raw: dict, src: YamlSource, inp: dict, target: str, names: tuple[str, ...]
    ) -> None:
        values = [raw.get(name) for name in names]
        given = [i for i, v in enumerate(values) if v is not None]
        if not given:
            return
        if target in inp:
            message = f"give {target} or {names[0]}, not both"
            self.add(ManifestProblem(*src.at((names[given[0]],)), message))
            return
        missing = [i for i in range(given[-1]) if values[i] is None]
        if missing:
            what = " (the start frame)" if target == "image_urls" else ""
            message = f"{names[given[-1]]} needs {names[missing[0]]}{what}"
            self.add(ManifestProblem(*src.at((names[given[-1]],)), message))
            return
        inp[target] = values[: given[-1] + 1]

    def _job(self, raw: RawJob) -> None:
        model = self.model if raw.model is None else raw.model
        rules = self.rules(model, raw.src)
        if rules is None:
            return
        top, inp = raw.top, raw.inp
        if self.defaults is not None:
            top = {**self.defaults[0], **top}
            inp = {**self.defaults[1], **inp}
        inp, extends = self.extends(raw, rules.model, inp)
        body = self.local_media(self.body(top, inp, rules.fields), raw.src, rules.model)
        own = (("id", raw.id), ("repeat", raw.repeat), ("extends", raw.extends))
        if isinstance(raw.src, CsvSource) and any(v is not None for _, v in own):
            meta = {k: v for k, v in own if v is not None}
            for issue in validate_document({"jobs": [meta]}, MANIFEST_SCHEMA):
                column = path_parts(issue.path)[-1]
                where = f"{raw.src.where}, column {column}"
                self.add(ManifestProblem(where, str(column), issue.message))
        self.pending.append(
            (body, raw.id, raw.repeat, raw.src, rules.model, raw.meta, raw.matrix, extends)
        )
        if rules.valid(body):
            return
        if len(self.problems) >= MAX_PROBLEMS:
            self.hidden += 1
            return
        for issue in validate_request(body, rules.model):
            self.place(issue.path, issue.message, raw.src)

    def extends(self, raw: RawJob, model: str, inp: dict) -> tuple[dict, str | None]:
        """`extends: PARENT`: the parent's place in the body (its model's parent field) holds
        a placeholder until the engine knows the parent's task id (batchgen/core/chains.py)."""
        parent = raw.extends
        if not isinstance(parent, str) or not _ID_RE.fullmatch(parent):
            return inp, None  # the manifest's schema names what is wrong with it
        name = models.get(model).parent_field
        if name and inp.get(name) is not None:
            self.add(ManifestProblem(*_extends_at(raw.src), f"give extends or {name}, not both"))
            return inp, None
        return ({**inp, name: placeholder(parent)} if name else inp), parent

    def job(self, raw: RawJob) -> None:
        self._job(raw)
        if isinstance(raw.src, CsvSource):
            raw.src.cells = None  # placed already: keep memory flat on big files

    def body(self, top: dict, inp: dict, fields: RequestFields) -> dict:
        """The body in the model's schema order; a field the model lacks is kept, so its
        schema names it ("unknown field") at its place instead of dropping it silently."""
        for key, value in fields.filled:
            if inp.get(key) is None:
                inp = {**inp, key: value}
        body = {k: top[k] for k in fields.top if top.get(k) is not None}
        if len(body) != len(top):
            body.update((k, v) for k, v in top.items() if k not in body and v is not None)
        inputs = {k: inp[k] for k in fields.inputs if inp.get(k) is not None}
        if len(inputs) != len(inp):
            inputs.update((k, v) for k, v in inp.items() if k not in inputs and v is not None)
        for key in fields.integers & inputs.keys():
            value = inputs[key]
            if isinstance(value, float) and value.is_integer():
                inputs[key] = int(value)  # JSON Schema accepts 5.0 as an integer; send 5
        body["input"] = inputs
        return body

    def local_media(self, body: dict, src: Source, model: str) -> dict:
        """Image and video files become content references (batchgen/manifest/media.py); a
        local video breaking its model's rules is a problem at its place."""
        for parts, message in resolve_media(self.local, body, model):
            self.add(ManifestProblem(*(src.locate(parts) or src.fallback(parts)), message))
        return body

    def place(self, path: str, message: str, src: Source) -> None:
        parts = path_parts(path)
        found = src.locate(parts)
        if found is None and self.defaults_src is not None:
            in_defaults = self.defaults_src.locate(parts)
            if in_defaults is not None:
                key = (*in_defaults, message)
                if key not in self.groups:
                    self.groups[key] = []
                    if len(self.problems) < MAX_PROBLEMS:
                        self.problems.append(key)
                self.groups[key].append(src.label)
                return
        where, json_at = found if found is not None else src.fallback(parts)
        self.add(ManifestProblem(where, json_at, message))

    def finish(self, manifest: Manifest) -> Manifest:
        jobs = manifest.jobs
        seen: dict[str, str] = {}
        copies: dict[str, int] = {}
        links: dict[str, tuple[str, str | None]] = {}
        places: dict[str, Source] = {}
        for body, given, repeat, src, model, meta, matrix, extends in self.pending:
            if isinstance(given, str) and _ID_RE.fullmatch(given):
                base = given
            else:
                base = _derived_id(body, copies, model)
            count = _count(repeat)
            takes = [base] if count is None else [f"{base}-{k}" for k in range(1, count + 1)]
            for n, job_id in enumerate(takes):
                if job_id in seen:
                    self.add(_duplicate(src, job_id, seen[job_id]))
                    continue
                seen[job_id] = src.where
                copy = body if n == 0 else _copy(body)
                job = Job(job_id, copy, src.where, len(jobs), model, meta or {}, matrix, extends)
                jobs.append(job)
                links[job_id] = (model, extends)
                if extends is not None:
                    places[job_id] = src
        said = set()  # a matrix's or repeat's jobs share one place: said once
        for job_id, message in link_problems(links, _parent_field, _parent_model).items():
            problem = ManifestProblem(*_extends_at(places[job_id]), message)
            if (problem.where, problem.json_path, message) not in said:
                said.add((problem.where, problem.json_path, message))
                self.add(problem)
        if not jobs and not self.problems:
            self.add(ManifestProblem(self.display, "jobs", "the manifest has no jobs"))
        manifest.local_images = self.local.found
        if self.problems:
            problems = [self._materialize(p) for p in self.problems]
            if self.hidden:
                more = f"... and {self.hidden} more problems not shown (fix these first)"
                problems.append(ManifestProblem(self.display, "", more))
            raise ManifestError(problems)
        return manifest

    def _materialize(self, entry: ManifestProblem | tuple) -> ManifestProblem:
        if isinstance(entry, ManifestProblem):
            return entry
        where, path, message = entry
        labels = self.groups[entry]
        shown = ", ".join(labels[:3]) + (f" and {len(labels) - 3} more" if len(labels) > 3 else "")
        return ManifestProblem(where, path, f"{message} (in {shown})")


def _extends_at(src: Source) -> tuple[str, str]:
    """The place of a job's `extends` (a YAML line, or a CSV cell)."""
    if isinstance(src, CsvSource):
        return f"{src.where}, column extends", "extends"
    return src.at(("extends",))  # type: ignore[union-attr]


def _parent_field(model: str) -> str:
    spec = models.find(model)
    return spec.parent_field if spec is not None else ""


def _parent_model(model: str) -> str:
    spec = models.find(model)
    return spec.parent_model if spec is not None else ""


def _count(value: Any) -> int | None:
    """`repeat` as a number of takes, or None when absent or not a valid count."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not (1 <= value <= MAX_REPEAT) or value != int(value):
        return None
    return int(value)


def _duplicate(src: Source, job_id: str, first: str) -> ManifestProblem:
    message = f"id {job_id!r} is already used at {first}"
    if isinstance(src, CsvSource):
        return ManifestProblem(f"{src.where}, column id", "id", message)
    return ManifestProblem(src.where, f"{src.label}.id", message)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _derived_id(body: dict, copies: dict[str, int], model: str = DEFAULT_MODEL) -> str:
    """`<mode>-<hash of the body>`: stable across runs and reorderings. The n-th job with the
    same content (n >= 2) gets `.n` (not `-n`, which `repeat` uses). A model other than Kling
    2.1 (whose ids stay as earlier versions made them) prefixes its id and enters the hash,
    so one prompt sent to two models gives two jobs."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if model != DEFAULT_MODEL:
        canonical = f"{model}\n{canonical}"
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    count = copies[digest] = copies.get(digest, 0) + 1
    mode = body.get("input", {}).get("mode")
    short = "job"
    if isinstance(mode, str):
        short = mode.replace("image-to-video", "i2v").replace("text-to-video", "t2v")
        short = re.sub(r"[^A-Za-z0-9._-]", "", short)[:40] or "job"
    if model != DEFAULT_MODEL:
        short = f"{model}-{short}"
    return f"{short}-{digest}" + (f".{count}" if count > 1 else "")


def _unknown(key: Any, allowed: list[str]) -> str:
    close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
    return f"unknown field {key!r}; {hint}"
