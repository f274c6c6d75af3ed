"""NDJSON and AWS event-stream parsing over arbitrary chunk boundaries: the same events, whatever
the cut (streams reach the parser in whatever pieces the network and the app's reads make)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from aispend.instrumentation.framing import EventStreamParser, NDJSONParser, framed, parser_for
from tests.fakes import eventstream as es

EVENTS = [
    ("messageStart", {"role": "assistant", "p": "abc"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "héllo ✓"}}),
    ("messageStop", {"stopReason": "end_turn"}),
    ("metadata", {"usage": {"inputTokens": 11, "outputTokens": 7}}),
]
EVENT_BYTES = b"".join(es.event(name, payload) for name, payload in EVENTS) + es.exception("throttlingException", "x")
LINES = [{"model": "llama3.2", "message": {"content": t}, "done": False} for t in ("a", "b\nc", "")] + [
    {"done": True, "eval_count": 3}
]
NDJSON_BYTES = b"".join(json.dumps(line).encode() + b"\n" for line in LINES)


def cut(data: bytes, sizes: list[int]) -> list[bytes]:
    out, i = [], 0
    for size in sizes:
        if i >= len(data):
            break
        out.append(data[i : i + size])
        i += size
    if i < len(data):
        out.append(data[i:])
    return out


def parse(parser_cls, pieces: list[bytes]) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    parser = parser_cls(lambda event, data: seen.append((event, data)))
    for piece in pieces:
        parser.feed(piece)
    parser.close()
    return seen


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=16), max_size=400))
def test_event_stream_any_cut(sizes):
    seen = parse(EventStreamParser, cut(EVENT_BYTES, sizes))
    assert [(e, json.loads(d)) for e, d in seen[:-1]] == EVENTS
    assert seen[-1] == ("exception:throttlingException", '{"message": "x"}')


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=16), max_size=100))
def test_ndjson_any_cut(sizes):
    seen = parse(NDJSONParser, cut(NDJSON_BYTES, sizes))
    assert [json.loads(d) for _, d in seen] == LINES and all(e == "" for e, _ in seen)


_HEADER_VALUES = st.one_of(
    st.text(max_size=20), st.binary(max_size=20), st.booleans(), st.integers(-(2**31), 2**31 - 1)
)
_MESSAGES = st.lists(
    st.tuples(
        st.sampled_from(["event", "exception"]),
        st.text(min_size=1, max_size=12),
        st.dictionaries(st.text("abcxyz-", min_size=1, max_size=8), _HEADER_VALUES, max_size=4),
        st.binary(max_size=200),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(_MESSAGES, st.lists(st.integers(min_value=1, max_value=64), max_size=200))
def test_event_stream_parser_agrees_with_botocores(messages, sizes):
    """Any headers (every value type), any payload, any cut: the same events as botocore's parser."""
    from botocore.eventstream import EventStreamBuffer

    data = b""
    for kind, name, extra, payload in messages:
        headers = {**extra, ":message-type": kind, (":event-type" if kind == "event" else ":exception-type"): name}
        data += es.message(headers, payload)
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    expected = []
    for msg in buffer:
        kind = msg.headers[":message-type"]
        name = msg.headers[":event-type"] if kind == "event" else "exception:" + msg.headers[":exception-type"]
        expected.append((name, msg.payload.decode("utf-8", "replace")))
    assert parse(EventStreamParser, cut(data, sizes)) == expected


def test_a_corrupt_message_stops_the_parse():
    import pytest

    from aispend.instrumentation.framing import EventStreamError

    data = bytearray(es.event("messageStop", {"stopReason": "end_turn"}))
    data[-6] ^= 0xFF
    with pytest.raises(EventStreamError):
        parse(EventStreamParser, [bytes(data)])


def test_ndjson_last_line_without_newline_still_counts():
    assert parse(NDJSONParser, [b'{"a":1}\n{"done":true}']) == [("", '{"a":1}'), ("", '{"done":true}')]


def test_a_cut_event_stream_drops_only_the_incomplete_message():
    assert [e for e, _ in parse(EventStreamParser, [EVENT_BYTES[:-5]])] == [name for name, _ in EVENTS]


def test_content_types():
    assert framed("application/x-ndjson") and framed("application/vnd.amazon.eventstream")
    assert framed("application/stream+json; charset=utf-8")
    assert not framed("text/event-stream") and not framed("application/json")
    assert parser_for("application/json", lambda e, d: None) is None


class _Tap:
    def __init__(self) -> None:
        self.fed: list[bytes] = []
        self.finished_after: int | None = None

    def feed(self, chunk: bytes) -> None:
        self.fed.append(chunk)

    def finish(self, error: BaseException | None = None) -> None:
        if self.finished_after is None:
            self.finished_after = len(self.fed)


def test_botocore_stream_ends_the_call_at_an_exception_message_cut_anywhere():
    """botocore raises on an exception message without reading on: the call ends as it passes."""
    from aispend.instrumentation.hooks.botocore_session import _EXCEPTION_MESSAGE, _tapped

    data = es.event("messageStart", {"role": "assistant"}) + es.exception("throttlingException", "slow")
    start = data.index(_EXCEPTION_MESSAGE)
    end = start + len(_EXCEPTION_MESSAGE)
    for at in range(start - 3, end + 3):
        tap = _Tap()
        stream = _tapped(iter([data[:at], data[at:]]), tap)
        assert next(stream) == data[:at]
        assert tap.finished_after == (1 if at >= end else None), at
        assert next(stream) == data[at:]
        assert tap.finished_after == (1 if at >= end else 2), at  # as it passes, not at garbage collection
