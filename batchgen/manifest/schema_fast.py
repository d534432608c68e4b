"""A JSON Schema (draft 2020-12 subset) compiled to a plain-Python "is it valid?" predicate.

Only answers yes or no: the sentences for invalid bodies still come from jsonschema. Every
keyword is implemented with jsonschema's own semantics (its type checker, its `equal`,
`re.search` for `pattern`), and `tests/test_schema.py` checks the two agree on generated
bodies. A schema using any keyword not listed here is not compiled (`compile_schema` returns
None) and the caller falls back to jsonschema: a new schema file never needs new code.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Check = Callable[[Any], bool]

_DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "$defs",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
    }
)


class _Unsupported(Exception):
    pass


def _is_integer(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    return isinstance(x, int) or (isinstance(x, float) and x.is_integer())


_TYPES: dict[str, Check] = {
    "array": lambda x: isinstance(x, list),
    "boolean": lambda x: isinstance(x, bool),
    "integer": _is_integer,
    "null": lambda x: x is None,
    "number": lambda x: not isinstance(x, bool) and isinstance(x, numbers.Number),
    "object": lambda x: isinstance(x, dict),
    "string": lambda x: isinstance(x, str),
}


def json_equal(one: Any, two: Any) -> bool:
    """jsonschema's `_utils.equal`: like ==, but True is not 1 and False is not 0."""
    if one is two:
        return True
    if isinstance(one, str) or isinstance(two, str):
        return one == two
    if isinstance(one, Sequence) and isinstance(two, Sequence):
        return len(one) == len(two) and all(json_equal(a, b) for a, b in zip(one, two, strict=True))
    if isinstance(one, Mapping) and isinstance(two, Mapping):
        return len(one) == len(two) and all(
            k in two and json_equal(v, two[k]) for k, v in one.items()
        )
    if isinstance(one, bool) or isinstance(two, bool):
        return False  # `one is two` was already False
    return one == two


def _enum(members: list[Any]) -> Check:
    if all(type(m) in (str, int, float) for m in members):
        fast = frozenset(members)

        def check(x: Any) -> bool:
            t = type(x)
            if t is str or t is int or t is float:
                return x in fast
            return any(json_equal(x, m) for m in members)

        return check
    return lambda x: any(json_equal(x, m) for m in members)


def _all(checks: list[Check]) -> Check:
    if not checks:
        return lambda x: True
    if len(checks) == 1:
        return checks[0]

    def check(x: Any) -> bool:
        for c in checks:  # noqa: SIM110 (a plain loop is faster here than all())
            if not c(x):
                return False
        return True

    return check


class _Compiler:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.refs: dict[str, Check] = {}

    def ref(self, ref: str) -> Check:
        if ref in self.refs:
            return self.refs[ref]
        if ref != "#" and not ref.startswith("#/"):
            raise _Unsupported(ref)
        target: Any = self.root
        for part in ref[2:].split("/") if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                raise _Unsupported(ref)
            target = target[part]
        slot: list[Check] = []
        self.refs[ref] = lambda x: slot[0](x)  # lazy, so recursive schemas work
        slot.append(self.compile(target))
        return self.refs[ref]

    def compile(self, schema: Any) -> Check:
        if schema is True:
            return lambda x: True
        if schema is False:
            return lambda x: False
        if not isinstance(schema, dict):
            raise _Unsupported(repr(schema))
        checks: list[Check] = []
        for key, value in schema.items():
            if key in _ANNOTATIONS or key.startswith("x-"):
                continue
            if key in ("properties", "additionalProperties", "required"):
                continue  # handled together below
            if key in ("then", "else"):
                continue  # applied by "if"; alone they do nothing
            checks.append(self.keyword(key, value, schema))
        if any(k in schema for k in ("properties", "additionalProperties", "required")):
            checks.append(self.object_keywords(schema))
        return _all(checks)

    def object_keywords(self, schema: dict[str, Any]) -> Check:
        props = {k: self.compile(v) for k, v in schema.get("properties", {}).items()}
        required = list(schema.get("required", []))
        extra = schema.get("additionalProperties", True)
        extra_check = None if extra is False else self.compile(extra)

        def check(x: Any) -> bool:
            if not isinstance(x, dict):
                return True
            for k in required:
                if k not in x:
                    return False
            for k, v in x.items():
                sub = props.get(k)
                if sub is None:
                    if extra_check is None or not extra_check(v):
                        return False
                elif not sub(v):
                    return False
            return True

        return check

    def keyword(self, key: str, value: Any, schema: dict[str, Any]) -> Check:
        if key == "type":
            names = [value] if isinstance(value, str) else list(value)
            tests = [_TYPES[n] for n in names]
            return tests[0] if len(tests) == 1 else (lambda x: any(t(x) for t in tests))
        if key == "enum":
            return _enum(list(value))
        if key == "const":
            return lambda x: json_equal(x, value)
        if key == "$ref":
            return self.ref(value)
        if key in ("minLength", "maxLength"):
            low = key == "minLength"
            return lambda x: not isinstance(x, str) or (len(x) >= value if low else len(x) <= value)
        if key in ("minItems", "maxItems"):
            low = key == "minItems"
            return lambda x: (
                not isinstance(x, list) or (len(x) >= value if low else len(x) <= value)
            )
        if key == "pattern":
            search = re.compile(value).search
            return lambda x: not isinstance(x, str) or search(x) is not None
        if key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            return self.bound(key, value)
        if key == "items":
            if "prefixItems" in schema:
                raise _Unsupported("prefixItems")
            item = self.compile(value)
            return lambda x: not isinstance(x, list) or all(item(i) for i in x)
        if key == "allOf":
            return _all([self.compile(s) for s in value])
        if key == "anyOf":
            subs = [self.compile(s) for s in value]
            return lambda x: any(s(x) for s in subs)
        if key == "oneOf":
            subs = [self.compile(s) for s in value]
            return lambda x: sum(1 for s in subs if s(x)) == 1
        if key == "not":
            sub = self.compile(value)
            return lambda x: not sub(x)
        if key == "if":
            cond = self.compile(value)
            then = self.compile(schema.get("then", True))
            other = self.compile(schema.get("else", True))
            return lambda x: then(x) if cond(x) else other(x)
        raise _Unsupported(key)

    @staticmethod
    def bound(key: str, limit: Any) -> Check:
        is_number = _TYPES["number"]
        compare: dict[str, Check] = {
            "minimum": lambda x: x >= limit,
            "maximum": lambda x: x <= limit,
            "exclusiveMinimum": lambda x: x > limit,
            "exclusiveMaximum": lambda x: x < limit,
        }
        test = compare[key]
        return lambda x: not is_number(x) or test(x)


def compile_schema(schema: dict[str, Any]) -> Check | None:
    """The predicate for `schema`, or None when it uses something this compiler lacks."""
    if schema.get("$schema", _DRAFT_2020_12) != _DRAFT_2020_12:
        return None
    try:
        return _Compiler(schema).compile(schema)
    except (_Unsupported, KeyError, TypeError, re.error):
        return None
