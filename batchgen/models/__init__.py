"""The registry of models: the built-in specs, plus any a user adds.

The only link between a model id and its rules: manifests, the client's URLs, the poll
schedule, the simulator and the report all ask `get(model_id)`. A user adds a model with
`register(spec)` (Python) or by naming JSON spec files in `BATCHGEN_MODEL_SPECS`
(os.pathsep-separated; read on first use by every command, the simulator included).
"""

from __future__ import annotations

import os

from batchgen.models import kling_2_1, kling_2_5_turbo_pro
from batchgen.models.base import ModelSpec, SpecError, spec_from_file

__all__ = [
    "DEFAULT_MODEL",
    "ENV_VAR",
    "ModelSpec",
    "SpecError",
    "find",
    "get",
    "known",
    "register",
    "spec_from_file",
    "unregister",
]

DEFAULT_MODEL = kling_2_1.SPEC.id
ENV_VAR = "BATCHGEN_MODEL_SPECS"

_BUILT_IN = (kling_2_1.SPEC, kling_2_5_turbo_pro.SPEC)
_specs: dict[str, ModelSpec] = {spec.id: spec for spec in _BUILT_IN}
_env_loaded: str | None = None


def _load_env() -> None:
    """Register the spec files named in BATCHGEN_MODEL_SPECS (again if it changed)."""
    global _env_loaded
    value = os.environ.get(ENV_VAR, "")
    if value == _env_loaded:
        return
    _env_loaded = value
    for item in value.split(os.pathsep):
        if item.strip():
            register(spec_from_file(item.strip()))


def register(spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
    """Add a model. A built-in id is refused unless `replace` (a typo must not silently
    change how Kling 2.1 jobs are sent)."""
    if not isinstance(spec, ModelSpec):
        raise SpecError(f"register() takes a ModelSpec, got {type(spec).__name__}")
    old = _specs.get(spec.id)
    if old is not None and old != spec and not replace:
        raise SpecError(f"model {spec.id!r} is already registered; pass replace=True")
    _specs[spec.id] = spec
    return spec


def unregister(model_id: str) -> None:
    """Forget a user-added model (tests); built-in models stay."""
    if model_id not in {s.id for s in _BUILT_IN}:
        _specs.pop(model_id, None)


def known() -> list[str]:
    _load_env()
    return sorted(_specs)


def get(model_id: str) -> ModelSpec:
    """The spec of `model_id`; KeyError (naming the known ones) if there is none."""
    _load_env()
    spec = _specs.get(model_id) if isinstance(model_id, str) else None
    if spec is None:
        raise KeyError(f"unknown model {model_id!r}; known: {', '.join(sorted(_specs))}")
    return spec


def find(model_id: str) -> ModelSpec | None:
    try:
        return get(model_id)
    except KeyError:
        return None
