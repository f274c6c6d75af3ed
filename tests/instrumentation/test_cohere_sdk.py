"""The real cohere SDK (httpx) against the fake Cohere v2 API: chat, chat_stream (SSE) and embed;
billed units are the usage (what Cohere bills), raw tokens kept beside them."""

from __future__ import annotations

import asyncio

import cohere
import pytest

from aispend.instrumentation.adapters.base import Observed
from aispend.instrumentation.adapters.cohere import CohereAdapter
from aispend.instrumentation.exchange import HttpRequest
from tests.instrumentation.conftest import provider_urls

KEY = "co-fake-0123456789abcdefghijWXYZ"
MESSAGES = [{"role": "user", "content": "Hello, Command"}]
EXPECTED = {
    "gen_ai.provider.name": "cohere",
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "command-a-03-2025",
    "gen_ai.usage.input_tokens": 5,  # billed_units, not the 71 tokens the model saw
    "gen_ai.usage.output_tokens": 9,
    "cohere.usage.tokens.input": 71,
    "cohere.usage.tokens.output": 9,
    "gen_ai.response.finish_reasons": ("COMPLETE",),
    "aispend.key": "…WXYZ",  # a fingerprint, never the key
}


def client(h):
    return cohere.ClientV2(api_key=KEY, base_url=h.fake.cohere_base)


def check(attrs, **extra):
    for key, value in {**EXPECTED, **extra}.items():
        assert attrs.get(key) == value, (key, attrs.get(key))
    assert "aispend.usage.estimated" not in attrs


def test_chat(harness):
    response = client(harness).chat(model="command-a-03-2025", messages=MESSAGES)
    assert response.usage.billed_units.input_tokens == 5
    span = harness.span()
    assert span.name == "chat command-a-03-2025"
    check(dict(span.attributes), **{"gen_ai.response.id": response.id})


def test_chat_async(harness):
    async def call():
        return await cohere.AsyncClientV2(api_key=KEY, base_url=harness.fake.cohere_base).chat(
            model="command-a-03-2025", messages=MESSAGES
        )

    response = asyncio.run(call())
    check(harness.attrs(), **{"gen_ai.response.id": response.id})


def test_chat_stream_usage_from_message_end(harness):
    events = list(client(harness).chat_stream(model="command-a-03-2025", messages=MESSAGES))
    assert events[0].type == "message-start" and events[-1].type == "message-end"
    check(harness.attrs(), **{"gen_ai.request.stream": True, "gen_ai.response.id": events[0].id})


def test_chat_stream_abandoned_is_estimated(harness):
    harness.fake.stream_chunks = 8
    for event in client(harness).chat_stream(model="command-a-03-2025", messages=MESSAGES):
        if event.type == "content-delta":
            break  # the SDK's generator closes the response when it is dropped
    attrs = harness.attrs()
    assert attrs["aispend.usage.estimated"] is True and attrs["gen_ai.usage.output_tokens"] >= 1


def test_chat_stream_same_events_with_and_without_aispend(harness):
    with_aispend = [e.model_dump() for e in client(harness).chat_stream(model="command-a-03-2025", messages=MESSAGES)]
    harness.instrumentor.uninstrument()
    bare = [e.model_dump() for e in client(harness).chat_stream(model="command-a-03-2025", messages=MESSAGES)]
    harness.instrumentor.instrument(tracer_provider=harness.provider, provider_urls=provider_urls(harness.fake))
    assert [{k: v for k, v in e.items() if k != "id"} for e in with_aispend] == [
        {k: v for k, v in e.items() if k != "id"} for e in bare
    ]


def test_embed_billed_input_tokens(harness):
    response = client(harness).embed(
        model="embed-v4.0", texts=["a", "b"], input_type="search_document", embedding_types=["float"]
    )
    assert len(response.embeddings.float_) == 2
    attrs = harness.attrs()
    assert attrs["gen_ai.operation.name"] == "embeddings" and attrs["gen_ai.usage.input_tokens"] == 5
    assert "gen_ai.usage.output_tokens" not in attrs and "aispend.usage.estimated" not in attrs


def test_rate_limited(harness):
    harness.fake.fault = "http_429"
    with pytest.raises(cohere.errors.TooManyRequestsError):
        client(harness).chat(model="command-a-03-2025", messages=MESSAGES, request_options={"max_retries": 0})
    attrs = harness.attrs()
    assert attrs["error.type"] == "429" and "gen_ai.usage.input_tokens" not in attrs


def test_v1_chat_and_its_json_lines_stream(harness):
    """The v1 client: usage in ``meta``; its stream is JSON lines ending in stream-end."""
    v1 = cohere.Client(api_key=KEY, base_url=harness.fake.cohere_base)
    assert v1.chat(message="hi", model="command-r-plus-08-2024").meta.billed_units.input_tokens == 5
    events = list(v1.chat_stream(message="hi", model="command-r-plus-08-2024"))
    assert events[-1].event_type == "stream-end"
    plain, streamed = harness.spans()
    expected = {**EXPECTED, "gen_ai.request.model": "command-r-plus-08-2024"}
    for span in (plain, streamed):
        attrs = dict(span.attributes)
        for key, value in expected.items():
            assert attrs.get(key) == value, (key, attrs.get(key))
        assert "aispend.usage.estimated" not in attrs
    assert streamed.attributes["gen_ai.request.stream"] is True


def test_tokens_are_the_usage_only_without_billed_units():
    adapter = CohereAdapter()
    request = HttpRequest("POST", "https", "api.cohere.com", 443, "/v2/chat", body=b'{"model": "command-r"}')
    start = adapter.request_attributes(request)
    observed = Observed()
    stream = adapter.stream_observer(start, observed)
    stream.on_event(
        "message-end", '{"type":"message-end","delta":{"usage":{"tokens":{"input_tokens":4,"output_tokens":2}}}}'
    )
    stream.close()
    assert observed.usage_reported and observed.attributes["gen_ai.usage.input_tokens"] == 4


def test_v1_json_lines_stream():
    """v1's chat stream is JSON lines ending in stream-end, whose response carries meta.billed_units."""
    adapter = CohereAdapter()
    request = HttpRequest(
        "POST", "https", "api.cohere.com", 443, "/v1/chat", body=b'{"model":"command-r","stream":true}'
    )
    observed = Observed()
    stream = adapter.stream_observer(adapter.request_attributes(request), observed)
    stream.on_event("", '{"is_finished":false,"event_type":"text-generation","text":"Hi"}')
    end = '{"is_finished":true,"event_type":"stream-end","finish_reason":"COMPLETE","response":{"generation_id":"g1",'
    end += (
        '"meta":{"billed_units":{"input_tokens":3,"output_tokens":1},"tokens":{"input_tokens":60,"output_tokens":1}}}}'
    )
    stream.on_event("", end)
    stream.close()
    attrs = observed.attributes
    assert attrs["gen_ai.usage.input_tokens"] == 3 and attrs["cohere.usage.tokens.input"] == 60
    assert attrs["gen_ai.response.id"] == "g1" and attrs["gen_ai.response.finish_reasons"] == ("COMPLETE",)
