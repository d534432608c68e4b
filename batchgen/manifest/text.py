"""Reading a manifest file as text, refusing hostile files early and clearly.

The boundary between the file system and the manifest parsers: OSError and UnicodeDecodeError
become ManifestError here, each with its place.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchgen.errors import ManifestError, ManifestProblem

MAX_MANIFEST_BYTES = 50 * 1024 * 1024
"""A manifest (or the CSV it names) larger than this is refused before parsing."""


def fail(where: str, message: str, json_path: str = "") -> ManifestError:
    return ManifestError([ManifestProblem(where, json_path, message)])


def read_text(path: Path, display: str, *, max_bytes: int | None = None) -> str:
    """The file's text: UTF-8 (a BOM is dropped), at most `max_bytes`, no NUL bytes.
    CRLF line ends are left for the parsers, which accept them."""
    cap = MAX_MANIFEST_BYTES if max_bytes is None else max_bytes
    try:
        if path.is_dir():
            raise fail(display, "is a folder, not a manifest file")
        with open(path, "rb") as f:
            data = f.read(cap + 1)
    except FileNotFoundError:
        raise fail(display, "no such file") from None
    except PermissionError:
        raise fail(display, "cannot be read (permission denied)") from None
    except OSError as exc:
        raise fail(display, f"cannot be read ({exc.strerror or exc})") from None
    if len(data) > cap:
        raise fail(display, f"is larger than {cap // (1024 * 1024)} MB; split the batch") from None
    return decode(data, display)


def decode(data: bytes, display: str) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise fail(display, "is UTF-16 text; save it as UTF-8")
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise fail(f"{display}:{line}", "looks like a binary file (NUL byte), not a manifest")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start : exc.start + 1].hex()
        raise fail(
            f"{display}:{line}", f"is not UTF-8 text (byte 0x{byte}); save it as UTF-8"
        ) from None


class Source:
    """Where one job was written, to place the problems of its request body.

    `locate(parts)` is the place of body field `parts` (`("input", "image_urls", 1)`) if this
    job gives it, else None; `fallback(parts)` places a field the job does not give at all."""

    where: str
    label: str

    def locate(self, parts: tuple) -> tuple[str, str] | None:
        raise NotImplementedError

    def fallback(self, parts: tuple) -> tuple[str, str]:
        raise NotImplementedError


@dataclass(slots=True)
class RawJob:
    """One job as written (before defaults): its request fields, split into top and input."""

    top: dict[str, Any]
    inp: dict[str, Any]
    id: Any
    repeat: Any
    src: Source
    model: Any = None  # the job's own `model` (None: the manifest's)
    meta: dict[str, Any] | None = None  # `meta:`, and a matrix job's variables
    matrix: str | None = None  # the place of the matrix job it comes from
    extends: Any = None  # `extends:` the id of the job whose task this one continues
