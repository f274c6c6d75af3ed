"""Streams the app stops reading early (break after a few chunks, then close), with the real SDKs.

A span whose usage is not the provider's final count is marked ``aispend.usage.estimated``, and
its estimate covers what the provider bills for what was sent and generated: the whole prompt
(Anthropic's own count from ``message_start`` when it came; else estimated from the request)
and the output seen so far.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
from collections.abc import Awaitable, Callable

import anthropic
import httpx
import httpx2
import openai
import pytest
from google import genai
from google.genai import types

from tests.fakes import payloads
from tests.instrumentation.conftest import ANTHROPIC_KEY, OPENAI_KEY

PROMPT = "Tell me a long story about a lighthouse keeper, please."  # 55 characters
GEMINI_KEY = "AIzaSyA-fake-gemini-key-0123456789abcd"
MESSAGES = [{"role": "user", "content": "Hi"}]
GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}


@pytest.fixture
def slow_stream(harness):
    """Ten pieces, 50 ms apart: the app's break comes long before the provider's last event."""
    harness.fake.stream_chunks = 10
    harness.fake.chunk_delay = 0.05
    return harness


def ours(h):
    spans = [s for s in h.spans() if s.attributes.get("aispend.service.kind")]
    assert len(spans) == 1, [s.name for s in h.spans()]
    return dict(spans[0].attributes)


def piece_tokens(provider: str, pieces: int) -> int:
    """chars/4 of the first ``pieces`` of the fake's reply (the estimate of non-OpenAI output)."""
    text = "".join(payloads.split_text(payloads.reply_text(provider), 10)[:pieces])
    return math.ceil(len(text) / 4)


def test_openai_stream_abandoned(slow_stream):
    c = openai.OpenAI(base_url=slow_stream.fake.openai_base, api_key=OPENAI_KEY, max_retries=0)
    stream = c.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for i, _ in enumerate(stream):
        if i == 2:
            break
    stream.close()
    attrs = ours(slow_stream)
    assert attrs["aispend.usage.estimated"] is True
    assert attrs["gen_ai.usage.input_tokens"] > 6  # the prompt, counted from the request
    full = len(payloads.reply_text("openai"))
    assert 0 < attrs["gen_ai.usage.output_tokens"] < full / 2  # only what was generated before the close


def test_anthropic_stream_abandoned_keeps_message_start_input(slow_stream):
    c = anthropic.Anthropic(base_url=slow_stream.fake.anthropic_base, api_key=ANTHROPIC_KEY, max_retries=0)
    stream = c.messages.create(
        model="claude-haiku-4-5", max_tokens=500, messages=[{"role": "user", "content": PROMPT}], stream=True
    )
    seen = []
    for event in stream:
        if event.type == "content_block_delta":
            seen.append(event.delta.text)
            if len(seen) == 2:
                break
    stream.close()
    attrs = ours(slow_stream)
    assert attrs["aispend.usage.estimated"] is True
    assert attrs["aispend.usage.estimator"] == "chars"
    # message_start's counts are Anthropic's own and final: 9 + 3 cache read + 5 cache write
    assert attrs["gen_ai.usage.input_tokens"] == 17
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 3
    assert attrs["gen_ai.usage.cache_creation.input_tokens"] == 5
    # output: message_start's placeholder 1 is not a count; the text that reached the client is
    # (the client may have read one event more than the app took)
    assert attrs["gen_ai.usage.output_tokens"] in (piece_tokens("anthropic", 2), piece_tokens("anthropic", 3))
    assert attrs["gen_ai.usage.output_tokens"] > 1


def test_anthropic_stream_read_to_the_end_is_exact(harness):
    c = anthropic.Anthropic(base_url=harness.fake.anthropic_base, api_key=ANTHROPIC_KEY, max_retries=0)
    list(
        c.messages.create(
            model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "Hi"}], stream=True
        )
    )
    attrs = ours(harness)
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (17, 6)
    assert "aispend.usage.estimated" not in attrs


def test_gemini_stream_abandoned_with_google_genai(slow_stream):

    c = genai.Client(api_key=GEMINI_KEY, http_options=types.HttpOptions(base_url=slow_stream.fake.gemini_base))
    stream = c.models.generate_content_stream(model="gemini-2.0-flash", contents=PROMPT)
    next(iter(stream))
    stream.close()
    del stream
    gc.collect()
    attrs = ours(slow_stream)
    assert attrs["gen_ai.provider.name"] == "gcp.gemini"
    assert attrs["aispend.usage.estimated"] is True
    # Gemini's running totals: the prompt's count is already exact (12); the output is at least
    # the running total seen (0 after one of ten pieces), else the text seen
    assert attrs["gen_ai.usage.input_tokens"] == 12
    assert 0 < attrs["gen_ai.usage.output_tokens"] < 8


