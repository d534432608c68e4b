"""The container reader: kind by magic bytes, length from mvhd (moov before or after the media,
version 0 or 1, fragmented), WebM's Segment/Info, and what other files are called."""

from __future__ import annotations

import contextlib
import io

import pytest

from batchgen.inputs.videofile import NotAVideo, probe
from tests.videokit import box, mp4, webm


def _probe(data: bytes):
    return probe(io.BytesIO(data), len(data))


@pytest.mark.parametrize(
    ("data", "kind", "seconds"),
    [
        (mp4(12.5), "mp4", 12.5),
        (mp4(3.0, moov_last=False), "mp4", 3.0),
        (mp4(40.0, version=1), "mp4", 40.0),
        (mp4(7.0, brand=b"qt  "), "mov", 7.0),
        (mp4(9.0, brand=b"M4V "), "m4v", 9.0),
        (mp4(6.0, fragmented=True), "mp4", 6.0),
        (webm(4.25), "webm", 4.25),
        (webm(2.0, b"matroska"), "mkv", 2.0),
    ],
)
def test_kind_and_length(data: bytes, kind: str, seconds: float) -> None:
    info = _probe(data)
    assert info.kind == kind
    assert info.duration_s == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "PNG"),
        (b"<html><body>nope</body></html>" + b" " * 40, "HTML"),
        (mp4(5.0, video=False), "no video track"),
        (mp4(5.0, brand=b"M4A "), "audio"),
        (mp4(5.0, brand=b"avif"), "AVIF"),
        (mp4(5.0)[:-40], "runs past the end"),
        (mp4(5.0)[:24] + box(b"mdat", b"\x00" * 16), "no moov"),
        (b"RIFF\x00\x00\x00\x00AVI LIST" + b"\x00" * 40, "AVI"),
    ],
)
def test_what_is_not_a_readable_video(data: bytes, said: str) -> None:
    with pytest.raises(NotAVideo, match=said):
        _probe(data)


def test_garbage_never_raises_anything_else() -> None:
    import random

    rng = random.Random(7)
    base = mp4(5.0) + webm(3.0)
    for _ in range(500):
        data = bytearray(rng.choice((mp4(5.0), webm(3.0), base)))
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cut = bytes(data[: rng.randint(0, len(data))])
        with contextlib.suppress(NotAVideo):
            _probe(cut)
