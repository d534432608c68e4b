"""Is this body a video? Checks on a result's first bytes, its Content-Type and, for
ISO-BMFF (MP4/MOV/M4V/3GP), its top-level box sizes; pure, but for two small file readers.

A CDN in front of the results answers errors it makes itself ("Access Denied", a login wall, a
rate-limit page) with a 200 and an HTML or JSON body, sometimes even labelled video/mp4. Length
and sha256 cannot tell such a body from a video: only its content can. Every check here accepts
what a real video may look like and refuses only what a video never is.
"""

from __future__ import annotations

import bisect
import itertools
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import unquote_plus, urlsplit

__all__ = [
    "SNIFF_BYTES",
    "bmff_cut",
    "chunks_reader",
    "describe_body",
    "file_cut",
    "file_head",
    "head_of",
    "non_video_type",
    "page_type",
    "part_is_video",
    "query_secrets",
    "video_container",
]

SNIFF_BYTES = 512  # enough for every signature below (MPEG-TS's second sync byte is at 188)

# Box types that may open an ISO-BMFF file: `ftyp` (MP4, M4V, 3GP, modern MOV), a segment's
# `styp`, and what classic QuickTime files start with (no ftyp at all).
_BMFF_FIRST = frozenset({b"ftyp", b"styp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"})
# Top-level box types whose declared size is trusted to judge a cut. Any other four bytes end
# the walk: the structure is then not one this module can judge, and the file is accepted.
_BMFF_TOP = _BMFF_FIRST | {
    b"moof",
    b"mfra",
    b"sidx",
    b"ssix",
    b"uuid",
    b"meta",
    b"pdin",
    b"prft",
    b"emsg",
}
_TS_PACKET = 188
_M2TS_PACKET = 192
_NON_VIDEO_APPLICATION = frozenset(
    {"json", "xml", "xhtml+xml", "javascript", "x-javascript", "x-www-form-urlencoded", "pdf"}
)