def test_gemini_stream_read_to_the_end_with_google_genai(harness):

    c = genai.Client(api_key=GEMINI_KEY, http_options=types.HttpOptions(base_url=harness.fake.gemini_base))
    chunks = list(c.models.generate_content_stream(model="gemini-2.0-flash", contents=PROMPT))
    assert chunks[-1].usage_metadata.prompt_token_count == 12
    attrs = ours(harness)
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (12, 8)
    assert "aispend.usage.estimated" not in attrs


def vertex_url(h) -> str:
    return (
        f"{h.fake.vertex_base}/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash"
        ":streamGenerateContent?alt=sse"
    )


def test_vertex_stream_abandoned_is_estimated_not_zero(slow_stream):
    """Vertex's chunks before the last carry ``usageMetadata: {trafficType}`` only: not usage."""
    with httpx.Client() as c, c.stream("POST", vertex_url(slow_stream), json=GEMINI_BODY) as r:
        lines = r.iter_lines()
        while "trafficType" not in next(lines):
            pass
    attrs = ours(slow_stream)
    assert attrs["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert attrs["aispend.usage.estimated"] is True
    assert attrs["gen_ai.usage.input_tokens"] == math.ceil(len(PROMPT) / 4)  # the whole prompt is billed
    assert attrs["gen_ai.usage.output_tokens"] >= piece_tokens("gemini", 1) > 0


def test_vertex_stream_abandoned_estimate_counts_the_tools_sent(slow_stream):
    """Tool declarations are billed input: an estimate that left them out would count 20
    declarations as nothing."""
    declaration = {
        "name": "lookup",
        "description": "Look a record up in the catalogue by its id.",
        "parameters": {"type": "OBJECT", "properties": {"id": {"type": "STRING"}}},
    }
    tools = [{"functionDeclarations": [{**declaration, "name": f"lookup_{i}"} for i in range(20)]}]
    with httpx.Client() as c, c.stream("POST", vertex_url(slow_stream), json={**GEMINI_BODY, "tools": tools}) as r:
        lines = r.iter_lines()
        while "trafficType" not in next(lines):
            pass
    attrs = ours(slow_stream)
    assert attrs["aispend.usage.estimated"] is True
    sent = len(PROMPT) + len(json.dumps(tools, separators=(",", ":")))
    assert attrs["gen_ai.usage.input_tokens"] == math.ceil(sent / 4) > 400


def test_vertex_stream_read_to_the_end_is_exact(harness):
    with httpx.Client() as c, c.stream("POST", vertex_url(harness), json=GEMINI_BODY) as r:
        body = r.read()
    assert body.count(b"trafficType") == harness.fake.stream_chunks
    attrs = ours(harness)
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (12, 8)
    assert "aispend.usage.estimated" not in attrs


# -- streams that end in an exception: cancelled, timed out, an error event -----------------------


def cancel_once(read: Callable[[list[object]], Awaitable[None]], items: int) -> list[object]:
    """Run ``read(seen)`` as an asyncio task and cancel it once it has put ``items`` in ``seen``,
    as an async app does whose client went away; the items it had read."""

    async def main() -> list[object]:
        seen: list[object] = []
        task = asyncio.create_task(read(seen))
        while len(seen) < items:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return seen

    seen = asyncio.run(main())
    gc.collect()
    return seen


def test_anthropic_stream_cancelled_by_the_app_is_estimated(slow_stream):
    """An async app stops reading by cancelling its task (a client that went away): the
    exception is the call's ``error.type``, and the usage is estimated, not message_start's
    placeholder reported as exact."""

    async def read(seen: list[object]) -> None:
        async with anthropic.AsyncAnthropic(
            base_url=slow_stream.fake.anthropic_base, api_key=ANTHROPIC_KEY, max_retries=0
        ) as c:
            stream = await c.messages.create(
                model="claude-haiku-4-5", max_tokens=500, messages=[{"role": "user", "content": PROMPT}], stream=True
            )
            async for event in stream:
                if event.type == "content_block_delta":
                    seen.append(event.delta.text)

    seen = cancel_once(read, 2)
    attrs = ours(slow_stream)
    assert attrs["error.type"] == "CancelledError"
    assert attrs["aispend.usage.estimated"] is True
    assert attrs["gen_ai.usage.input_tokens"] == 17  # message_start's own count
    assert attrs["gen_ai.usage.output_tokens"] >= math.ceil(len("".join(map(str, seen))) / 4) > 1


def test_openai_stream_cancelled_by_the_app_is_estimated(slow_stream):
    async def read(seen: list[object]) -> None:
        async with openai.AsyncOpenAI(base_url=slow_stream.fake.openai_base, api_key=OPENAI_KEY, max_retries=0) as c:
            stream = await c.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": PROMPT}],
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                seen.append(chunk)

    cancel_once(read, 3)
    attrs = ours(slow_stream)
    assert attrs["error.type"] == "CancelledError"
    assert attrs["aispend.usage.estimated"] is True
    assert attrs["gen_ai.usage.input_tokens"] > 6  # the prompt, counted from the request: it is billed
    assert attrs["gen_ai.usage.output_tokens"] > 0


def test_stream_read_timeout_is_an_error_with_estimated_usage(harness):
    """The stream stalls after its first events and the read times out: an error, and what the
    provider had counted (message_start) is kept as an estimate's input, not reported as exact."""
    harness.fake.stream_chunks = 5
    harness.fake.chunk_delay = 0.3
    c = anthropic.Anthropic(
        base_url=harness.fake.anthropic_base,
        api_key=ANTHROPIC_KEY,
        max_retries=0,
        timeout=anthropic.Timeout(5.0, read=0.15),
    )
    stream = c.messages.create(
        model="claude-haiku-4-5", max_tokens=500, messages=[{"role": "user", "content": PROMPT}], stream=True
    )
    with pytest.raises(httpx2.ReadTimeout):  # raised as is mid-stream, not as the SDK's APITimeoutError
        for _ in stream:
            pass
    attrs = ours(harness)
    assert attrs["error.type"] == "ReadTimeout"
    assert attrs["aispend.usage.estimated"] is True
    assert attrs["gen_ai.usage.input_tokens"] == 17


def test_anthropic_error_event_after_message_start_is_not_exact(harness):
    """Anthropic can end a stream with an ``error`` event (``overloaded_error``) after
    ``message_start``: the span is an error, and message_start's counts (its output a
    placeholder) are not reported as the provider's final ones."""
    harness.fake.anthropic_stream_error = "overloaded_error"
    c = anthropic.Anthropic(base_url=harness.fake.anthropic_base, api_key=ANTHROPIC_KEY, max_retries=0)
    stream = c.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=MESSAGES, stream=True)
    with pytest.raises(anthropic.APIStatusError):
        list(stream)
    attrs = ours(harness)
    assert attrs["error.type"]  # the SDK's exception for it, or the event's type
    assert attrs["aispend.usage.estimated"] is True
    assert attrs["gen_ai.usage.input_tokens"] == 17  # message_start's own count: Anthropic counted the prompt


