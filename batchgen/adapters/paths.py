"""Where result files land: the file-name template, sanitized names, paths kept inside the
output folder. (Which URLs batchgen agrees to fetch is core/urls.py's.)

Everything here is pure (no I/O but `Path.resolve`): names come from a manifest template filled
with values from outside (job ids from the manifest, task ids and URLs from the API), so every
piece is treated as hostile until it has been sanitized or checked.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from batchgen.core.taskids import filename_part
from batchgen.settings import DEFAULT_FILENAME_TEMPLATE

__all__ = [
    "DEFAULT_TEMPLATE",
    "MAX_COMPONENT_BYTES",
    "render_filename",
    "safe_output_path",
]

DEFAULT_TEMPLATE = DEFAULT_FILENAME_TEMPLATE
FIELDS = ("id", "index", "task_id", "mode")
MAX_COMPONENT_BYTES = 255
# The download writes "<name>.part" and "<name>.part.json" beside the final file: keep room.
PART_SUFFIX_RESERVE = len(".part.json")

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NUMBER_SPEC = re.compile(r"^0?[1-9]?[0-9]?d?$")  # {index:03d}, {index:4}: widths only
_LITERAL_EXT = re.compile(r"\.[A-Za-z0-9]{1,12}$")
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"COM{i}" for i in "123456789¹²³"]
    + [f"LPT{i}" for i in "123456789¹²³"]
)
_WINDOWS_FORBIDDEN = frozenset('<>:"|?*')


def render_filename(
    template: str,
    *,
    job_id: str,
    index: int,
    task_id: str | None,
    mode: str,
    n_results: int,
    job_index: int = 1,
    meta: Mapping[str, Any] | None = None,
) -> str:
    """Fill an `output.filename` template for result `index` (0-based) of a job.

    Placeholders: `{id}`, `{index}` (the job's 1-based position in the manifest, with an
    optional number format such as `{index:04d}`), `{task_id}`, `{mode}`; `{{` and `}}` are
    literal braces. Anything else in braces is a ValueError (no attribute access, unlike
    `str.format`). Values cannot add folders: `/` and `\\` inside a value become `_`; folders
    come only from the template itself. A job's `meta` keys are placeholders too (`{season}`),
    never shadowing the four above. A task id comes from the API: only a plain short one is
    used as it is, any other as a readable prefix and a hash (`taskids.filename_part`), so two
    ids never share a file. Result `index > 0` gets `-{index+1}` before the
    extension: `{id}.mp4` gives `a.mp4`, `a-2.mp4`, `a-3.mp4`.
    The result still has to go through `safe_output_path`.
    """
    if n_results < 1 or not 0 <= index < n_results:
        raise ValueError(f"result index {index} out of range for {n_results} result(s)")
    if task_id is None and "{task_id}" in template:
        raise ValueError("the filename template uses {task_id}, but the job has no task id yet")
    values: dict[str, Any] = {
        **(meta or {}),
        "id": job_id,
        "index": job_index,
        "task_id": filename_part(task_id) if task_id else "",
        "mode": mode,
    }

    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        field = match.group(1)
        name, _, spec = (field or "").partition(":")
        if field is None or name not in values or (spec and not _NUMBER_SPEC.match(spec)):
            raise ValueError(
                f"unknown placeholder {token!r} in filename template {template!r}; "
                f"use {', '.join('{' + f + '}' for f in FIELDS)}"
            )
        value = values[name]
        try:
            text = format(value, spec) if spec else str(value)
        except ValueError as exc:
            raise ValueError(f"placeholder {token!r} does not fit its value: {exc}") from None
        return text.replace("/", "_").replace("\\", "_")

    rendered = _PLACEHOLDER.sub(substitute, template)
    if index > 0:
        rendered = _insert_suffix(template, rendered, f"-{index + 1}")
    return rendered


def _insert_suffix(template: str, rendered: str, suffix: str) -> str:
    # The extension is taken from the template's literal tail (after its last placeholder), so a
    # dot inside a value (`{id}` = "v1.2") is never mistaken for the extension.
    last = re.split(r"[/\\]", template)[-1]
    tail = last[last.rfind("}") + 1 :]
    ext = _LITERAL_EXT.search(tail)
    if ext and rendered.endswith(ext.group(0)):
        cut = len(rendered) - len(ext.group(0))
        return rendered[:cut] + suffix + rendered[cut:]
    return rendered + suffix


def safe_output_path(output_dir: Path, relative: str) -> Path:
    """`output_dir / relative`, each component sanitized; never outside `output_dir`.

    Separators are `/` and `\\`; empty, `.` components and a leading `/` are dropped (an
    absolute path becomes relative). In each component: control and format characters (NUL,
    newlines, bidi overrides...) and `<>:"|?*` become `_`; leading dots and dashes become `_`
    (so `..` is `__`, no hidden files, no `-rf`); trailing dots and spaces are removed;
    Windows device names (`CON`, `nul.mp4`, `COM1`...) get a `_` prefix; a component is cut to
    255 UTF-8 bytes (the last one to 245, leaving room for `.part.json`), keeping its extension.
    Finally the path is resolved (following any symlinks already in `output_dir`) and must lie
    strictly inside `output_dir.resolve()`, else ValueError.
    """
    raw = [c for c in re.split(r"[/\\]", relative) if c not in ("", ".")]
    if not raw:
        raise ValueError(f"empty output file name {relative!r}")
    parts = [_sanitize_component(c, last=i == len(raw) - 1) for i, c in enumerate(raw)]
    candidate = Path(output_dir).joinpath(*parts)
    root = _resolved_folder(str(output_dir))
    if len(parts) == 1 and not candidate.is_symlink():
        # The common case, a plain name in the folder itself: one lstat instead of a walk of
        # every component (resolve() costs a syscall per component, per file).
        resolved = root / parts[0]
    else:
        resolved = candidate.resolve()
    if resolved == root or not resolved.is_relative_to(root):
        raise ValueError(f"output file {relative!r} would land outside {output_dir}")
    return candidate


@functools.lru_cache(maxsize=16)
def _resolved_folder(folder: str) -> Path:
    """The output folder with its symlinks resolved, once per folder and process: a batch
    writes thousands of files into the same one."""
    return Path(folder).resolve()


def _sanitize_component(name: str, *, last: bool) -> str:
    name = unicodedata.normalize("NFC", name)
    out = []
    for ch in name:
        if unicodedata.category(ch).startswith("C") or ch in _WINDOWS_FORBIDDEN:
            out.append("_")
        else:
            out.append(ch)
    name = "".join(out)
    stripped = name.lstrip(".-")
    name = "_" * (len(name) - len(stripped)) + stripped
    name = name.rstrip(". ")
    if not name:
        name = "_"
    stem = name.split(".", 1)[0].rstrip(" ").upper()
    if stem in _WINDOWS_RESERVED:
        name = "_" + name
    limit = MAX_COMPONENT_BYTES - (PART_SUFFIX_RESERVE if last else 0)
    return _truncate_bytes(name, limit)


def _truncate_bytes(name: str, limit: int) -> str:
    if len(name.encode("utf-8")) <= limit:
        return name
    ext_match = _LITERAL_EXT.search(name)
    ext = ext_match.group(0) if ext_match else ""
    stem = name[: len(name) - len(ext)]
    budget = limit - len(ext.encode("utf-8"))
    cut = stem.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    cut = cut.rstrip(". ") or "_"
    return cut + ext
