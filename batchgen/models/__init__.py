"""The registry of models: the built-in specs, plus any a user adds.

The only link between a model id and its rules: manifests, the client's URLs, the poll
schedule, the simulator and the report all ask `get(model_id)`. A user adds a model with
`register(spec)` (Python) or by naming JSON spec files in `BATCHGEN_MODEL_SPECS`
(os.pathsep-separated; read on first use by every command, the simulator included).
"""

from __future__ import annotations

import os
from pathlib import Path

from batchgen.models import kling_2_1, kling_2_5_turbo_pro
from batchgen.models.base import ModelSpec, SpecError
from batchgen.models.specfile import spec_from_file

__all__ = [
    "DEFAULT_MODEL",
    "ENV_VAR",
    "NOT_YET",
    "ModelSpec",
    "SpecError",
    "find",
    "former_used",
    "get",
    "known",
    "refusal",
    "register",
    "spec_from_file",
    "unregister",
]

DEFAULT_MODEL = kling_2_1.SPEC.id
ENV_VAR = "BATCHGEN_MODEL_SPECS"

NOT_YET: dict[str, str] = {
    "wan-2-7-video": (
        "its archived page shows no example request, its two copies disagree on whether "
        "video-edit needs a prompt, and the media counts of reference-to-video and video-edit "
        "are cut off"
    ),
    "kling-3-0-pro": "APIXO publishes no page for a Kling 3.0 Pro model",
}
"""APIXO models batchgen lists but cannot yet send, with why: validate refuses them by name."""


def _schema_dir() -> Path:
    """`schemas/` beside the package in a checkout, or `batchgen/_schemas` in a wheel (as
    batchgen.manifest.schema.schema_dir, which imports this package)."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_schemas", package.parent / "schemas"):
        if candidate.is_dir():
            return candidate
    return package.parent / "schemas"


def _family() -> tuple[ModelSpec, ...]:
    """APIXO's other video models: one `<id>.spec.json` beside its request schema each."""
    return tuple(spec_from_file(p) for p in sorted(_schema_dir().glob("*.spec.json")))


_BUILT_IN = (kling_2_1.SPEC, kling_2_5_turbo_pro.SPEC, *_family())
_specs: dict[str, ModelSpec] = {spec.id: spec for spec in _BUILT_IN}
_env_loaded: str | None = None
_former_used: dict[str, str] = {}


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
    """The spec of `model_id` (or of the model a former id now names: `wan-2-5`); KeyError
    with the sentence a user sees (`refusal`) if there is none."""
    _load_env()
    spec = _specs.get(model_id) if isinstance(model_id, str) else None
    if spec is None and isinstance(model_id, str):
        spec = next((s for s in _specs.values() if model_id in s.former_ids), None)
        if spec is not None:
            _former_used[model_id] = spec.id
    if spec is None:
        raise KeyError(refusal(model_id))
    return spec


def refusal(model_id: object) -> str:
    """Why `model_id` cannot be used: not yet supported (and why), or unknown."""
    if isinstance(model_id, str) and model_id in NOT_YET:
        return f"model {model_id!r} is not supported yet: {NOT_YET[model_id]}"
    return f"unknown model {model_id!r}; known: {', '.join(sorted(_specs))}"


def former_used() -> dict[str, str]:
    """Former ids met so far in this process, with the id each was sent as (for a note)."""
    return dict(_former_used)


def find(model_id: str) -> ModelSpec | None:
    try:
        return get(model_id)
    except KeyError:
        return None
