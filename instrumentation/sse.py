"""Incremental Server-Sent-Events parsing over arbitrary byte chunks (no buffering of the stream).

Only the current, incomplete line is held; complete events are handed to a callback as soon as
their terminating blank line arrives. Lines stay bytes until an event is complete and only its
data is decoded; a buffer without CR (what providers send) is split once on LF.
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
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        buf = self._partial + chunk if self._partial else chunk
        if b"\r" in buf:  # CR or CRLF line ends
            raw_lines = buf.splitlines(keepends=True)
            # an unfinished line, or one ending in a CR whose LF may start the next chunk, waits for more
            self._partial = raw_lines.pop() if not raw_lines[-1].endswith(b"\n") else b""
            lines = [raw.rstrip(b"\r\n") for raw in raw_lines]
        else:  # LF line ends, as every provider sends: one split, nothing to strip
            lines = buf.split(b"\n")
            self._partial = lines.pop()  # b"" when the buffer ended a line
        data = self._data
        for line in lines:
            if not line:
                if data:
                    self._dispatch()
                else:
                    self._event = ""
            elif line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif not line.startswith(b":"):  # ":" starts a comment
                self._field(line)

    def close(self) -> None:
        """End of stream: a final event without its blank line still counts."""
        if self._partial:
            partial, self._partial = self._partial, b""
            self.feed(partial + b"\n")
        self._dispatch()

    def _field(self, line: bytes) -> None:
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")

    def _dispatch(self) -> None:
        data = self._data
        if data:
            text = data[0] if len(data) == 1 else b"\n".join(data)
            data.clear()
            self._on_event(self._event, text.decode("utf-8", "replace"))
        self._event = ""
