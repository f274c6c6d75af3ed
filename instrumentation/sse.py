"""Incremental Server-Sent-Events parsing over arbitrary byte chunks (no buffering of the stream).

Only the current, incomplete line is held; complete events are handed to a callback as soon as
their terminating blank line arrives.
"""

from __future__ import annotations

from collections.abc import Callable

EventHandler = Callable[[str, str], None]  # (event name, data)


class SSEParser:
    __slots__ = ("_data", "_event", "_on_event", "_partial")

    def __init__(self, on_event: EventHandler) -> None:
        self._on_event = on_event
        self._partial = b""
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        buf = self._partial + chunk if self._partial else chunk
        lines = buf.splitlines(keepends=True)
        if lines and not lines[-1].endswith((b"\n", b"\r")):
            self._partial = lines.pop()
        else:
            self._partial = b""
        for raw in lines:
            self._line(raw.rstrip(b"\r\n").decode("utf-8", "replace"))

    def close(self) -> None:
        """End of stream: a final event without its blank line still counts."""
        if self._partial:
            self._line(self._partial.decode("utf-8", "replace"))
            self._partial = b""
        self._dispatch()

    def _line(self, line: str) -> None:
        if not line:
            self._dispatch()
            return
        if line.startswith(":"):
            return
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value

    def _dispatch(self) -> None:
        if self._data:
            self._on_event(self._event, "\n".join(self._data))
        self._event = ""
        self._data = []
