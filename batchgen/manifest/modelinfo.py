"""What a model accepts, read back from its spec and request schema for people and scripts
(`batchgen models`): modes, fields (type, range, default, required), per-mode rules, prices
and generation times. The schema stays the one source: nothing here is written twice."""

from __future__ import annotations

from typing import Any

from batchgen import models
from batchgen.core.media import VideoLimits
from batchgen.manifest.schema import request_schema


def _kind(sub: dict[str, Any]) -> str:
    kind = sub.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        items = sub.get("items", {})
        return "list of URLs" if "$ref" in items else "list of objects"
    if kind is None and "enum" in sub:
        return "string" if all(isinstance(v, str) for v in sub["enum"]) else "value"
    return str(kind or "any")


def _range(sub: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "enum" in sub:
        out["values"] = list(sub["enum"])
    if "const" in sub:
        out["values"] = [sub["const"]]
    for key, name in (("minimum", "min"), ("maximum", "max"), ("minLength", "min_length"),
                      ("maxLength", "max_length"), ("minItems", "min_items"),
                      ("maxItems", "max_items")):  # fmt: skip
        if key in sub:
            out[name] = sub[key]
    return out


def _when(rule: dict[str, Any]) -> dict[str, list[Any]] | None:
    cond = rule.get("if", {}).get("properties", {})
    if not cond:
        return None
    return {field: list(c.get("enum") or [c.get("const")]) for field, c in cond.items()}


def _rules(inp: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema's `if ... then ...` rules as data: when, what they require, refuse, bound."""
    out = []
    for rule in inp.get("allOf", []):
        when = _when(rule)
        then = rule.get("then", rule if when is None else {})
        entry: dict[str, Any] = {"when": when or "always"}
        if then.get("required"):
            entry["requires"] = list(then["required"])
        refuses, bounds = [], {}
        for field, sub in then.get("properties", {}).items():
            if sub.get("not") == {}:
                refuses.append(field)
            else:
                bounds[field] = {**_range(sub), "rule": sub.get("x-error", "")}
        if refuses:
            entry["refuses"] = refuses
        if bounds:
            entry["bounds"] = bounds
        if "x-error" in then and ("anyOf" in then or "oneOf" in then):
            entry["rule"] = then["x-error"]
        out.append(entry)
    return out


def describe(model_id: str) -> dict[str, Any]:
    """Everything `batchgen models MODEL --json` prints about one model."""
    spec = models.get(model_id)
    schema = request_schema(spec.id)
    top = schema.get("properties", {})
    inp = top.get("input", {})
    required = set(inp.get("required", []))
    rules = _rules(inp)
    fields: dict[str, Any] = {}
    for name, sub in inp.get("properties", {}).items():
        info: dict[str, Any] = {"type": _kind(sub), **_range(sub)}
        if "default" in sub:
            info["default"] = sub["default"]
        needed_in = [r["when"] for r in rules if name in r.get("requires", [])]
        refused_in = [r["when"] for r in rules if name in r.get("refuses", [])]
        info["required"] = True if name in required else (needed_in or False)
        if refused_in:
            info["refused_when"] = refused_in
        fields[name] = info
    provider = top.get("provider", {})
    return {
        "id": spec.id,
        "title": spec.title,
        "endpoints": {"submit": f"POST {spec.submit_path}", "status": f"GET {spec.status_path}"},
        "source": spec.source,
        "doc_version": spec.doc_version,
        "former_ids": list(spec.former_ids),
        "modes": list(fields.get("mode", {}).get("values", [])),
        "provider": _range(provider) or {"type": _kind(provider)},
        "fields": fields,
        "rules": rules,
        "durations": {mode: list(d) for mode, d in spec.durations.items()},
        "prices": {
            "unit": spec.price_unit,
            "usd": dict(spec.price_table()),
            "note": spec.price_note or ("batchgen's estimate" if spec.prices else "unknown"),
        },
        "generation_s": {
            "key": spec.generation_key or "none (one row)",
            "rows": {str(k): list(v) for k, v in spec.generation_s.items()},
            "note": spec.generation_note or "batchgen's assumption",
        },
        "continues": (
            {"field": spec.parent_field, "model": spec.parent_model} if spec.parent_field else None
        ),
        "local_videos": (
            VideoLimits.of(spec.video_limits).describe() if "video_urls" in fields else None
        ),
    }


def field_line(name: str, info: dict[str, Any]) -> str:
    """One field for people: `duration  integer 3-15, default 5, required with ...`."""
    parts = [info["type"]]
    if "values" in info:
        parts.append("|".join(map(str, info["values"])))
    for lo, hi, unit in (("min", "max", ""), ("min_length", "max_length", " chars"),
                         ("min_items", "max_items", " items")):  # fmt: skip
        if lo in info and hi in info:
            parts.append(f"{info[lo]}-{info[hi]}{unit}")
        elif lo in info:
            parts.append(f"at least {info[lo]}{unit}")
        elif hi in info:
            parts.append(f"at most {info[hi]}{unit}")
    if "default" in info:
        parts.append(f"default {info['default']}")
    req = info["required"]
    if req is True:
        parts.append("required")
    elif req:
        parts.append("required when " + "; ".join(_cond(w) for w in req))
    if info.get("refused_when"):
        parts.append("not with " + "; ".join(_cond(w) for w in info["refused_when"]))
    return f"{name:<24} " + ", ".join(parts)


def _cond(when: Any) -> str:
    if not isinstance(when, dict):
        return str(when)
    return " and ".join(f"{k} {'|'.join(map(str, v))}" for k, v in when.items())


def rule_line(rule: dict[str, Any]) -> str:
    """One per-mode rule for people: `when mode image-to-video: needs image_urls; ...`."""
    parts = []
    if rule.get("requires"):
        parts.append("needs " + ", ".join(rule["requires"]))
    for field, bound in rule.get("bounds", {}).items():
        shown = {k: v for k, v in bound.items() if k != "rule"}
        lo, hi = shown.get("min_items"), shown.get("max_items")
        if lo is not None or hi is not None:
            span = f"{lo if lo is not None else 0}-{hi if hi is not None else ''}"
            parts.append(f"{field} {span} items")
        elif "values" in shown:
            parts.append(f"{field} {'|'.join(map(str, shown['values']))}")
    if rule.get("refuses"):
        parts.append("refuses " + ", ".join(rule["refuses"]))
    if rule.get("rule"):
        parts.append(rule["rule"])
    return f"when {_cond(rule['when'])}: " + "; ".join(parts)
