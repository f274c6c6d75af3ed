"""Incremental Server-Sent-Events parsing over arbitrary byte chunks (no buffering of the stream).

Only the current, incomplete line (with a batch handler: the incomplete event) is held; complete
events are handed to a callback as soon as their terminating blank line arrives. Lines stay
bytes until an event is complete and only its data is decoded; a buffer without CR (what
providers send) is split once on LF, or on blank lines when events are batched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

EventHandler = Callable[[str, str], None]  # (event name, data)
BatchHandler = Callable[["list[bytes] | DataBlocks"], None]  # the data of consecutive unnamed one-line events


class DataBlocks:
    """Consecutive unnamed events of one ``data:`` line each, as they arrived: ``b"data: x\\n\\n"``
    repeated, nothing else (LF only, one space after the colon). Kept whole; each event's data is
    cut out only when read, newest first, so the events nobody reads are never copied."""

    __slots__ = ("buf",)

    def __init__(self, buf: bytes) -> None:
        self.buf = buf

    def __len__(self) -> int:
        return len(self.buf)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.datas())

    def newest_first(self) -> Iterator[bytes]:
        buf = self.buf
        end = len(buf) - 2  # the blank line after the last event
        while end >= 0:
            start = buf.rfind(b"\n\n", 0, end) + 2  # 1 when this is the first event
            if start == 1:
                start = 0
            yield buf[start + 6 : end]
            end = start - 2

    def datas(self) -> list[bytes]:
        """Every event's data, in stream order."""
        return [block[6:] for block in self.buf[:-2].split(b"\n\n")]


class SSEParser:
    """``on_event(name, data)`` for each event. With ``on_batch``, a run of unnamed events of one
    ``data:`` line each (every OpenAI-format chunk) is handed over as one list of their data,
    undecoded: one call for a batch instead of a line loop and a call per event. Events keep
    their stream order either way."""

    __slots__ = ("_data", "_event", "_on_batch", "_on_event", "_partial")

    def __init__(self, on_event: EventHandler, on_batch: BatchHandler | None = None) -> None:
        self._on_event = on_event
        self._on_batch = on_batch
        self._partial = b""
        self._event = ""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        buf = self._partial + chunk if self._partial else chunk
        if self._on_batch is not None and b"\r" not in buf and not self._data and not self._event:
            self._feed_blocks(buf)
        else:
            self._feed_lines(buf)

    def close(self) -> None:
        """End of stream: a final event without its blank line still counts."""
        if self._partial:
            partial, self._partial = self._partial, b""
            self._feed_lines(partial + b"\n")
        self._dispatch()

    def _feed_blocks(self, buf: bytes) -> None:
        """Events split on blank lines (LF only, no event begun): ``data: x`` blocks are batched,
        any other block is read line by line as ``_feed_lines`` would. When every complete event
        is one ``data: x`` line (what OpenAI-format hosts send), they go over as ``DataBlocks``,
        unsplit: checking that takes three scans in C, splitting a copy per event."""
        end = buf.rfind(b"\n\n") + 2
        if (
            end > 2
            and type(buf) is bytes
            and buf.startswith(b"data: ")
            and buf.count(b"\n", 0, end) == 2 * (blocks := buf.count(b"\n\n", 0, end))
            and buf.count(b"\n\ndata: ", 0, end) == blocks - 1
        ):
            self._partial = buf[end:]
            self._on_batch(DataBlocks(buf if end == len(buf) else buf[:end]))  # type: ignore[misc]  # set
            return
        blocks = buf.split(b"\n\n")
        self._partial = blocks.pop()  # after the last blank line: an event still arriving, kept whole
        batch: list[bytes] = []
        for block in blocks:
            if block.startswith(b"data: ") and b"\n" not in block:
                batch.append(block[6:])
            elif block:
                if batch:
                    self._on_batch(batch)  # type: ignore[misc]  # only called when set
                    batch = []
                self._lines([*block.split(b"\n"), b""])
        if batch:
            self._on_batch(batch)  # type: ignore[misc]

    def _feed_lines(self, buf: bytes) -> None:
        if b"\r" in buf:  # CR or CRLF line ends
            raw_lines = buf.splitlines(keepends=True)
            # an unfinished line, or one ending in a CR whose LF may start the next chunk, waits for more
            self._partial = raw_lines.pop() if not raw_lines[-1].endswith(b"\n") else b""
            lines = [raw.rstrip(b"\r\n") for raw in raw_lines]
        else:  # LF line ends, as every provider sends: one split, nothing to strip
            lines = buf.split(b"\n")
            self._partial = lines.pop()  # b"" when the buffer ended a line
        self._lines(lines)

    def _lines(self, lines: list[bytes]) -> None:
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
