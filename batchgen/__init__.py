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
__all__ = ["load", "outcome", "results", "run", "run_async"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from batchgen import api

        return getattr(api, name)
    raise AttributeError(f"module 'batchgen' has no attribute {name!r}")
