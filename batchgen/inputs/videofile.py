"""What a video file is and how long it lasts, read from its container: no ffmpeg, no decoder.

APIXO's video inputs (motion control, animate/replace, video-edit, omni reference) are fetched
by the provider after the submit; a file it cannot use fails a task that is already paid. The
rules the pages give are about the container and the length (MP4, MOV or M4V; at most 30 s;
2-15 s each), so this reads exactly that much: the magic bytes, then the container's own
header for the duration. MP4/MOV/M4V (ISO base media, QuickTime): the `mvhd` box of `moov`,
which may sit after the media data, so boxes are walked by seeking, never read whole (a
fragmented MP4 says its length in `mvex/mehd`); a video track is a `trak` whose `hdlr` says
`vide` (an M4A is the same container with sound only). WebM/Matroska: the EBML `DocType`, then
`Segment/Info` (`TimecodeScale`, `Duration`).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

KINDS = ("mp4", "mov", "m4v", "webm", "mkv")
EXTENSIONS = {"mp4": ".mp4", "mov": ".mov", "m4v": ".m4v", "webm": ".webm", "mkv": ".mkv"}
CONTENT_TYPES = {
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "m4v": "video/x-m4v",
    "webm": "video/webm",
    "mkv": "video/x-matroska",
}
NAMES = {"mp4": "MP4", "mov": "MOV", "m4v": "M4V", "webm": "WebM", "mkv": "Matroska (MKV)"}
MAX_BOX_READ = 64 * 1024 * 1024  # a moov larger than this is not a file we can judge cheaply
_QT_FIRST = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}  # QuickTime without ftyp
_IMAGE_BRANDS = (b"avi", b"hei", b"mif", b"msf")  # AVIF, HEIC/HEIF: pictures in the same boxes
_AUDIO_BRANDS = (b"M4A ", b"M4B ", b"M4P ")
_OTHER = (
    (b"RIFF", "an AVI or WAV file"),
    (b"FLV", "a Flash video (FLV)"),
    (b"OggS", "an Ogg file"),
    (b"GIF8", "a GIF"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG", "a PNG image"),
    (b"ID3", "an MP3"),
    (b"%PDF", "a PDF"),
)


class NotAVideo(ValueError):
    """The file is not a video batchgen can read; the message says what it is instead."""


@dataclass(frozen=True, slots=True)
class VideoInfo:
    kind: str  # one of KINDS
    duration_s: float | None  # None: the container does not say


def probe(f: BinaryIO, size: int) -> VideoInfo:
    """The kind and length of the video in `f` (a seekable binary file of `size` bytes)."""
    f.seek(0)
    head = f.read(64)
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return _matroska(f, size)
    if len(head) >= 8 and (head[4:8] == b"ftyp" or head[4:8] in _QT_FIRST):
        return _isobmff(f, size, head)
    raise NotAVideo(describe(head))


def describe(head: bytes) -> str:
    """What bytes that are not a readable video look like, for the message."""
    if not head:
        return "an empty file"
    for magic, name in _OTHER:
        if head.startswith(magic):
            return name
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return "an MPEG transport stream"
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    return "not an MP4, MOV, M4V or WebM video"


# -- ISO base media (MP4, MOV, M4V) ------------------------------------------------------------


def _boxes(f: BinaryIO, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload offset, payload end) of each box between `start` and `end`."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        header = f.read(16)
        if len(header) < 8:
            return
        size, kind = struct.unpack(">I4s", header[:8])
        skip = 8
        if size == 1:
            if len(header) < 16:
                raise NotAVideo("a damaged MP4/MOV box header")
            size = struct.unpack(">Q", header[8:16])[0]
            skip = 16
        elif size == 0:
            size = end - pos
        if size < skip or pos + size > end:
            raise NotAVideo(f"a damaged MP4/MOV file (box {kind!r} runs past the end)")
        yield kind, pos + skip, pos + size
        pos += size


def _brand_kind(head: bytes) -> str:
    if head[4:8] != b"ftyp":
        return "mov"
    brand = head[8:12]
    if brand[:3] in _IMAGE_BRANDS:
        raise NotAVideo("an AVIF/HEIF image")
    if brand in _AUDIO_BRANDS:
        raise NotAVideo("an audio file (M4A)")
    if brand == b"qt  ":
        return "mov"
    if brand.startswith(b"M4V"):
        return "m4v"
    if brand.startswith((b"3gp", b"3g2")):
        raise NotAVideo("a 3GP video, not MP4, MOV or M4V")
    return "mp4"


def _isobmff(f: BinaryIO, size: int, head: bytes) -> VideoInfo:
    kind = _brand_kind(head)
    for box, start, end in _boxes(f, 0, size):
        if box != b"moov":
            continue
        if end - start > MAX_BOX_READ:
            raise NotAVideo("an MP4/MOV whose header (moov) is too large to read")
        f.seek(start)
        moov = _Mem(f.read(end - start))
        duration = _mvhd_duration(moov)
        if not moov.has_video():
            raise NotAVideo(f"an {NAMES[kind]} file with no video track")
        return VideoInfo(kind, duration)
    raise NotAVideo(f"an {NAMES[kind]} file without its header (no moov box): incomplete?")


class _Mem:
    """A moov box in memory, walked like the file."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def children(self, start: int, end: int) -> list[tuple[bytes, int, int]]:
        return list(_boxes(io.BytesIO(self.data), start, end))

    def find(
        self, path: tuple[bytes, ...], start: int = 0, end: int | None = None
    ) -> list[tuple[int, int]]:
        """(payload start, end) of every box at `path` below (start, end)."""
        end = len(self.data) if end is None else end
        found: list[tuple[int, int]] = []
        for kind, s, e in self.children(start, end):
            if kind == path[0]:
                found.extend([(s, e)] if len(path) == 1 else self.find(path[1:], s, e))
        return found

    def has_video(self) -> bool:
        for s, e in self.find((b"trak", b"mdia", b"hdlr")):
            if e - s >= 12 and self.data[s + 8 : s + 12] == b"vide":
                return True
        return False


