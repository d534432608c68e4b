"""ModelSpec: everything that differs between APIXO models, as data.

APIXO serves every model through one task API (`POST /generateTask/<id>`, `GET
/statusTask/<id>`, the same envelopes, fail codes and account limits), so a model is only:
its request schema, its id in the path, the manifest spellings it accepts, how long it takes,
what a report shows of a job, and (for the money issue) its prices. A new model is one spec and
one schema file; engine, store and client never name a model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A model id is one path segment of the API's URL: nothing a server could read otherwise.
Capitals are allowed because APIXO spells some ids in camelCase (`happyHorse`)."""

REFERENCE_GENERATION_S = (60.0, 120.0)
"""Kling 2.1's documented fastest and slowest generation (5 s video: 60 s, 10 s video: 120 s).
The run's options are written against it: `--poll-after 60` is the earliest finish, and the
stuck rule is 30x the slowest. A model's own table scales both (see `poll_factor`)."""


class SpecError(ValueError):
    """A model spec (or its file) is not usable; the message says why and where."""


@dataclass(frozen=True)
class ModelSpec:
    """One model. `schema` is a file name in batchgen's `schemas/` or an absolute path.

    `generation_s` maps a video duration (s) to the expected (fastest, slowest) generation time
    in seconds; `aliases` maps a list field to the manifest keys that spell its items one by one
    (Kling: `image_url`, `end_image_url` -> `image_urls`); `display` names the `input` fields the
    report and gallery show; `prices` is left to the billing code (issue 19): any mapping it
    defines, None when unknown."""

    id: str
    schema: str
    title: str = ""
    generation_s: Mapping[int, tuple[float, float]] = field(
        default_factory=lambda: {5: (60.0, 90.0), 10: (90.0, 120.0)}
    )
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    display: tuple[str, ...] = ("mode", "duration", "aspect_ratio")
    prices: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not MODEL_ID.fullmatch(self.id):
            raise SpecError(f"model id {self.id!r} must be 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-'")
        if not self.generation_s:
            raise SpecError(f"model {self.id}: generation_s needs at least one duration")
        for duration, span in self.generation_s.items():
            lo, hi = span
            if not (isinstance(duration, int) and 0 < lo <= hi):
                raise SpecError(f"model {self.id}: generation_s[{duration!r}] must be 0 < lo <= hi")

    @property
    def submit_path(self) -> str:
        return f"/generateTask/{self.id}"

    @property
    def status_path(self) -> str:
        return f"/statusTask/{self.id}"

    @property
    def alias_names(self) -> frozenset[str]:
        return frozenset(name for names in self.aliases.values() for name in names)

    def generation(self, duration: Any) -> tuple[float, float]:
        """The expected (fastest, slowest) generation time of a video of `duration` seconds:
        its row, else the nearest shorter one, else the shortest (an odd duration is the
        schema's business, not the scheduler's)."""
        table = self.generation_s
        if isinstance(duration, int) and duration in table:
            return table[duration]
        keys = sorted(table)
        shorter = [k for k in keys if isinstance(duration, int | float) and k <= duration]
        return table[shorter[-1] if shorter else keys[0]]

    def poll_factor(self, duration: Any) -> float:
        """The first poll's delay as a multiple of `--poll-after` (Kling 2.1: 1 for 5 s
        videos, 1.5 for 10 s): polling before the earliest finish is a wasted request."""
        return self.generation(duration)[0] / REFERENCE_GENERATION_S[0]

    def stuck_factor(self, duration: Any) -> float:
        """The stuck rule as a multiple of `--stuck-after`: never shorter than for Kling 2.1,
        longer for a model documented as slower than its slowest (120 s)."""
        return max(1.0, self.generation(duration)[1] / REFERENCE_GENERATION_S[1])

    def schema_path(self, schema_dir: Path) -> Path:
        path = Path(self.schema)
        return path if path.is_absolute() else schema_dir / path


def spec_from_file(path: str | Path) -> ModelSpec:
    """A spec written as JSON: {"id", "schema" (relative to the spec file), "title",
    "generation_s": {"5": [60, 90]}, "aliases": {"image_urls": ["image_url"]}, "display"}."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SpecError(f"{path}: cannot read the model spec ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("schema"), str):
        raise SpecError(f"{path}: a model spec is a JSON object with 'id' and 'schema'")
    known = {"id", "schema", "title", "generation_s", "aliases", "display", "prices"}
    extra = sorted(set(doc) - known)
    if extra:
        raise SpecError(f"{path}: unknown key(s) {', '.join(extra)}; known: {', '.join(known)}")
    schema = Path(doc["schema"])
    if not schema.is_absolute():
        schema = (path.parent / schema).resolve()
    if not schema.is_file():
        raise SpecError(f"{path}: its schema {schema} does not exist")
    kwargs: dict[str, Any] = {"id": doc.get("id"), "schema": str(schema)}
    try:
        if "title" in doc:
            kwargs["title"] = str(doc["title"])
        if "generation_s" in doc:
            kwargs["generation_s"] = {
                int(k): (float(v[0]), float(v[1])) for k, v in doc["generation_s"].items()
            }
        if "aliases" in doc:
            kwargs["aliases"] = {str(k): tuple(map(str, v)) for k, v in doc["aliases"].items()}
        if "display" in doc:
            kwargs["display"] = tuple(map(str, doc["display"]))
        if "prices" in doc:
            kwargs["prices"] = dict(doc["prices"])
    except (TypeError, ValueError, AttributeError, IndexError) as exc:
        raise SpecError(f"{path}: a field has the wrong shape ({exc})") from None
    return ModelSpec(**kwargs)
