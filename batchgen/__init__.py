"""batchgen: turn a manifest of video jobs into MP4 files through APIXO's video API.

The Python API (batchgen/api.py), for notebooks and scheduler tasks:

    import batchgen

    manifest = batchgen.load("manifests/example.yaml")
    outcome = batchgen.run(manifest, output="output/demo", sandbox=True)
    print(outcome.exit_code, outcome.counts["done"])
    print(batchgen.outcome("output/demo/batchgen.db"))

Imported lazily: `import batchgen` stays cheap for the CLI and for `python -m batchgen`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
# The public API, imported on first use. `dir(batchgen)` and `help(batchgen)` list it (a module
# `__getattr__` alone shows nothing of it).
_API = ("load", "outcome", "results", "run", "run_async")
_TYPES = {
    "Manifest": "batchgen.manifest",
    "RunOutcome": "batchgen.engine",
    "BatchgenError": "batchgen.errors",
    "ManifestError": "batchgen.errors",
    "UsageError": "batchgen.errors",
}
__all__ = [*_API, *_TYPES, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        from batchgen import api

        return getattr(api, name)
    if name in _TYPES:
        import importlib

        return getattr(importlib.import_module(_TYPES[name]), name)
    raise AttributeError(f"module 'batchgen' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})
