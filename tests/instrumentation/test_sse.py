"""The incremental SSE parser gives the same events however the stream is cut into chunks."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aispend.instrumentation.sse import SSEParser

text = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=30)
events = st.lists(
    st.tuples(st.sampled_from(["", "message_start", "content_block_delta"]), st.lists(text, min_size=1, max_size=3)),
    min_size=1,
    max_size=8,
)


def encode(evs: list[tuple[str, list[str]]], newline: str, comments: bool) -> bytes:
    out = []
    for name, lines in evs:
        if comments:
            out.append(f": keep-alive{newline}")
        if name:
            out.append(f"event: {name}{newline}")
        out += [f"data: {line}{newline}" for line in lines]
        out.append(newline)
    return "".join(out).encode()


def parse(chunks: list[bytes], batched: bool = False) -> list[tuple[str, str]]:
    """The events of ``chunks``; ``batched``: runs of plain data events arrive as one batch."""
    got: list[tuple[str, str]] = []
    on_batch = (lambda datas: got.extend(("", _text(data)) for data in datas)) if batched else None
    parser = SSEParser(lambda event, data: got.append((event, data)), on_batch)
    for chunk in chunks:
        parser.feed(chunk)
    parser.close()
    return got


def _text(data: bytes | str) -> str:
    """A batched event's data: bytes, or text where ``DataBlocks`` handed a block to the general parser."""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


def cut(body: bytes, cuts: list[int]) -> list[bytes]:
    chunks, pos = [], 0
    for n in cuts:
        chunks.append(body[pos : pos + n])
        pos += n
    return [*chunks, body[pos:]]


@settings(max_examples=300, deadline=None)
@given(events, st.sampled_from(["\n", "\r\n", "\r"]), st.booleans(), st.lists(st.integers(1, 40), max_size=30))
def test_any_chunking_gives_the_same_events(evs, newline, comments, cuts):
    chunks = cut(encode(evs, newline, comments), cuts)
    assert parse(chunks) == [(name, "\n".join(lines)) for name, lines in evs]


@settings(max_examples=300, deadline=None)
@given(events, st.sampled_from(["\n", "\r\n", "\r"]), st.booleans(), st.lists(st.integers(1, 40), max_size=30))
def test_batched_events_are_the_same_events_in_the_same_order(evs, newline, comments, cuts):
    chunks = cut(encode(evs, newline, comments), cuts)
    assert parse(chunks, batched=True) == parse(chunks) == [(name, "\n".join(lines)) for name, lines in evs]


def test_a_batch_is_one_call_for_consecutive_unnamed_one_line_events():
    calls: list[object] = []
    parser = SSEParser(lambda event, data: calls.append((event, data)), lambda datas: calls.append(list(datas)))
    parser.feed(b'data: {"a":1}\n\ndata: {"b":2}\n\nevent: ping\ndata: x\n\ndata: [DONE]\n\ndata: tail')
    parser.close()
    assert calls == [[b'{"a":1}', b'{"b":2}'], ("ping", "x"), [b"[DONE]"], ("", "tail")]


def test_fields_without_space_and_final_event_without_blank_line():
    assert parse([b"event:ping\ndata:{}\n\ndata: a\ndata: b"]) == [("ping", "{}"), ("", "a\nb")]


def test_unknown_fields_and_bare_data_line():
    assert parse([b"id: 7\nretry: 100\ndata\ndata: x\n\n"]) == [("", "\nx")]


unnamed_lines = st.lists(
    st.one_of(
        text.map(lambda t: f"data: {t}"),
        text.map(lambda t: f"data:{t}"),
        st.just(": keep-alive"),
        st.just("id: 7"),
        st.just("data: [DONE]"),
        st.just(""),
    ),
    max_size=25,
)


@settings(max_examples=400, deadline=None)
@given(unnamed_lines, st.lists(st.integers(1, 40), max_size=30))
def test_unnamed_events_read_unsplit_are_the_events_the_line_parser_reads(lines, cuts):
    """OpenAI-format streams go to the batch handler unsplit (``DataBlocks``) and are cut into
    events only when read, from the end: with comments, ``id:`` lines, multi-line events, extra
    blank lines and any chunking, the same events in the same order."""
    body = "".join(f"{line}\n" for line in lines).encode()
    chunks = cut(body, cuts)
    assert parse(chunks, batched=True) == parse(chunks)
