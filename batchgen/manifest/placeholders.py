"""`{name}` placeholders in a matrix job's strings, and the ids its combinations get (pure).

Only `{identifier}` is a placeholder; `{{` and `}}` are literal braces, and any other brace
stays as written, so a prompt with braces in it is not broken by becoming a matrix job.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NOT_ID = re.compile(r"[^A-Za-z0-9._-]")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def names_in(text: str) -> list[str]:
    """The variables `text` names, in order, each once."""
    return list(dict.fromkeys(m.group(1) for m in _TOKEN.finditer(text) if m.group(1)))


def render(text: str, values: Mapping[str, Any]) -> str:
    """`text` with each `{name}` replaced by its value (KeyError for a name without one)."""

    def one(match: re.Match[str]) -> str:
        token, name = match.group(0), match.group(1)
        if name is None:
            return token[0]
        return text_of(values[name])

    return _TOKEN.sub(one, text)


def text_of(value: Any) -> str:
    """A value as it reads in text: 5 -> "5", 0.5 -> "0.5", "16:9" -> "16:9"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def render_tree(value: Any, values: Mapping[str, Any]) -> Any:
    """Every string inside `value` (dict values, list items) rendered; keys stay as written."""
    if isinstance(value, str):
        return render(value, values)
    if isinstance(value, dict):
        return {k: render_tree(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [render_tree(v, values) for v in value]
    return value


def strings(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """(path, string) of every string inside `value`, to check its placeholders in place."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from strings(v, (*path, i))


def as_id(text: str) -> str:
    """Characters outside the id alphabet become `-`: "16:9" gives "16-9"."""
    return _NOT_ID.sub("-", text)


def combination_id(template: str | None, combo: Mapping[str, Any], job: Mapping[str, Any]) -> str:
    """The id of one combination, a function of the combination alone (stable across runs,
    whatever else the matrix holds). A template with placeholders is rendered; one without
    gets the values appended in declaration order; no template: a hash of the job as written
    (its matrix left out, so a grown matrix keeps its ids) stands in for it."""
    if template is None:
        template = _base(job)
    if names_in(template):
        return as_id(render(template, combo))
    return as_id("-".join([template, *(text_of(v) for v in combo.values())]))


def _base(job: Mapping[str, Any]) -> str:
    written = {k: v for k, v in job.items() if k not in ("matrix", "meta")}
    canonical = json.dumps(written, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    mode = job.get("mode")
    if not isinstance(mode, str) and isinstance(job.get("input"), dict):
        mode = job["input"].get("mode")
    short = "matrix"
    if isinstance(mode, str) and "{" not in mode:
        short = mode.replace("image-to-video", "i2v").replace("text-to-video", "t2v")
    return f"{as_id(short)[:40]}-{digest}"
