"""The real anthropic SDK (httpx2) against the fake Anthropic server: usage in convention form."""

from __future__ import annotations

import asyncio

import anthropic
import pytest

from tests.instrumentation.conftest import ANTHROPIC_KEY, provider_urls

MESSAGES = [{"role": "user", "content": "Hello, Claude"}]
EXPECTED = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "anthropic",
    "gen_ai.request.model": "claude-haiku-4-5",
    "gen_ai.response.model": "claude-haiku-4-5-20251001",
    # Anthropic's input_tokens (9) exclude the cache: the span carries 9 + 3 + 5
    "gen_ai.usage.input_tokens": 17,
    "gen_ai.usage.output_tokens": 6,
    "gen_ai.usage.cache_read.input_tokens": 3,
    "gen_ai.usage.cache_creation.input_tokens": 5,
    "gen_ai.usage.cache_write.input_tokens": 5,
    "gen_ai.response.finish_reasons": ("end_turn",),
    "aispend.key": "sk-ant-…ZZZZ",
}


def client(h):
    return anthropic.Anthropic(base_url=h.fake.anthropic_base, api_key=ANTHROPIC_KEY, max_retries=0)


def aclient(h):
    return anthropic.AsyncAnthropic(base_url=h.fake.anthropic_base, api_key=ANTHROPIC_KEY, max_retries=0)


def ours(h):
    """aispend's span (the SDK >= 2.0 may add its own anthropic.messages.create span)."""
    spans = [s for s in h.spans() if s.attributes.get("aispend.service.kind")]
    assert len(spans) == 1, [s.name for s in h.spans()]
    return spans[0]


def check(span, **extra):
    attrs = dict(span.attributes)
    for key, value in {**EXPECTED, **extra}.items():
        assert attrs.get(key) == value, (key, attrs.get(key))
    assert span.name == "chat claude-haiku-4-5"


def test_messages_sync(harness):
    message = client(harness).messages.create(model="claude-haiku-4-5", max_tokens=100, messages=MESSAGES)
    assert message.usage.input_tokens == 9
    check(ours(harness), **{"gen_ai.response.id": message.id})


def test_messages_async(harness):
    async def call():
        return await aclient(harness).messages.create(model="claude-haiku-4-5", max_tokens=100, messages=MESSAGES)

    message = asyncio.run(call())
    check(ours(harness), **{"gen_ai.response.id": message.id})


def test_stream_helper(harness):
    with client(harness).messages.stream(model="claude-haiku-4-5", max_tokens=100, messages=MESSAGES) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text and final.usage.output_tokens == 6
    check(ours(harness), **{"gen_ai.request.stream": True, "gen_ai.response.id": final.id})
    assert "aispend.usage.estimated" not in ours(harness).attributes


def test_create_stream_true_async(harness):
    async def call():
        stream = await aclient(harness).messages.create(
            model="claude-haiku-4-5", max_tokens=100, messages=MESSAGES, stream=True
        )
        return [event.type async for event in stream]

    events = asyncio.run(call())
    assert events[0] == "message_start" and events[-1] == "message_stop"
    check(ours(harness), **{"gen_ai.request.stream": True})


def test_rate_limit_error(harness):
    harness.fake.fault = "http_429"
    with pytest.raises(anthropic.RateLimitError):
        client(harness).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
    span = ours(harness)
    assert span.attributes["error.type"] == "rate_limit_error" and span.attributes["http.response.status_code"] == 429


def _consume_truncated(h) -> BaseException:
    stream = client(h).messages.stream(model="claude-haiku-4-5", max_tokens=100, messages=MESSAGES)
    with pytest.raises(Exception) as err, stream as events:
        for _ in events.text_stream:
            pass
    return err.value


def test_truncated_stream_raises_what_the_sdk_raises_and_ends_the_span(fake, harness):
    harness.instrumentor.uninstrument()
    fake.fault = "truncate"
    bare = _consume_truncated(harness)  # what the app sees without aispend
    harness.instrumentor.instrument(tracer_provider=harness.provider, provider_urls=provider_urls(fake))
    with_aispend = _consume_truncated(harness)
    assert type(with_aispend) is type(bare) and str(with_aispend) == str(bare)
    span = ours(harness)
    assert span.end_time is not None and span.status.status_code.name == "ERROR"
    assert span.attributes["error.type"] == type(bare).__qualname__
    assert span.attributes["gen_ai.usage.input_tokens"] == 17  # message_start arrived before the cut
