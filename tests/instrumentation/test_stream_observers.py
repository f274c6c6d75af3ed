"""Stream observers hold events and parse only what the span needs; whatever the stream, the result
is the one parsing every event in order would give (the reference below), and a long stream with
usage at its end is read from a handful of events."""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aispend.instrumentation.adapters import anthropic, base, bedrock, cohere, gemini, ollama, openai
from aispend.instrumentation.adapters.base import CallStart, Observed
from aispend.instrumentation.sse import SSEParser
from tests.fakes import payloads as p

OPENAI = openai.OpenAIAdapter()


def run(adapter: Any, start: CallStart, events: list[tuple[str, Any]], capture: bool) -> Observed:
    observed = Observed(output_text=[] if capture else None)
    observer = adapter.stream_observer(start, observed)
    for name, data in events:
        observer.on_event(name, data if isinstance(data, str) else json.dumps(data))
    observer.close()
    return observed


def run_sse(adapter: Any, start: CallStart, events: list[tuple[str, Any]], capture: bool) -> Observed:
    """As ``run``, through the SSE parser the recorder uses (unnamed events batched when the observer takes batches)."""
    observed = Observed(output_text=[] if capture else None)
    observer = adapter.stream_observer(start, observed)
    parser = SSEParser(observer.on_event, getattr(observer, "on_batch", None))
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        parser.feed((f"event: {name}\n" if name else "").encode() + f"data: {text}\n\n".encode())
    parser.close()
    observer.close()
    return observed


def reference(adapter: Any, start: CallStart, events: list[tuple[str, Any]], capture: bool) -> Observed:
    """Every event parsed, in order, the moment it arrives."""
    observed = Observed(output_text=[] if capture else None)
    observer = adapter.stream_observer(start, observed)
    for name, data in events:
        event = base.event_json(data if isinstance(data, str) else json.dumps(data))
        if isinstance(event, dict):
            if isinstance(observer, anthropic._AnthropicStream):
                observer._apply(event, name)
            else:
                observer._apply(event)
    return observed


def same(a: Observed, b: Observed, usage_reported: bool) -> None:
    assert a.attributes == b.attributes
    assert (a.usage_reported, a.error_type, a.output_text) == (b.usage_reported, b.error_type, b.output_text)
    if not usage_reported:  # the text is what an estimate is made from
        assert a.output_chars == b.output_chars


def chat_stream(
    choices: int, pieces: list[str], usage: bool, cut: int | None, error: bool, continuous: bool = False
) -> list[tuple[str, Any]]:
    chunks = []
    for i in range(choices):
        chunks += [
            (c, i)
            for c in p.openai_chat_chunks(
                id="c1",
                model="gpt-4o-2024-08-06",
                pieces=pieces,
                usage={"prompt_tokens": 11, "completion_tokens": 9, "cached_tokens": 2, "reasoning_tokens": 0}
                if usage and i == choices - 1
                else None,
                created=1,
                continuous=continuous,
            )
        ]
    # interleave the choices as the API does: round-robin, each chunk's choice index set
    out, by_choice = [], [[c for c, j in chunks if j == i] for i in range(choices)]
    while any(by_choice):
        for i, queue in enumerate(by_choice):
            if queue:
                chunk = json.loads(json.dumps(queue.pop(0)))
                for choice in chunk["choices"]:
                    choice["index"] = i
                out.append(("", chunk))
    if error:
        out.append(("", {"error": {"code": "server_error", "message": "boom"}}))
    out = out[:cut] if cut is not None else out
    return [*out, ("", "[DONE]")]


@settings(max_examples=150, deadline=None)
@given(
    choices=st.integers(1, 3),
    pieces=st.lists(st.text(max_size=8), min_size=1, max_size=12),
    usage=st.booleans(),
    cut=st.none() | st.integers(0, 40),
    error=st.booleans(),
    capture=st.booleans(),
    continuous=st.booleans(),
)
def test_openai_chat_streams_read_as_if_every_chunk_was_parsed(choices, pieces, usage, cut, error, capture, continuous):
    start = CallStart("chat", "llm", model="gpt-4o", stream=True, choices=choices)
    events = chat_stream(choices, pieces, usage, cut, error, continuous)
    got = run(OPENAI, start, events, capture)
    same(got, reference(OPENAI, start, events, capture), got.usage_reported)
    same(run_sse(OPENAI, start, events, capture), got, got.usage_reported)


def test_running_usage_is_final_only_once_every_choice_has_finished():
    """vLLM's continuous usage stats with n=2: a running usage after the first choice finished
    but before the second did is a floor, not final; read to the end, it is final."""
    usage = {"prompt_tokens": 11, "completion_tokens": 9, "cached_tokens": 0, "reasoning_tokens": 0}

    def choice(i: int, pieces: list[str]) -> list[dict[str, Any]]:
        chunks = p.openai_chat_chunks(id="c1", model="m", pieces=pieces, usage=usage, created=1, continuous=True)
        for chunk in chunks:
            for c in chunk["choices"]:
                c["index"] = i
        return chunks

    first, second = choice(0, ["a"])[:-1], choice(1, ["a", "b", "c"])  # role, a, finish / role, a, b, c, finish, usage
    events = [("", c) for c in (first[0], second[0], first[1], second[1], first[2], *second[2:])]
    start = CallStart("chat", "llm", model="m", stream=True, choices=2)
    cut = run(OPENAI, start, events[:6], False)  # the first choice finished, then a running usage of the second
    assert not cut.usage_reported and cut.input_known
    assert cut.attributes["gen_ai.usage.input_tokens"] == 11
    whole = run(OPENAI, start, events, False)
    assert whole.usage_reported and whole.attributes["gen_ai.usage.output_tokens"] == 9


