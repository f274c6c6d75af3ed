"""Stream framings other than SSE, parsed incrementally into the same (event, data) callbacks.

* NDJSON (``application/x-ndjson``, Ollama): one JSON document per line; each line is an event
  with no name.
* AWS event stream (``application/vnd.amazon.eventstream``, Bedrock): binary messages, each a
  prelude (total and headers lengths, their CRC32), headers, payload and a CRC32 of the whole.
  Each message is an event named by its ``:event-type`` header; exceptions are named
  ``exception:<:exception-type>``. Parsed here rather than with botocore's ``EventStreamBuffer``,
  which decodes every header in Python (~60 µs a message, most of a Bedrock span's cost); both
  CRCs are still checked (zlib), and the tests hold the two parsers to the same events.

Both hold only the incomplete tail of the stream, like ``SSEParser``.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Protocol

EventHandler = Callable[[str, str], None]  # (event name, data)

NDJSON_TYPES = ("application/x-ndjson", "application/stream+json", "application/jsonl", "application/json-lines")
EVENTSTREAM_TYPE = "application/vnd.amazon.eventstream"


class StreamParser(Protocol):
    def feed(self, chunk: bytes) -> None: ...

    def close(self) -> None: ...


class NDJSONParser:
    __slots__ = ("_on_event", "_partial")

    def __init__(self, on_event: EventHandler) -> None:
        self._on_event = on_event
        self._partial = b""

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        buf = self._partial + chunk if self._partial else chunk
        lines = buf.split(b"\n")
        self._partial = lines.pop()  # "" when the chunk ended a line
        for line in lines:
            line = line.strip()
            if line:
                self._on_event("", line.decode("utf-8", "replace"))

    def close(self) -> None:
        if self._partial.strip():
            self._on_event("", self._partial.strip().decode("utf-8", "replace"))
        self._partial = b""


class EventStreamError(ValueError):
    """A message whose lengths or CRCs do not add up: the rest of the stream is not read."""


_PRELUDE = struct.Struct("!III")
_CRC = struct.Struct("!I")
_U16 = struct.Struct("!H")
_MAX_MESSAGE = 16 * 1024 * 1024  # the format's limit
_FIXED_SIZES = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}  # header value sizes by type
_WANTED = frozenset({b":message-type", b":event-type", b":exception-type", b":error-code"})


def _headers(data: bytes, start: int, end: int) -> dict[bytes, bytes]:
    """The string headers aispend reads (others are skipped by their sizes)."""
    found: dict[bytes, bytes] = {}
    pos = start
    while pos < end:
        size = data[pos]
        name = data[pos + 1 : pos + 1 + size]
        kind = data[pos + 1 + size]
        pos += 2 + size
        if kind in (6, 7):  # bytes, string: 2-byte length, then the value
            (length,) = _U16.unpack_from(data, pos)
            if kind == 7 and name in _WANTED:
                found[name] = data[pos + 2 : pos + 2 + length]
            pos += 2 + length
        elif kind in _FIXED_SIZES:
            pos += _FIXED_SIZES[kind]
        else:
            raise EventStreamError(f"unknown header type {kind}")
    return found


class EventStreamParser:
    __slots__ = ("_on_event", "_partial")

    def __init__(self, on_event: EventHandler) -> None:
        self._on_event = on_event
        self._partial = b""

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        buf = self._partial + chunk if self._partial else chunk
        pos, size = 0, len(buf)
        while size - pos >= 16:
            total, headers_length, prelude_crc = _PRELUDE.unpack_from(buf, pos)
            if total < 16 or total > _MAX_MESSAGE or headers_length > total - 16:
                raise EventStreamError(f"bad message lengths {total}, {headers_length}")
            if size - pos < total:
                break  # the rest of this message is in a later chunk
            end = pos + total
            if (
                zlib.crc32(buf[pos : pos + 8]) != prelude_crc
                or zlib.crc32(buf[pos : end - 4]) != _CRC.unpack_from(buf, end - 4)[0]
            ):
                raise EventStreamError("CRC mismatch")
            headers = _headers(buf, pos + 12, pos + 12 + headers_length)
            payload = buf[pos + 12 + headers_length : end - 4]
            pos = end
            kind = headers.get(b":message-type", b"event")
            if kind == b"event":
                name = headers.get(b":event-type", b"").decode("utf-8", "replace")
            else:
                detail = headers.get(b":exception-type") or headers.get(b":error-code") or kind
                name = "exception:" + detail.decode("utf-8", "replace")
            self._on_event(name, payload.decode("utf-8", "replace"))
        self._partial = buf[pos:]

    def close(self) -> None:
        """An incomplete last message (a cut stream) is dropped: it has no checked payload."""
        self._partial = b""


def framed(content_type: str) -> bool:
    """Whether ``content_type`` is one of the stream framings here."""
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind in NDJSON_TYPES or kind == EVENTSTREAM_TYPE


def parser_for(content_type: str, on_event: EventHandler) -> StreamParser | None:
    """The parser for a non-SSE streaming content type, or None."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in NDJSON_TYPES:
        return NDJSONParser(on_event)
    if kind == EVENTSTREAM_TYPE:
        return EventStreamParser(on_event)
    return None
