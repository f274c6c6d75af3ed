"""Stream framings other than SSE, parsed incrementally into the same (event, data) callbacks.

* NDJSON (``application/x-ndjson``, Ollama): one JSON document per line; each line is an event
  with no name.
* AWS event stream (``application/vnd.amazon.eventstream``, Bedrock): binary messages with a
  prelude, headers and CRC32s, parsed with botocore's own ``EventStreamBuffer`` (botocore is
  there whenever this framing is: only boto3 talks to Bedrock). Each message is an event named
  by its ``:event-type`` header; exceptions are named ``exception:<:exception-type>``.

Both hold only the incomplete tail of the stream, like ``SSEParser``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

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


class EventStreamParser:
    __slots__ = ("_buffer", "_on_event")

    def __init__(self, on_event: EventHandler) -> None:
        from botocore.eventstream import EventStreamBuffer

        self._on_event = on_event
        self._buffer: Any = EventStreamBuffer()

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._buffer.add_data(chunk)
        for message in self._buffer:  # complete messages only; CRCs checked (a bad one raises)
            headers = message.headers
            kind = headers.get(":message-type", "event")
            if kind == "event":
                name = str(headers.get(":event-type", ""))
            else:
                name = "exception:" + str(headers.get(":exception-type") or headers.get(":error-code") or kind)
            self._on_event(name, bytes(message.payload).decode("utf-8", "replace"))

    def close(self) -> None:
        """An incomplete last message (a cut stream) is dropped: it has no checked payload."""


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
