"""Image files on the user's disk, named in a manifest by a relative path or a file:// URL.

A job's body cannot carry a path (the provider fetches images over HTTP), and a job's identity
must be its image's content, not where the file lies: editing an image changes the job, moving
the manifest's folder does not. So at load time each local entry is replaced by a reference
made of the file's sha256 and type, `https://local.batchgen.invalid/sha256/<hex>.<ext>`: the
body's hash (and the derived job id) then follows the content. The `.invalid` top-level domain
never resolves (RFC 6761), so a reference that ever escaped would reach no one. Right before
each submit the engine's input hook swaps it for a presigned URL of the uploaded copy.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from batchgen.core.media import MAX_VIDEO_BYTES, REF_PREFIX
from batchgen.inputs.localfile import regular_file
from batchgen.inputs.localvideo import LocalVideo, inspect_video
from batchgen.inputs.sniff import (
    EXTENSIONS,
    MAX_IMAGE_BYTES,
    NOT_AN_IMAGE,
    describe_other,
    image_kind,
    size_warnings,
)

_REF = re.compile(
    r"^https://local\.batchgen\.invalid/sha256/([0-9a-f]{64})"
    r"(\.jpg|\.png|\.webp|\.mp4|\.mov|\.m4v|\.webm|\.mkv)$"
)
VIDEO_EXTS = frozenset({".mp4", ".mov", ".m4v", ".webm", ".mkv"})
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True, slots=True)
class LocalImage:
    sha256: str
    ext: str  # ".jpg", ".png" or ".webp", from the content
    path: str  # absolute
    size: int
    width: int = 0
    height: int = 0

    @property
    def warnings(self) -> list[str]:
        """Kling's size rules (under 300 px a side, aspect outside 1:2.5..2.5:1), as for URLs."""
        return size_warnings(self.width, self.height)

    @property
    def ref(self) -> str:
        return f"{REF_PREFIX}{self.sha256}{self.ext}"

    @property
    def key_name(self) -> str:
        """The content-addressed object name in the store (under its prefix)."""
        return f"{self.sha256}{self.ext}"


def is_ref(url: object) -> bool:
    return isinstance(url, str) and _REF.match(url) is not None


def parse_ref(url: str) -> tuple[str, str] | None:
    """(sha256, ext) of a local reference, else None."""
    found = _REF.match(url)
    return (found.group(1), found.group(2)) if found else None


def local_path(entry: object, base_dir: Path) -> Path | None:
    """The file an image entry names, or None when it is a URL the provider fetches itself.
    A path is relative to the manifest's folder (or absolute); `file://` URLs are absolute."""
    if not isinstance(entry, str) or not entry.strip():
        return None
    text = entry.strip()
    if text.lower().startswith("file://"):
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            return Path("//" + parts.netloc + unquote(parts.path))  # reported as not found
        return Path(unquote(parts.path))
    if _SCHEME.match(text) or text.lower().startswith(("http:", "https:")):
        return None
    path = Path(os.path.expanduser(text))
    return path if path.is_absolute() else base_dir / path


def inspect(path: Path) -> LocalImage | str:
    """The file's content identity, or why it cannot be sent (a message for the user)."""
    info = regular_file(path, MAX_IMAGE_BYTES, "the limit of 10 MB")
    if isinstance(info, str):
        return info
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_IMAGE_BYTES + 1)
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc.__class__.__name__}"
    if len(data) > MAX_IMAGE_BYTES:
        return f"{path} is over the limit of 10 MB"
    kind = image_kind(data[:64])
    if kind is None:
        other = describe_other(data[:512])
        return f"{path} is {NOT_AN_IMAGE}" + ("" if other == NOT_AN_IMAGE else f" ({other})")
    decoded = decode(data, kind)
    if isinstance(decoded, str):
        return f"{path} cannot be decoded as a {kind.upper()} image ({decoded})"
    digest = hashlib.sha256(data).hexdigest()
    width, height = decoded
    return LocalImage(
        digest, EXTENSIONS[kind], str(Path(path).absolute()), len(data), width, height
    )


def decode(data: bytes, kind: str) -> tuple[int, int] | str:
    """(width, height) of an image Pillow decodes whole, else why not. Magic bytes are not
    enough: a JPEG with garbage after its first bytes passes them, and the provider fails
    the paid task when it cannot decode it. A JPEG is decoded at 1/8 scale (its DCT allows
    it): every byte of the scan is still read, at a fraction of the cost."""
    from PIL import Image, UnidentifiedImageError  # here: only image files need Pillow

    try:
        with Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[kind]]) as img:
            width, height = img.size
            if kind == "jpeg":
                img.draft(img.mode, (max(1, width // 8), max(1, height // 8)))
            img.load()
    except Image.DecompressionBombError:
        return "too many pixels to decode safely"
    except UnidentifiedImageError:
        return "its header is damaged"
    except Exception as exc:  # a decoder fed garbage raises anything
        return (str(exc).strip() or exc.__class__.__name__)[:120]
    return width, height


_PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}


def read_verified(path: str, sha256: str) -> bytes | None:
    """The file's bytes if they still hash to `sha256` (the job was made from them)."""
    limit = MAX_VIDEO_BYTES if Path(path).suffix.lower() in VIDEO_EXTS else MAX_IMAGE_BYTES
    try:
        with open(path, "rb") as f:
            data = f.read(max(limit, MAX_IMAGE_BYTES) + 1)
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() == sha256 else None


class LocalResolver:
    """Turns the local entries of a body's image_urls (or video_urls) into references,
    inspecting each distinct file once. Collects the files found (`found`) for the state
    file, and the videos a body names (`videos`) for its model's rules."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.found: dict[str, LocalImage | LocalVideo] = {}  # sha256 -> file
        self._seen: dict[tuple[Path, bool], LocalImage | LocalVideo | str] = {}

    def resolve(
        self, urls: list[Any], *, video: bool = False
    ) -> tuple[list[Any], list[tuple[int, str]]]:
        """(the list with references in place of files, [(index, problem)])."""
        out = list(urls)
        problems: list[tuple[int, str]] = []
        for n, entry in enumerate(urls):
            path = local_path(entry, self.base_dir)
            if path is None:
                continue
            result = self._seen.get((path, video))
            if result is None:
                result = self._seen[(path, video)] = inspect_video(path) if video else inspect(path)
            if isinstance(result, str):
                problems.append((n, result))
                blank = ".mp4" if video else ".png"  # one problem, not a second "not a URL"
                out[n] = f"{REF_PREFIX}{'0' * 64}{blank}"
                continue
            self.found.setdefault(result.sha256, result)
            out[n] = result.ref
        return out, problems
