"""Validation of request bodies against the JSON Schema files in `schemas/`.

A model's schema file is named by its spec (`batchgen.models`): a new model is a spec and a
schema, not new code here. The sentences users see come from the schema's own `x-error`
annotations.

Speed: jsonschema checks about 8,000 bodies a second, too slow for a 100,000-row manifest. So
each schema is also compiled (`batchgen.manifest.schema_fast`) into a plain-Python predicate
that only
answers "valid or not"; a body it accepts is valid, and every other body goes through
jsonschema for the sentences. The two are kept equivalent by a hypothesis test.
"""

from __future__ import annotations

import ast
import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from batchgen import models
from batchgen.manifest.schema_fast import compile_schema
from batchgen.models import DEFAULT_MODEL

_REQUIRED_SUFFIX = " is a required property"


def schema_dir() -> Path:
    """`schemas/` beside the package in a checkout, or `batchgen/_schemas` in a wheel."""
    package = Path(__file__).resolve().parent.parent  # batchgen/
    for candidate in (package / "_schemas", package.parent / "schemas"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("batchgen's schemas/ folder is missing from this installation")


@cache
def load_schema(name: str) -> dict[str, Any]:
    """`schemas/<name>`, or the file `name` itself when it is an absolute path (a user's model)."""
    with open(schema_dir() / name, encoding="utf-8") as f:
        return json.load(f)


def known_models() -> list[str]:
    return models.known()


def _schema_file(model: str) -> str:
    """The schema file of `model`'s spec (KeyError naming the known models if it has none)."""
    return models.get(model).schema


def request_schema(model: str = DEFAULT_MODEL) -> dict[str, Any]:
    """The request schema of `model` (KeyError if it has no spec)."""
    return load_schema(_schema_file(model))


@cache
def _validator(schema_file: str) -> jsonschema.protocols.Validator:
    schema = load_schema(schema_file)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _request_validator(model: str) -> jsonschema.protocols.Validator:
    return _validator(_schema_file(model))


@cache
def _fast_check_file(schema_file: str) -> Callable[[Any], bool]:
    compiled = compile_schema(load_schema(schema_file))
    return compiled if compiled is not None else _validator(schema_file).is_valid


def fast_check(model: str = DEFAULT_MODEL) -> Callable[[Any], bool]:
    """A predicate equivalent to "jsonschema finds no error" for `model`'s request schema.
    Falls back to jsonschema itself when the schema uses a keyword the compiler lacks."""
    return _fast_check_file(_schema_file(model))


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
    if isinstance(value, str):
        text = repr(value)
    else:
        try:
            text = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe(value: Any) -> str:
    """What a value is, for "got ..." in a sentence: `0 characters`, `3 items`, `null`, `7`."""
    if isinstance(value, str):
        return f"{len(value)} character{'s' if len(value) != 1 else ''}"
    if isinstance(value, list):
        return f"{len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return _short(value)


def _mode_of(body: Any) -> Any:
    if isinstance(body, dict) and isinstance(body.get("input"), dict):
        return body["input"].get("mode")
    return None


def _missing_name(error: jsonschema.ValidationError) -> str:
    text = error.message
    if text.endswith(_REQUIRED_SUFFIX):
        try:
            return str(ast.literal_eval(text[: -len(_REQUIRED_SUFFIX)]))
        except (ValueError, SyntaxError):
            pass
    return text


def _unknown_field(name: Any, schema: dict[str, Any]) -> str:
    allowed = [k for k in schema.get("properties", {}) if isinstance(k, str)]
    for parent, sub in schema.get("properties", {}).items():
        if isinstance(sub, dict) and name in sub.get("properties", {}):
            return f"unknown field {name!r} here; it belongs inside {parent!r}"
    close = difflib.get_close_matches(str(name), allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown field {name!r}; did you mean {close[0]!r}?"
    return f"unknown field {name!r}; allowed fields: {', '.join(allowed)}"


def _sentences(error: jsonschema.ValidationError, body: Any) -> list[tuple[str, str]]:
    path = json_path(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "required":
        missing = _missing_name(error)
        where = f"{path}.{missing}" if path else missing
        mode = _mode_of(body)
        custom = schema.get("x-required")
        if isinstance(custom, dict) and isinstance(custom.get(missing), str):
            return [(where, custom[missing].format(mode=mode))]  # the rule in the schema's words
        if missing == "callback_url":
            return [(where, "is required when request_type is 'callback'")]
        if isinstance(mode, str) and missing in ("image_urls", "aspect_ratio"):
            return [(where, f"is required with {mode}")]
        return [(where, "is required")]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        extras = [k for k in error.instance if k not in schema.get("properties", {})]
        return [
            (f"{path}.{k}" if path else str(k), _unknown_field(k, schema))
            for k in sorted(extras, key=str)
        ]
    template = schema.get("x-error")
    if template:
        inst = error.instance
        count = len(inst) if isinstance(inst, list | str) else ""
        return [
            (
                path,
                template.format(
                    value=_short(inst), count=count, mode=_mode_of(body), got=describe(inst)
                ),
            )
        ]
    return [(path, error.message)]


def validate_request(body: Any, model: str = DEFAULT_MODEL) -> list[SchemaIssue]:
    """Every rule `body` breaks, in a stable order; an empty list means it may be sent."""
    return validate_document(body, _schema_file(model))


def validate_document(instance: Any, schema_file: str) -> list[SchemaIssue]:
    """Every rule `instance` breaks against `schemas/<schema_file>`, as sentences."""
    if _fast_check_file(schema_file)(instance):
        return []
    validator = _validator(schema_file)
    issues: list[SchemaIssue] = []
    seen: set[tuple[str, str]] = set()
    errors = sorted(
        validator.iter_errors(instance),
        key=lambda e: (list(map(str, e.absolute_path)), e.message),
    )
    for error in _leaves(errors):
        for path, message in _sentences(error, instance):
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


@dataclass(frozen=True, slots=True)
class RequestFields:
    """What a model's request schema says about its fields, for building bodies from manifests.

    `top`: the body's own fields besides `input`; `inputs`: the fields of `input` (both in schema
    order); `numeric`/`arrays`: fields whose values are numbers / lists (how CSV cells convert);
    `filled`: defaults of *required* fields, which batchgen fills in when a job leaves them out;
    `integers`: fields the schema types as integers (a manifest's `5.0` is sent as `5`).
    """

    top: tuple[str, ...]
    inputs: tuple[str, ...]
    numeric: frozenset[str]
    arrays: frozenset[str]
    filled: tuple[tuple[str, Any], ...]
    integers: frozenset[str] = frozenset()  # sent as JSON integers: 5.0 in a manifest goes as 5
    booleans: frozenset[str] = frozenset()  # a CSV cell `true`/`false` becomes a JSON boolean


def _types_of(sub: Any) -> set[str]:
    kind = sub.get("type") if isinstance(sub, dict) else None
    return {kind} if isinstance(kind, str) else set(kind or ())


@cache
def request_fields(model: str = DEFAULT_MODEL) -> RequestFields:
    schema = request_schema(model)
    top_props = schema.get("properties", {})
    input_schema = top_props.get("input", {})
    input_props = input_schema.get("properties", {})
    both = {**top_props, **input_props}
    return RequestFields(
        top=tuple(k for k in top_props if k != "input"),
        inputs=tuple(input_props),
        numeric=frozenset(k for k, v in both.items() if _types_of(v) & {"integer", "number"}),
        arrays=frozenset(k for k, v in both.items() if "array" in _types_of(v)),
        integers=frozenset(k for k, v in both.items() if _types_of(v) == {"integer"}),
        booleans=frozenset(k for k, v in both.items() if _types_of(v) == {"boolean"}),
        filled=tuple(
            (k, input_props[k]["default"])
            for k in input_schema.get("required", [])
            if isinstance(input_props.get(k), dict) and "default" in input_props[k]
        ),
    )