def video_container(head: bytes) -> str | None:
    """The video container the first bytes of a file name (`head`: up to SNIFF_BYTES of
    them, fewer only if the file is shorter), or None if they are no video's."""
    # A box: 4-byte size, 4-byte type. The size's first byte is never a text character (no
    # opening box is near 150 MB), so "Get free..." is not taken for a `free` box.
    if len(head) >= 8 and head[4:8] in _BMFF_FIRST and head[0] < 0x09:
        return "ISO-BMFF (MP4/MOV)"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "Matroska/WebM"
    if len(head) >= 12 and head.startswith(b"RIFF") and head[8:12] in (b"AVI ", b"AVIX"):
        return "AVI"
    if head.startswith(b"FLV\x01"):
        return "FLV"
    if head.startswith(b"OggS"):
        return "Ogg"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "ASF/WMV"
    if head.startswith((b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")):
        return "MPEG-PS"
    # MPEG-TS: a sync byte (0x47, 'G') every 188 bytes; two of them, since one 'G' is text.
    if len(head) > _TS_PACKET and head[0] == head[_TS_PACKET] == 0x47:
        return "MPEG-TS"
    if len(head) > _M2TS_PACKET + 4 and head[4] == head[_M2TS_PACKET + 4] == 0x47:
        return "MPEG-TS (M2TS)"
    return None


def non_video_type(content_type: str | None) -> bool:
    """True for a Content-Type no video is sent as: a page or a document (text/*, JSON, XML,
    JavaScript). Absent, generic (application/octet-stream, binary/octet-stream) and video/*
    types are all fine: CDNs label files carelessly, so only a document type is believed."""
    if not content_type:
        return False
    kind = content_type.split(";", 1)[0].strip().lower()
    top, _, sub = kind.partition("/")
    if top == "text":
        return True
    if top == "application":
        return sub in _NON_VIDEO_APPLICATION or sub.endswith(("+json", "+xml"))
    return False


def page_type(content_type: str | None) -> bool:
    """A document type that only an error page would be sent as (HTML, JSON, XML): unlike
    text/plain, which careless CDNs put on anything."""
    if not non_video_type(content_type):
        return False
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    return kind != "text/plain"


def describe_body(
    content_type: str | None, head: bytes, *, limit: int = 48, hide: Iterable[str] = ()
) -> str:
    """What the server sent instead of a video, fit for a message and a state file: the
    Content-Type and the first bytes, escaped (no control characters, ASCII only) and bounded.
    Each string in `hide` (a signed URL's query values: an error page may echo the URL it
    refused) is blanked out first."""
    for secret in sorted(hide, key=len, reverse=True):
        if len(secret) >= 4:
            head = head.replace(secret.encode("utf-8", "replace"), b"[hidden]")
    kind = ascii((content_type or "none")[:80])[1:-1]
    shown = repr(bytes(head[:limit]))[2:-1]
    more = "..." if len(head) > limit else ""
    return f"Content-Type {kind}, first bytes '{shown}{more}'"


def bmff_cut(
    size: int, read_at: Callable[[int, int], bytes], *, max_boxes: int = 100_000
) -> str | None:
    """Walk the top-level boxes of an ISO-BMFF file of `size` bytes (`read_at(pos, n)` returns
    up to n bytes from pos). Returns why the file is cut (a known box that declares more bytes
    than the file holds past its start), or None when the boxes fit or the walk cannot judge
    (an unknown box type, a size-0 "to the end" box, a malformed size, too many boxes).

    This catches an MP4 whose body ended cleanly but early, which HTTP cannot see when the
    server sends no length (HTTP/1.0, close-delimited): the cut lands inside `mdat` or `moov`."""
    pos = 0
    for _ in range(max_boxes):
        if pos >= size:
            return None
        header = read_at(pos, 16)
        if len(header) < 8:
            return None  # a tail too short for a header: nothing to judge it by
        declared = int.from_bytes(header[:4], "big")
        kind = header[4:8]
        if kind not in _BMFF_TOP:
            return None
        if declared == 1:  # 64-bit size follows the type
            if len(header) < 16:
                return f"the {kind.decode()} box at byte {pos} is cut in its header"
            declared = int.from_bytes(header[8:16], "big")
            if declared < 16:
                return None
        elif declared < 8:  # 0: "runs to the end of the file"; 2 to 7: malformed
            return None
        if pos + declared > size:
            return (
                f"the {kind.decode()} box at byte {pos} declares {declared} bytes but the file "
                f"ends {size - pos} bytes after its start"
            )
        pos += declared
    return None


# ---- the same checks over chunks in memory and over files --------------------------------------


def head_of(chunks: list[bytes]) -> bytes:
    """The first SNIFF_BYTES bytes of a list of chunks (fewer if they hold fewer)."""
    out = b""
    for chunk in chunks:
        out += chunk[: SNIFF_BYTES - len(out)]
        if len(out) >= SNIFF_BYTES:
            break
    return out


def chunks_reader(chunks: list[bytes]) -> Callable[[int, int], bytes]:
    """read_at(pos, n) over a list of chunks without joining them (for bmff_cut)."""
    starts = list(itertools.accumulate((len(c) for c in chunks), initial=0))

    def read_at(pos: int, n: int) -> bytes:
        i = bisect.bisect_right(starts, pos) - 1
        out = b""
        while i < len(chunks) and len(out) < n:
            out += chunks[i][pos - starts[i] if not out else 0 :][: n - len(out)]
            i += 1
        return out

    return read_at


def part_is_video(part: Path, offset: int) -> bool:
    """Whether a .part kept for a resume opens like a video (its first bytes were checked as
    they arrived; this guards against one left by something else). Below SNIFF_BYTES it
    cannot tell yet: the download checks them with the bytes that follow."""
    if offset < SNIFF_BYTES:
        return True
    try:
        with open(part, "rb") as f:
            return video_container(f.read(SNIFF_BYTES)) is not None
    except OSError:
        return False


def file_head(path: Path, n: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def file_cut(path: Path, size: int) -> str | None:
    """bmff_cut over a file on disk: one small read per top-level box."""
    with open(path, "rb") as f:
        fd = f.fileno()
        return bmff_cut(size, lambda pos, n: os.pread(fd, n, pos))


def query_secrets(url: str) -> set[str]:
    """The query of `url` and each of its values, raw and decoded: what describe_body hides."""
    query = urlsplit(url).query
    found = {query} if query else set()
    for part in query.split("&"):
        value = part.partition("=")[2]
        found |= {value, unquote_plus(value)}
    return {v for v in found if v}
