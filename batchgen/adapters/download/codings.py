"""Content codings a CDN may apply to a result although `Accept-Encoding: identity` was asked.

Some CDNs gzip everything, MP4s included. Refusing such a body would fail the file on every
try, so it is decoded instead, as a stream, with its output bounded per call (a small gzip body
can expand to gigabytes: the caller counts what comes out against its size cap). gzip and zlib
carry their own checksum and length, which zlib verifies at the end; raw deflate carries none,
so the container checks after decoding matter there.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

__all__ = ["DECODABLE", "BadCoding", "Decoder"]

DECODABLE = ("gzip", "x-gzip", "deflate")
PIECE = 1024 * 1024  # at most this many decoded bytes per step


class BadCoding(Exception):
    """The encoded body is corrupt or ended before its coding did."""


class Decoder:
    """Decodes one gzip or deflate body fed in network chunks."""

    def __init__(self, coding: str) -> None:
        if coding not in DECODABLE:
            raise ValueError(coding)
        self._coding = coding
        self._raw = False
        self._started = False
        self._z = self._new()

    def _new(self) -> zlib._Decompress:
        if self._coding == "deflate":
            # "deflate" means zlib-wrapped by the RFC; some servers send raw deflate.
            return zlib.decompressobj(-zlib.MAX_WBITS if self._raw else zlib.MAX_WBITS)
        return zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded bytes of `data`, in pieces of at most PIECE bytes."""
        while data:
            if self._z.eof:
                if self._coding == "deflate" or not data.strip(b"\x00"):
                    return  # trailing bytes after the stream: ignored, as browsers do
                self._z = self._new()  # gzip may hold several members, one after another
            try:
                out = self._z.decompress(data, PIECE)
            except zlib.error as exc:
                if self._coding == "deflate" and not self._started and not self._raw:
                    self._raw = True
                    self._z = self._new()
                    continue
                raise BadCoding(f"the {self._coding} body is corrupt: {exc}") from None
            self._started = True
            if out:
                yield out
            data = self._z.unconsumed_tail or (self._z.unused_data if self._z.eof else b"")

    def finish(self) -> bytes:
        """The last decoded bytes; raises BadCoding if the coded stream is not complete."""
        try:
            out = self._z.flush()
        except zlib.error as exc:
            raise BadCoding(f"the {self._coding} body is corrupt: {exc}") from None
        if not self._z.eof:
            raise BadCoding(f"the {self._coding} body ended before its end marker")
        return out