# -- OpenAI-compatible hosts that send the running usage in every chunk (vLLM) ------------------

CONTINUOUS = {"include_usage": True, "continuous_usage_stats": True}


def test_running_usage_in_every_chunk_read_to_the_end_is_exact(harness):
    c = openai.OpenAI(base_url=harness.fake.openai_base, api_key=OPENAI_KEY, max_retries=0)
    chunks = list(
        c.chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,
            stream=True,
            stream_options=CONTINUOUS,  # type: ignore[typeddict-unknown-key]
        )
    )
    assert chunks[1].usage is not None and chunks[1].usage.completion_tokens == 1  # the wire format: a running total
    attrs = ours(harness)
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (11, 7)
    assert "aispend.usage.estimated" not in attrs


def test_running_usage_in_every_chunk_abandoned_is_estimated(slow_stream):
    c = openai.OpenAI(base_url=slow_stream.fake.openai_base, api_key=OPENAI_KEY, max_retries=0)
    stream = c.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        stream=True,
        stream_options=CONTINUOUS,  # type: ignore[typeddict-unknown-key]
    )
    for i, chunk in enumerate(stream):
        if i == 3:
            running = chunk.usage.completion_tokens
            break
    stream.close()
    attrs = ours(slow_stream)
    assert attrs["aispend.usage.estimated"] is True
    assert attrs["gen_ai.usage.input_tokens"] == 11  # the host's own count of the prompt
    assert attrs["gen_ai.usage.output_tokens"] >= running > 0
