"""The gallery's view by variables: each card carries its job's meta (a matrix job's
variables), the page gets a filter per variable and a grid whose rows and columns are two
variables the viewer picks (like sd-infinity-grid's page). The grid itself is laid out by the
page's constant script (gallery_assets.py) from these attributes: no job data in the script."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

GRID_CSS = """
#grid-wrap{padding:16px 20px;overflow:auto}
#grid-wrap[hidden],main[hidden]{display:none}
#grid{border-collapse:collapse}
#grid th{position:sticky;background:var(--bg);padding:6px 8px;text-align:left;
font-family:ui-monospace,Menlo,Consolas,monospace;overflow-wrap:anywhere}
#grid thead th{top:0}
#grid tbody th{left:0;max-width:160px;vertical-align:top}
#grid td{vertical-align:top;border:1px solid var(--line);padding:6px;min-width:270px}
#grid td .card{width:270px;margin-bottom:6px}
#grid td.empty{color:var(--muted);text-align:center;background:repeating-linear-gradient(
45deg,transparent 0 8px,rgba(127,127,127,.08) 8px 16px)}
#grid td.bad{outline:2px solid var(--failed);outline-offset:-2px}
.metafacts dt{font-family:ui-monospace,Menlo,Consolas,monospace}
"""


def text(value: Any) -> str:
    """A meta value as the page shows and compares it (the script compares these strings)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def meta_attr(meta: Any) -> str:
    """`data-meta`: the job's meta as `name=value&...`, percent-encoded, for the script."""
    if not isinstance(meta, Mapping):
        return ""
    return "&".join(f"{quote(str(k), safe='')}={quote(text(v), safe='')}" for k, v in meta.items())


def collect(records: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Every meta name and its values, each in the order jobs first use it."""
    found: dict[str, dict[str, None]] = {}
    for rec in records:
        meta = rec.get("meta")
        if isinstance(meta, Mapping):
            for key, value in meta.items():
                found.setdefault(str(key), {})[text(value)] = None
    return {k: list(v) for k, v in found.items()}


def controls(variables: Mapping[str, list[str]]) -> str:
    """A filter per variable, and, with two or more, the grid's row and column pickers."""
    esc = _esc
    parts = []
    for key, values in variables.items():
        options = "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in values)
        parts.append(
            f'<label>{esc(key)} <select class="f-meta" data-key="{esc(key)}">'
            f'<option value="">all</option>{options}</select></label> '
        )
    if len(variables) >= 2:
        keys = "".join(f'<option value="{esc(k)}">{esc(k)}</option>' for k in variables)
        for ident, word in (("g-row", "grid rows"), ("g-col", "columns")):
            parts.append(
                f'<label>{word} <select id="{ident}"><option value="">none</option>'
                f"{keys}</select></label> "
            )
    return "".join(parts)


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)
