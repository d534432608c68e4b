"""Small, valid video containers built byte by byte (no ffmpeg here): enough structure for
batchgen's container reader (ftyp, moov/mvhd, a video trak; EBML header, Segment/Info)."""

from __future__ import annotations

import struct


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def mp4(
    seconds: float,
    *,
    brand: bytes = b"isom",
    moov_last: bool = True,
    version: int = 0,
    video: bool = True,
    media: bytes = b"\x00" * 256,
    fragmented: bool = False,
) -> bytes:
    """An MP4 (or MOV with brand `qt  `, M4V with `M4V `) of `seconds`, timescale 1000."""
    scale, length = 1000, round(seconds * 1000)
    if version == 1:
        mvhd = struct.pack(">B3xQQIQ", 1, 0, 0, scale, 0 if fragmented else length)
    else:
        mvhd = struct.pack(">B3xIIII", 0, 0, 0, scale, 0 if fragmented else length)
    mvhd += b"\x00" * 80
    handler = b"vide" if video else b"soun"
    hdlr = box(b"hdlr", b"\x00" * 8 + handler + b"\x00" * 12 + b"h\x00")
    trak = box(
        b"trak", box(b"tkhd", b"\x00" * 84) + box(b"mdia", box(b"mdhd", b"\x00" * 24) + hdlr)
    )
    parts = box(b"mvhd", mvhd) + trak
    if fragmented:
        parts += box(b"mvex", box(b"mehd", struct.pack(">B3xI", 0, length)))
    moov = box(b"moov", parts)
    ftyp = box(b"ftyp", brand + b"\x00\x00\x02\x00" + brand + b"mp41")
    mdat = box(b"mdat", media)
    return ftyp + (mdat + moov if moov_last else moov + mdat)


def _ebml(ident: int, payload: bytes) -> bytes:
    raw_id = ident.to_bytes((ident.bit_length() + 7) // 8, "big")
    n = len(payload)
    size = (0x01 << 56 | n).to_bytes(8, "big")  # 8-byte size vint
    return raw_id + size + payload


def webm(seconds: float, doctype: bytes = b"webm") -> bytes:
    header = _ebml(0x1A45DFA3, _ebml(0x4286, b"\x01") + _ebml(0x4282, doctype))
    info = _ebml(0x1549A966, _ebml(0x2AD7B1, (1_000_000).to_bytes(3, "big"))
                 + _ebml(0x4489, struct.pack(">d", seconds * 1000.0)))  # fmt: skip
    cluster = _ebml(0x1F43B675, b"\x00" * 64)
    return header + _ebml(0x18538067, info + cluster)