def test_usage_on_the_last_text_chunk_before_the_finish_chunk_is_final():
    """A host that puts the usage on its last text chunk, then sends the finish reason alone."""
    chunks = p.openai_chat_chunks(id="c1", model="m", pieces=["a", "b"], usage=None, created=1)
    chunks[-2]["usage"] = {"prompt_tokens": 5, "completion_tokens": 2}
    observed = run(OPENAI, CallStart("chat", "llm", model="m", stream=True), [("", c) for c in chunks], False)
    assert observed.usage_reported
    assert (observed.attributes["gen_ai.usage.input_tokens"], observed.attributes["gen_ai.usage.output_tokens"]) == (
        5,
        2,
    )


def test_an_error_chunk_with_choices_is_an_error():
    """OpenRouter's mid-stream error: ``error`` beside a choice whose finish reason is "error"."""
    chunks = p.openai_chat_chunks(id="c1", model="m", pieces=["a"], usage=None, created=1)[:-1]
    chunks.append(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "error": {"code": "server_error", "message": "Provider disconnected"},
            "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
        }
    )
    observed = run(OPENAI, CallStart("chat", "llm", model="m", stream=True), [("", c) for c in chunks], False)
    assert observed.error_type == "server_error"
    assert observed.attributes["gen_ai.response.finish_reasons"] == ("error",)


@pytest.mark.parametrize("capture", [False, True])
@pytest.mark.parametrize("cut", [None, 2, 5])
def test_responses_anthropic_and_gemini_streams(capture, cut):
    responses = p.openai_response_events(
        id="r1",
        msg_id="m1",
        model="gpt-4o",
        pieces=["Hel", "lo"],
        usage={"prompt_tokens": 5, "completion_tokens": 2, "cached_tokens": 0, "reasoning_tokens": 0},
        created=1,
    )
    claude = p.anthropic_events(
        id="m1",
        model="claude-haiku-4-5",
        pieces=["Hi", " there"],
        usage={"input_tokens": 7, "output_tokens": 3, "cache_creation_input_tokens": 1, "cache_read_input_tokens": 2},
    )
    gem = p.gemini_chunks(
        id="g1",
        model="gemini-2.0-flash",
        pieces=["a", "b", "c"],
        usage={"promptTokenCount": 4, "candidatesTokenCount": 6, "thoughtsTokenCount": 0, "cachedContentTokenCount": 0},
    )
    cases = [
        (OPENAI, CallStart("chat", "llm", stream=True), list(responses)),
        (anthropic.AnthropicAdapter(), CallStart("chat", "llm", stream=True), list(claude)),
        (gemini.GeminiAdapter(), CallStart("generate_content", "llm", stream=True), [("", c) for c in gem]),
    ]
    for adapter, start, events in cases:
        events = events[:cut] if cut is not None else events
        got = run(adapter, start, events, capture)
        same(got, reference(adapter, start, events, capture), got.usage_reported)
        same(run_sse(adapter, start, events, capture), got, got.usage_reported)


def test_a_long_stream_with_usage_is_read_from_its_last_chunks(monkeypatch):
    parsed = []
    real = base.event_json
    monkeypatch.setattr(base, "event_json", lambda data: parsed.append(data) or real(data))
    start = CallStart("chat", "llm", model="gpt-4o", stream=True)
    events = chat_stream(1, [f"w{i} " for i in range(500)], usage=True, cut=None, error=False)
    observed = run(OPENAI, start, events, capture=False)
    assert observed.usage_reported and observed.attributes["gen_ai.usage.output_tokens"] == 9
    assert observed.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert len(parsed) <= 3  # the usage chunk, the finish chunk: not the 500 text chunks


def test_held_events_past_the_limit_are_read_as_they_come(monkeypatch):
    monkeypatch.setattr(base, "HOLD_LIMIT", 2_000)
    start = CallStart("chat", "llm", model="gpt-4o", stream=True)
    events = chat_stream(1, [f"w{i} " for i in range(300)], usage=False, cut=None, error=False)
    got = run(OPENAI, start, events, capture=False)
    same(got, reference(OPENAI, start, events, capture=False), False)
    assert got.output_chars == sum(len(f"w{i} ") for i in range(300))


@pytest.mark.parametrize("capture", [False, True])
@pytest.mark.parametrize(
    "adapter",
    [
        OPENAI,
        anthropic.AnthropicAdapter(),
        gemini.GeminiAdapter(),
        cohere.CohereAdapter(),
        ollama.OllamaAdapter(),
        bedrock.BedrockAdapter(),
    ],
    ids=lambda a: type(a).__name__,
)
def test_a_closed_stream_observer_leaves_no_reference_cycle(adapter, capture):
    """Observers are freed when the stream is done, not left to the cycle collector: a cycle per
    streamed call cost more than the rest of aispend's work on it (collections of the whole young
    generation, ~20 per 1,000 calls)."""
    events = [("", json.dumps({"model": "m", "choices": [{"index": 0, "delta": {"content": "hi"}}]}))]
    events += [("content_block_delta", json.dumps({"delta": {"text": "hi"}})), ("contentBlockDelta", "{}")]
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        observed = Observed(output_text=[] if capture else None)
        observer = adapter.stream_observer(CallStart("chat", "llm", model="m", stream=True), observed)
        for name, data in events:
            observer.on_event(name, data)
        observer.close()
        del observer, observed
        gc.collect()
        # the instrumentation's own objects only: earlier tests' exporters (pipelines, budget
        # trackers, servers on threads) may leave cycles of theirs for the same collection
        left = [type(o).__qualname__ for o in gc.garbage if type(o).__module__.startswith("aispend.instrumentation")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert left == []
