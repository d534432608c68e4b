"""What an image is, from its first bytes alone: pure functions, no I/O.

The provider (APIXO) takes JPG, PNG or WebP of at most 10 MB; it fetches the image itself after
the submit and fails a paid task with INVALID_IMAGE_URL when it cannot. So batchgen judges an
image the way a decoder would: by its magic bytes, never by an extension or a Content-Type
(an HTML error page answered with 200 says `image/jpeg` often enough). The pixel size comes
from the header (JPEG SOF, PNG IHDR, WebP VP8/VP8L/VP8X), read here in a few lines instead of
pulling in an imaging library for it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAX_IMAGE_BYTES = 10_000_000  # APIXO: "at most 10 MB each"; read strictly (not MiB)
HEAD_BYTES = 64 * 1024  # enough for a JPEG's SOF after a typical EXIF block
KINDS = ("jpeg", "png", "webp")
EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "webp": ".webp"}
CONTENT_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}

# Kling's own rules (other providers of the same models state them; APIXO does not): warnings.
MIN_SIDE_PX = 300
MAX_ASPECT = 2.5

NOT_AN_IMAGE = "not a JPG, PNG or WebP image"

_OTHER = (
    (b"GIF87a", "a GIF"),
    (b"GIF89a", "a GIF"),
    (b"BM", "a BMP"),
    (b"II*\x00", "a TIFF"),
    (b"MM\x00*", "a TIFF"),
    (b"%PDF", "a PDF"),
    (b"\x00\x00\x01\x00", "an icon"),
)


@dataclass(frozen=True, slots=True)
class Sniffed:
    kind: str | None  # "jpeg", "png", "webp", or None: not an image batchgen may send
    width: int | None = None
    height: int | None = None
    what: str = ""  # for a refusal: what the bytes look like instead ("an HTML page")


def image_kind(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def describe_other(head: bytes) -> str:
    """What a refused body seems to be, for the message."""
    if not head:
        return "an empty body"
    for magic, name in _OTHER:
        if head.startswith(magic):
            return name
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        return "an AVIF/HEIF image" if brand[:3] in (b"avi", b"hei", b"hei", b"mif") else "a video"
    text = head[:512].lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in text:
        return "an HTML page"
    if text.startswith((b"{", b"[")):
        return "JSON"
    if text.startswith(b"<?xml") or text.startswith(b"<svg"):
        return "XML or SVG"
    return NOT_AN_IMAGE


def sniff(head: bytes) -> Sniffed:
    kind = image_kind(head)
    if kind is None:
        return Sniffed(None, what=describe_other(head))
    try:
        size = _SIZES[kind](head)
    except (struct.error, IndexError, ValueError):
        size = None
    if size is None or size[0] <= 0 or size[1] <= 0:
        return Sniffed(kind)
    return Sniffed(kind, size[0], size[1])


def _png_size(head: bytes) -> tuple[int, int] | None:
    if head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    i = 2
    n = len(head)
    while i + 4 <= n:
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        (length,) = struct.unpack(">H", head[i + 2 : i + 4])
        # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC)
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > n:
                return None
            height, width = struct.unpack(">HH", head[i + 5 : i + 9])
            return width, height
        if marker == 0xDA:  # start of scan before any SOF: give up
            return None
        i += 2 + length
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    data = head[20:]
    if chunk == b"VP8 ":
        if data[3:6] != b"\x9d\x01\x2a":
            return None
        width, height = struct.unpack("<HH", data[6:10])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        if data[0] != 0x2F:
            return None
        bits = int.from_bytes(data[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        width = int.from_bytes(data[4:7], "little") + 1
        height = int.from_bytes(data[7:10], "little") + 1
        return width, height
    return None


_SIZES = {"png": _png_size, "jpeg": _jpeg_size, "webp": _webp_size}


def size_warnings(width: int | None, height: int | None) -> list[str]:
    """Kling's rules that APIXO does not state: said as warnings, never a refusal."""
    if not width or not height:
        return []
    found = []
    if min(width, height) < MIN_SIDE_PX:
        found.append(
            f"{width}x{height} px is under {MIN_SIDE_PX} px a side "
            "(a Kling rule, not stated by APIXO: the task may fail)"
        )
    ratio = width / height
    if ratio > MAX_ASPECT or ratio < 1 / MAX_ASPECT:
        found.append(
            f"aspect ratio {width}:{height} is outside 1:{MAX_ASPECT:g} to {MAX_ASPECT:g}:1 "
            "(a Kling rule, not stated by APIXO: the task may fail)"
        )
    return found


def content_range_total(value: str | None) -> int | None:
    """The total size in `Content-Range: bytes 0-99/12345`, or None (`*` or unreadable)."""
    if not value:
        return None
    _, _, total = value.partition("/")
    total = total.strip()
    return int(total) if total.isdigit() else None
