"""A manifest job's model -> the rules its body is built and checked by (batchgen.models).

Kept apart from the parsing: what a model allows is the spec's and the schema's business.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from batchgen import models
from batchgen.manifest.schema import RequestFields, fast_check, request_fields


@dataclass(frozen=True)
class Rules:
    """What building a body needs from one model (its spec and schema)."""

    model: str
    fields: RequestFields
    valid: Callable[[Any], bool]
    aliases: Mapping[str, tuple[str, ...]]


def model_rules(model: str) -> Rules:
    """The rules of `model`, named by its current id: a job written with a former id
    (`wan-2-5`) is built, stored and sent as the model's id today (`wan-2-5-video`)."""
    spec = models.get(model)
    return Rules(spec.id, request_fields(spec.id), fast_check(spec.id), spec.aliases)


def union_fields(names: list[str]) -> RequestFields:
    """Every request field any known model has: what a manifest may spell before its job's
    model is known (defaults, CSV headers). The job's schema then says what fits its model."""
    all_fields = [request_fields(m) for m in names]

    def ordered(attr: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(k for f in all_fields for k in getattr(f, attr)))

    def union(attr: str) -> frozenset[str]:
        return frozenset(k for f in all_fields for k in getattr(f, attr))

    return RequestFields(
        top=ordered("top"),
        inputs=ordered("inputs"),
        numeric=union("numeric"),
        arrays=union("arrays"),
        filled=(),
        integers=union("integers"),
        booleans=union("booleans"),
    )
