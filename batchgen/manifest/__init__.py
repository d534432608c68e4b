"""Manifests (YAML or CSV) -> the exact request bodies of a batch, with every problem placed.

`load_manifest(path)` reads the file (`manifest_text`), parses it (`manifest_yaml` keeps the line
of every node, `manifest_csv` the row and column of every cell), merges each job over the
manifest's `defaults`, validates the body against its model's request schema (the job's own
`model`, else the manifest's; `batchgen.models` holds the specs), gives each job its id, and
raises one ManifestError carrying all problems found.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from batchgen import models
from batchgen.errors import ManifestError, ManifestProblem
from batchgen.manifest.csvfile import read_csv_jobs
from batchgen.manifest.jobs import (  # noqa: F401 (re-exported: the public API lives here)
    DEFAULT_FILENAME,
    ID_PATTERN,
    MANIFEST_SCHEMA,
    MAX_PROBLEMS,
    MAX_REPEAT,
    Job,
    Manifest,
    _Build,
)
from batchgen.manifest.matrixjobs import DEFAULT_MAX_JOBS, add_matrix_job
from batchgen.manifest.meta import clean as clean_meta
from batchgen.manifest.places import YamlSource, line_of
from batchgen.manifest.plan import (  # noqa: F401 (re-exported: the public API lives here)
    FILENAME_FIELDS,
    FIRST_POLL_S,
    MEAN_GENERATION_S,
    POLL_EVERY_S,
    check_filename,
    estimate_requests,
    requests_for,
)
from batchgen.manifest.schema import DEFAULT_MODEL, validate_document
from batchgen.manifest.text import RawJob, fail, read_text
from batchgen.manifest.yamlfile import load_yaml

# --- loading --------------------------------------------------------------------------------


def load_manifest(path: str | Path) -> Manifest:
    """Read, expand and validate a manifest; raises ManifestError with ALL problems."""
    display = str(path)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _load_csv(path, display)
    if suffix in (".yaml", ".yml", ".json"):
        return _load_yaml(path, display)
    raise fail(display, "unknown manifest type: use a .yaml, .yml or .csv file")


def _load_csv(path: Path, display: str) -> Manifest:
    text = read_text(path, display)
    build = _Build(display, DEFAULT_MODEL)
    build.local.base_dir = path.parent
    _add_csv(build, text, display)
    manifest = Manifest(path, path.stem, DEFAULT_MODEL, None, DEFAULT_FILENAME)
    return build.finish(manifest)


def _add_csv(build: _Build, text: str, display: str) -> None:
    problems: list[ManifestProblem] = []
    for raw in read_csv_jobs(text, display, build.fields, problems):
        for problem in problems:  # in row order
            build.add(problem)
        problems.clear()
        build.job(raw)
    for problem in problems:
        build.add(problem)


def _common_meta(build: _Build) -> set[str]:
    """The meta names every job has: the ones a file-name template may use."""
    metas = [entry[5] or {} for entry in build.pending]
    return set.intersection(*(set(m) for m in metas)) if metas else set()


def _load_yaml(path: Path, display: str) -> Manifest:
    doc, lines = load_yaml(read_text(path, display), display)
    if doc is None:
        raise fail(display, "is empty: a manifest needs at least `jobs`")
    shape = [
        ManifestProblem(f"{display}:{line_of(lines, i.path)}", i.path, i.message)
        for i in validate_document(doc, MANIFEST_SCHEMA)
    ]
    if not isinstance(doc, dict):
        raise ManifestError(shape)
    model = doc.get("model", DEFAULT_MODEL)
    spec = models.find(model) if isinstance(model, str) else None
    if isinstance(model, str) and spec is None:
        message = models.refusal(model)
        shape.append(ManifestProblem(f"{display}:{line_of(lines, 'model')}", "model", message))
    if spec is None:
        raise ManifestError(shape)
    model = spec.id  # a former id (wan-2-5) is sent as today's (wan-2-5-video)
    build = _Build(display, model)
    build.local.base_dir = path.parent
    for problem in shape:
        build.add(problem)
    defaults = doc.get("defaults")
    if isinstance(defaults, dict):
        build.defaults_src = YamlSource(display, lines, ("defaults",), defaults)
        build.defaults = build.split(defaults, build.defaults_src, build.all_aliases)
    jobs = doc.get("jobs")
    max_jobs = doc.get("max_jobs", DEFAULT_MAX_JOBS)
    max_jobs = max_jobs if isinstance(max_jobs, int) and max_jobs >= 1 else DEFAULT_MAX_JOBS
    for i, job in enumerate(jobs if isinstance(jobs, list) else []):
        if isinstance(job, dict):
            src = YamlSource(display, lines, ("jobs", i), job)
            if "matrix" in job:
                add_matrix_job(build, job, src, max_jobs)
                continue
            own = job.get("model")
            spec = models.find(model if own is None else own)
            aliases = spec.aliases if spec is not None else build.all_aliases
            top, inp = build.split(job, src, aliases)
            meta = clean_meta(job.get("meta"), lambda at, m, s=src: build.add(
                ManifestProblem(*s.at(("meta", *at)), m)))  # fmt: skip
            extends = job.get("extends")
            build.job(
                RawJob(top, inp, job.get("id"), job.get("repeat"), src, own, meta, None, extends)
            )
    csv_name = doc.get("jobs_csv")
    if isinstance(csv_name, str) and csv_name:
        csv_display = os.path.join(os.path.dirname(display), csv_name)
        try:
            text = read_text(path.parent / csv_name, csv_display)
        except ManifestError as exc:  # placed at the manifest's `jobs_csv:` line
            where = f"{display}:{line_of(lines, 'jobs_csv')}"
            for problem in exc.problems:
                message = f"{problem.where}: {problem.message}"
                build.add(ManifestProblem(where, "jobs_csv", message))
        else:
            build.local.base_dir = (path.parent / csv_name).parent
            _add_csv(build, text, csv_display)
    output = doc.get("output") if isinstance(doc.get("output"), dict) else {}
    template = output.get("filename", DEFAULT_FILENAME)
    if isinstance(template, str):
        for message in check_filename(template, _common_meta(build)):
            where = f"{display}:{line_of(lines, 'output.filename')}"
            build.add(ManifestProblem(where, "output.filename", message))
    name = doc.get("name")
    images = doc.get("images") if isinstance(doc.get("images"), dict) else {}
    manifest = Manifest(
        path=path,
        name=name if isinstance(name, str) and name else path.stem,
        model=model,
        output_dir=output.get("dir") if isinstance(output.get("dir"), str) else None,
        filename_template=template if isinstance(template, str) else DEFAULT_FILENAME,
        image_store=images.get("store") if isinstance(images.get("store"), str) else None,
        image_url_ttl=images.get("url_ttl") if isinstance(images.get("url_ttl"), str) else None,
        budget=doc["budget"] if isinstance(doc.get("budget"), dict) else {},
    )
    if isinstance(doc.get("notify"), dict):
        manifest.notify = doc["notify"]  # type: ignore[attr-defined]  # see notify_block
    return build.finish(manifest)


def notify_block(manifest: Manifest) -> dict[str, Any] | None:
    """A YAML manifest's `notify:` block (batchgen/notify/config.py reads it). Kept beside
    Manifest's fields rather than among them while manifest/jobs.py is being reworked."""
    block = getattr(manifest, "notify", None)
    return block if isinstance(block, dict) else None
