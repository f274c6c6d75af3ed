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
    """Complete unnamed events as they arrived (LF line ends, no ``event:`` field), kept whole:
    an OpenAI-format stream's chunks, ``b"data: x\\n\\n"`` repeated. Nothing is split or checked
    when they arrive; each event's data is cut out only when read, newest first, so the events
    nobody reads are never scanned or copied.

    Reading from the end is exact: after two LFs a new event always begins, whatever came before.
    A block that is not one ``data: `` line (a comment, an ``id:``, a multi-line event, extra
    blank lines) hands everything from the start of the buffer to the end of that block to the
    general parser, which gives what it would have given had it read them as they came."""

    __slots__ = ("buf",)

    def __init__(self, buf: bytes) -> None:
        self.buf = buf

    def __len__(self) -> int:
        return len(self.buf)

    def __iter__(self) -> Iterator[bytes | str]:
        """Every event's data, in stream order."""
        return reversed(list(self.newest_first()))

    def newest_first(self) -> Iterator[bytes | str]:
        buf = self.buf
        end = len(buf) - 2  # the blank line after the last event
        while end > 0:
            start = buf.rfind(b"\n\n", 0, end) + 2  # 1 when this is the first event
            if start == 1:
                start = 0
            if buf.startswith(b"data: ", start) and buf.find(b"\n", start, end) < 0:
                yield buf[start + 6 : end]
                end = start - 2
                continue
            yield from reversed(_general(buf[: end + 2]))  # not one plain data line: the general parser reads the rest
            return


def _general(buf: bytes) -> list[str]:
    """The data of every event in ``buf``, as ``SSEParser`` reads them one by one."""
    events: list[str] = []
    parser = SSEParser(lambda _name, data: events.append(data))
    parser.feed(buf)
    parser.close()
    return events


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
        any other block is read line by line as ``_feed_lines`` would. With no named event in the
        buffer, its complete events go over as ``DataBlocks``, unsplit and unread."""
        end = buf.rfind(b"\n\n") + 2
        if end > 2 and type(buf) is bytes and b"event:" not in buf:
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
