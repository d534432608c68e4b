"""Where a manifest problem is: the file and line of a YAML job (or `defaults`) and of each of
its fields, found from the JSON path a check reports."""

from __future__ import annotations

import re

from batchgen.manifest.schema import json_path
from batchgen.manifest.text import Source

_PATH_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def line_of(lines: dict[str, int], path: str) -> int:
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[: max(cut, 0)]
    return lines.get("", 1)


def path_parts(path: str) -> tuple:
    return tuple(int(i) if i else k for i, k in _PATH_PART.findall(path))


class YamlSource(Source):
    """A job (or `defaults`) written as a YAML mapping at `prefix` (`("jobs", 3)`)."""

    __slots__ = ("display", "label", "lines", "prefix", "raw", "where")

    def __init__(self, display: str, lines: dict[str, int], prefix: tuple, raw: dict):
        self.display = display
        self.lines = lines
        self.prefix = prefix
        self.raw = raw
        self.label = json_path(prefix)
        self.where = f"{display}:{line_of(lines, self.label)}"

    def at(self, spec: tuple) -> tuple[str, str]:
        path = json_path(self.prefix + spec)
        return f"{self.display}:{line_of(self.lines, path)}", path

    def locate(self, parts: tuple) -> tuple[str, str] | None:
        raw = self.raw
        if not parts:
            return None
        if parts[0] != "input" or len(parts) == 1:
            return self.at(parts) if parts[0] in raw else None
        key, rest = parts[1], parts[2:]
        nested = raw.get("input")
        if isinstance(nested, dict) and key in nested:
            return self.at(("input", key, *rest))
        if key in raw:
            return self.at((key, *rest))
        if key == "image_urls" and "image_url" in raw:
            if rest[:1] == (1,) and "end_image_url" in raw:
                return self.at(("end_image_url",))
            return self.at(("image_url",))
        return None

    def fallback(self, parts: tuple) -> tuple[str, str]:
        return self.where, json_path(self.prefix + parts)