def _mvhd_duration(moov: _Mem) -> float | None:
    """Seconds from `mvhd` (timescale and duration, version 0 or 1); a fragmented file's
    `mvhd` says 0 and `mvex/mehd` holds the length."""
    for s, e in moov.find((b"mvhd",)):
        data = moov.data[s:e]
        version = data[0] if data else 0
        try:
            if version == 1:
                scale, length = struct.unpack(">IQ", data[20:32])
            else:
                scale, length = struct.unpack(">II", data[12:20])
        except struct.error:
            raise NotAVideo("a damaged MP4/MOV header (mvhd)") from None
        if not scale:
            raise NotAVideo("a damaged MP4/MOV header (mvhd timescale 0)")
        if length and length not in (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
            return length / scale
        for ms, me in moov.find((b"mvex", b"mehd")):
            body = moov.data[ms:me]
            fmt = ">Q" if body[:1] == b"\x01" else ">I"
            try:
                (frag,) = struct.unpack(fmt, body[4 : 4 + struct.calcsize(fmt)])
            except struct.error:
                return None
            return frag / scale if frag else None
        return None
    raise NotAVideo("an MP4/MOV file without a movie header (mvhd)")


# -- Matroska / WebM ----------------------------------------------------------------------------

_SEGMENT, _INFO, _CLUSTER = 0x18538067, 0x1549A966, 0x1F43B675
_DOCTYPE, _SCALE, _DURATION = 0x4282, 0x2AD7B1, 0x4489


def _vint(f: BinaryIO, keep_marker: bool) -> tuple[int, int]:
    """(value, bytes read) of an EBML variable-length integer; -1 for an unknown size."""
    first = f.read(1)
    if not first:
        raise NotAVideo("a damaged WebM/Matroska file (cut short)")
    b = first[0]
    length = next((n for n in range(8) if b & (0x80 >> n)), None)
    if length is None:
        raise NotAVideo("a damaged WebM/Matroska file (bad element size)")
    rest = f.read(length)
    if len(rest) < length:
        raise NotAVideo("a damaged WebM/Matroska file (cut short)")
    value = b if keep_marker else b & (0xFF >> (length + 1))
    for byte in rest:
        value = (value << 8) | byte
    if not keep_marker and value == (1 << (7 * (length + 1))) - 1:
        return -1, length + 1
    return value, length + 1


def _elements(f: BinaryIO, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    pos = start
    while pos < end:
        f.seek(pos)
        ident, n1 = _vint(f, keep_marker=True)
        size, n2 = _vint(f, keep_marker=False)
        body = pos + n1 + n2
        stop = end if size < 0 else body + size
        yield ident, body, min(stop, end)
        if size < 0:  # unknown size (a live stream): its children follow inline
            return
        pos = stop


def _matroska(f: BinaryIO, size: int) -> VideoInfo:
    kind = ""
    for ident, start, end in _elements(f, 0, size):
        if ident == 0x1A45DFA3:
            for sub, s, e in _elements(f, start, end):
                if sub == _DOCTYPE:
                    f.seek(s)
                    doc = f.read(e - s).rstrip(b"\x00")
                    kind = {b"webm": "webm", b"matroska": "mkv"}.get(doc, "")
            if not kind:
                raise NotAVideo("an EBML file that is neither WebM nor Matroska")
        elif ident == _SEGMENT:
            return VideoInfo(kind or "mkv", _segment_duration(f, start, end))
    raise NotAVideo("a WebM/Matroska file without a segment")


def _segment_duration(f: BinaryIO, start: int, end: int) -> float | None:
    for ident, s, e in _elements(f, start, end):
        if ident == _CLUSTER:
            return None  # media began and no Info was seen
        if ident != _INFO:
            continue
        scale, duration = 1_000_000, None
        for sub, ss, se in _elements(f, s, e):
            f.seek(ss)
            raw = f.read(se - ss)
            if sub == _SCALE:
                scale = int.from_bytes(raw, "big") or 1_000_000
            elif sub == _DURATION and len(raw) in (4, 8):
                duration = struct.unpack(">f" if len(raw) == 4 else ">d", raw)[0]
        return duration * scale / 1e9 if duration is not None else None
    return None
