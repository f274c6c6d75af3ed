"""Incremental Content-Encoding decoding for observed copies of streamed bodies.

The user's stream is passed through untouched; we decode only our copy, with the same codecs
the HTTP clients use (zlib for gzip/deflate, brotli / zstandard when installed).
"""

from __future__ import annotations

import zlib
from typing import Protocol


class Decoder(Protocol):
    def decode(self, data: bytes) -> bytes: ...


class _Identity:
    def decode(self, data: bytes) -> bytes:
        return data


class _Zlib:
    def __init__(self, wbits: int) -> None:
        self._obj = zlib.decompressobj(wbits)

    def decode(self, data: bytes) -> bytes:
        return self._obj.decompress(data)


class _Brotli:
    def __init__(self) -> None:
        import brotli

        self._obj = brotli.Decompressor()

    def decode(self, data: bytes) -> bytes:
        return self._obj.process(data) if hasattr(self._obj, "process") else self._obj.decompress(data)


class _Zstd:
    def __init__(self) -> None:
        import zstandard

        self._obj = zstandard.ZstdDecompressor().decompressobj()

    def decode(self, data: bytes) -> bytes:
        return self._obj.decompress(data)


IDENTITY = _Identity()  # stateless: one for every stream (and a reader may skip calling it)


def decoder_for(content_encoding: str | None) -> Decoder | None:
    """A decoder, or None when the encoding cannot be decoded here (usage then stays unknown)."""
    if not content_encoding:
        return IDENTITY
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return IDENTITY
    if encoding in ("gzip", "x-gzip"):
        return _Zlib(zlib.MAX_WBITS | 16)
    if encoding == "deflate":
        return _Zlib(zlib.MAX_WBITS | 32)
    try:
        if encoding == "br":
            return _Brotli()
        if encoding == "zstd":
            return _Zstd()
    except ImportError:
        return None
    return None
