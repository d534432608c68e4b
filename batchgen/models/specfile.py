"""Model specs written as JSON files: a user's own (BATCHGEN_MODEL_SPECS) and batchgen's
built-in APIXO family (schemas/*.spec.json), read the same way so both stay plain data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from batchgen.models.base import ModelSpec, SpecError

KEYS = frozenset(
    {
        "id", "schema", "title", "generation_s", "aliases", "display", "prices", "source",
        "doc_version", "former_ids", "generation_key", "generation_note", "price_unit",
        "price_note", "durations", "parent_field", "parent_model", "video_limits",
    }
)  # fmt: skip


def durations_of(value: Any) -> tuple[int, ...]:
    """[5, 10] or "3-15" (a range, both ends in) -> the durations as a tuple."""
    if isinstance(value, str):
        lo, sep, hi = value.partition("-")
        if not sep:
            raise ValueError(f"durations {value!r}: write a list [5, 10] or a range '3-15'")
        return tuple(range(int(lo), int(hi) + 1))
    return tuple(int(v) for v in value)


def _row_key(key: str) -> int | str:
    return int(key) if key.isdigit() else key


def spec_from_file(path: str | Path) -> ModelSpec:
    """A spec written as JSON: {"id", "schema" (relative to the spec file), "title",
    "generation_s": {"5": [60, 90]}, "aliases": {"image_urls": ["image_url"]}, "display", ...}
    (every key of ModelSpec; `durations` values as lists or "LO-HI" ranges)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SpecError(f"{path}: cannot read the model spec ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("schema"), str):
        raise SpecError(f"{path}: a model spec is a JSON object with 'id' and 'schema'")
    extra = sorted(set(doc) - KEYS)
    if extra:
        raise SpecError(
            f"{path}: unknown key(s) {', '.join(extra)}; known: {', '.join(sorted(KEYS))}"
        )
    schema = Path(doc["schema"])
    if not schema.is_absolute():
        schema = (path.parent / schema).resolve()
    if not schema.is_file():
        raise SpecError(f"{path}: its schema {schema} does not exist")
    kwargs: dict[str, Any] = {"id": doc.get("id"), "schema": str(schema)}
    try:
        for name in ("title", "source", "doc_version", "generation_key", "generation_note",
                     "price_unit", "price_note", "parent_field", "parent_model"):  # fmt: skip
            if name in doc:
                kwargs[name] = str(doc[name])
        if "generation_s" in doc:
            kwargs["generation_s"] = {
                _row_key(str(k)): (float(v[0]), float(v[1])) for k, v in doc["generation_s"].items()
            }
        if "aliases" in doc:
            kwargs["aliases"] = {str(k): tuple(map(str, v)) for k, v in doc["aliases"].items()}
        if "display" in doc:
            kwargs["display"] = tuple(map(str, doc["display"]))
        if "former_ids" in doc:
            kwargs["former_ids"] = tuple(map(str, doc["former_ids"]))
        if "prices" in doc:
            kwargs["prices"] = dict(doc["prices"])
        if "video_limits" in doc:
            kwargs["video_limits"] = dict(doc["video_limits"])
        if "durations" in doc:
            kwargs["durations"] = {str(k): durations_of(v) for k, v in doc["durations"].items()}
    except (TypeError, ValueError, AttributeError, IndexError) as exc:
        raise SpecError(f"{path}: a field has the wrong shape ({exc})") from None
    return ModelSpec(**kwargs)
