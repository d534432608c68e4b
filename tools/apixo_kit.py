"""The JSON Schema shapes tools/apixo_models.py writes APIXO's video family with: a field,
a per-mode count, a cross-field rule, a whole request schema. Saves typing the same shapes
nineteen times; the JSON files they make are what batchgen reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = "../shared/apixo-video-models.md"
PROVIDERS = ["auto", "value", "official"]
MAX_SEED = 2147483647


# --- field shapes ---------------------------------------------------------------------------


def text(lo: int | None, hi: int | None, what: str = "prompt") -> dict[str, Any]:
    out: dict[str, Any] = {"type": "string"}
    if lo:
        out["minLength"] = lo
    if hi:
        out["maxLength"] = hi
    span = f"of {lo or 0} to {hi} characters" if hi else "that is not empty"
    out["x-error"] = f"{what} must be text {span}, got {{got}}"
    return out


def one_of(name: str, values: list[Any], default: Any = None, note: str = "") -> dict[str, Any]:
    words = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values)
    out: dict[str, Any] = {
        "enum": values,
        "x-error": f"{name} must be one of {words}{note}, got {{value}}",
    }
    if all(isinstance(v, int) for v in values):
        out = {"type": "integer", **out}
    if default is not None:
        out["default"] = default
    return out


def seconds(name: str, lo: int, hi: int, default: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "integer",
        "minimum": lo,
        "maximum": hi,
        "x-error": f"{name} must be a whole number of seconds from {lo} to {hi}, got {{value}}",
    }
    if default is not None:
        out["default"] = default
    return out


def boolean(name: str, default: bool | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "boolean",
        "x-error": f"{name} must be true or false, got {{value}}",
    }
    if default is not None:
        out["default"] = default
    return out


def integer(name: str, lo: int, hi: int, default: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "integer",
        "minimum": lo,
        "maximum": hi,
        "x-error": f"{name} must be a whole number from {lo} to {hi}, got {{value}}",
    }
    if default is not None:
        out["default"] = default
    return out


def urls(name: str, kind: str = "http(s) URLs") -> dict[str, Any]:
    return {
        "type": "array",
        "items": {"$ref": "#/$defs/http_url"},
        "x-error": f"{name} must be a list of {kind}, got {{got}}",
    }


def count(name: str, lo: int, hi: int, what: str = "") -> dict[str, Any]:
    """A per-mode item count, with the sentence for it."""
    noun = name.removesuffix("_urls").replace("image", "image").rstrip("s")
    if lo == hi:
        span = f"exactly {lo} {noun}{'s' if lo != 1 else ''}"
    elif lo == 0:
        span = f"at most {hi} {noun}s"
    else:
        span = f"{lo} to {hi} {noun}s"
    return {
        "minItems": lo,
        "maxItems": hi,
        "x-error": f"{{mode}} takes {span}{what}, got {{count}}",
    }


def none_of(name: str, why: str) -> dict[str, Any]:
    return {"not": {}, "x-error": f"{name} {why}"}


def rule(field: str, values: list[str] | str, then: dict[str, Any]) -> dict[str, Any]:
    """`if input.<field> is (one of) values then ...`: a cross-field rule as data."""
    cond = {"const": values} if isinstance(values, str) else {"enum": values}
    return {"if": {"properties": {field: cond}, "required": [field]}, "then": then}


def needs(*fields: str, why: str = "") -> dict[str, Any]:
    """`required` with its own sentence per field (batchgen.manifest.schema reads x-required)."""
    return {
        "required": list(fields),
        "x-required": {f: why or "is required with {mode}" for f in fields},
    }


def props(**fields: dict[str, Any]) -> dict[str, Any]:
    return {"properties": fields}


def merge(*parts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key in out and isinstance(value, dict):
                out[key] = {**out[key], **value}
            elif key in out and isinstance(value, list):
                out[key] = [*out[key], *value]
            else:
                out[key] = value
    return out


# --- a whole schema ---------------------------------------------------------------------------


def schema(
    model: str,
    title: str,
    inputs: dict[str, Any],
    required: list[str],
    rules: list[dict[str, Any]],
    provider: dict[str, Any] | None = None,
    x_required: dict[str, str] | None = None,
) -> dict[str, Any]:
    modes = inputs["mode"].get("enum") or [inputs["mode"].get("const")]
    inp: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": inputs,
    }
    if x_required:
        inp["x-required"] = x_required
    if rules:
        inp["allOf"] = rules
    inp["x-error"] = (
        "input must be an object holding the request's fields (" + ", ".join(modes) + ")"
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://batchgen.invalid/schemas/{model}.request.schema.json",
        "title": f"APIXO {title}: body of POST /generateTask/{model}",
        "description": f"The rules of {model} in {DOC}, built to its version E where versions "
        "disagree. Generated by tools/apixo_family.py. 'x-error' holds the sentence shown to "
        "users; 'x-required' the sentence of a missing field. A 'default' on a required field is "
        "filled in by batchgen; elsewhere it only documents the API's behaviour.",
        "x-model": model,
        "type": "object",
        "additionalProperties": False,
        "required": ["input"],
        "properties": {
            "request_type": {
                "enum": ["async", "callback"],
                "x-error": "request_type must be 'async' or 'callback', got {value}",
                "default": "async",
            },
            "callback_url": {"$ref": "#/$defs/http_url"},
            "provider": provider or one_of("provider", PROVIDERS, "auto"),
            "input": inp,
        },
        "allOf": [
            {
                "if": {
                    "properties": {"request_type": {"const": "callback"}},
                    "required": ["request_type"],
                },
                "then": {"required": ["callback_url"]},
            }
        ],
        "$defs": {
            "http_url": {
                "type": "string",
                "maxLength": 2048,
                "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s/?#@]+([/?#][^\\s]*)?(?!\\n)$",
                "x-error": "must be an http(s) URL of at most 2048 characters, got {value}",
            }
        },
        "x-error": "the request body must be a JSON object",
    }
