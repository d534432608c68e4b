"""Validation of request bodies against the JSON Schema files in `schemas/`.

A new model is a new `schemas/<model>.request.schema.json`, not new code: the sentences users
see come from the schema's own `x-error` annotations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

DEFAULT_MODEL = "kling-2-1"


def schema_dir() -> Path:
    """`schemas/` beside the package in a checkout, or `batchgen/_schemas` in a wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_schemas", here.parent / "schemas"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("batchgen's schemas/ folder is missing from this installation")


@cache
def load_schema(name: str) -> dict[str, Any]:
    with open(schema_dir() / name, encoding="utf-8") as f:
        return json.load(f)


def known_models() -> list[str]:
    suffix = ".request.schema.json"
    return sorted(p.name[: -len(suffix)] for p in schema_dir().glob(f"*{suffix}"))


@cache
def _request_validator(model: str) -> jsonschema.protocols.Validator:
    schema = load_schema(f"{model}.request.schema.json")
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@dataclass(frozen=True, slots=True)
class SchemaIssue:
    """One rule a body breaks: `path` is dotted (`input.image_urls[2]`), `message` a sentence."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def json_path(parts: Any) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _sentence(error: jsonschema.ValidationError, body: Any) -> tuple[str, str]:
    path = json_path(error.absolute_path)
    template = error.schema.get("x-error") if isinstance(error.schema, dict) else None
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        where = f"{path}.{missing}" if path else missing
        mode = body.get("input", {}).get("mode") if isinstance(body, dict) else None
        if isinstance(body, dict) and missing == "callback_url":
            return where, "is required when request_type is 'callback'"
        if isinstance(mode, str) and missing in ("image_urls", "aspect_ratio"):
            return where, f"is required with {mode}"
        return where, "is required"
    if error.validator == "additionalProperties":
        return path, error.message
    if template:
        mode = body.get("input", {}).get("mode") if isinstance(body, dict) else None
        count = len(error.instance) if isinstance(error.instance, list | str) else ""
        return path, template.format(value=_short(error.instance), count=count, mode=mode)
    return path, error.message


def validate_request(body: Any, model: str = DEFAULT_MODEL) -> list[SchemaIssue]:
    """Every rule `body` breaks, in a stable order; an empty list means it may be sent."""
    validator = _request_validator(model)
    issues: list[SchemaIssue] = []
    seen: set[tuple[str, str]] = set()
    errors = sorted(validator.iter_errors(body), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    for error in _leaves(errors):
        path, message = _sentence(error, body)
        if (path, message) not in seen:
            seen.add((path, message))
            issues.append(SchemaIssue(path, message))
    return issues


def _leaves(errors: list[jsonschema.ValidationError]):
    """Unwrap `allOf`/`if-then` wrappers so users see the concrete rule, not the combinator."""
    for error in errors:
        if error.context:
            yield from _leaves(sorted(error.context, key=lambda e: e.message))
        else:
            yield error
