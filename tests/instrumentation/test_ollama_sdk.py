"""The real ollama SDK (httpx) against the fake Ollama native API: chat, generate and embed, JSON
and NDJSON streams; the default address and OLLAMA_HOST need no configuration."""

from __future__ import annotations

import asyncio

import ollama
import pytest

from aispend.instrumentation.adapters import Router
from aispend.instrumentation.adapters.base import Observed
from aispend.instrumentation.adapters.ollama import OllamaAdapter
from aispend.instrumentation.config import InstrumentationConfig
from aispend.instrumentation.exchange import HttpRequest
from tests.instrumentation.conftest import instrument

MESSAGES = [{"role": "user", "content": "Hello, llama"}]
USAGE = {"gen_ai.usage.input_tokens": 26, "gen_ai.usage.output_tokens": 13}


def client(h):
    return ollama.Client(host=h.fake.ollama_base)


def check(attrs, **extra):
    expected = {"gen_ai.provider.name": "ollama", "gen_ai.request.model": "llama3.2", **USAGE, **extra}
    for key, value in expected.items():
        assert attrs.get(key) == value, (key, attrs.get(key))
    assert "aispend.usage.estimated" not in attrs


def test_chat(harness):
    response = client(harness).chat(model="llama3.2", messages=MESSAGES)
    assert response.eval_count == 13
    span = harness.span()
    assert span.name == "chat llama3.2"
    check(dict(span.attributes), **{"gen_ai.response.finish_reasons": ("stop",), "gen_ai.operation.name": "chat"})
    assert "gen_ai.request.stream" not in span.attributes


def test_chat_stream_final_done_chunk(harness):
    parts = list(client(harness).chat(model="llama3.2", messages=MESSAGES, stream=True))
    assert parts[-1].done and "".join(p.message.content for p in parts) == "Hello from the fake ollama server."
    check(harness.attrs(), **{"gen_ai.request.stream": True})


def test_generate_and_generate_stream(harness):
    assert client(harness).generate(model="llama3.2", prompt="hi").response
    assert list(client(harness).generate(model="llama3.2", prompt="hi", stream=True))[-1].done
    plain, streamed = harness.spans()
    check(dict(plain.attributes), **{"gen_ai.operation.name": "text_completion"})
    check(dict(streamed.attributes), **{"gen_ai.operation.name": "text_completion", "gen_ai.request.stream": True})


def test_chat_async_stream(harness):
    async def call():
        stream = await ollama.AsyncClient(host=harness.fake.ollama_base).chat(
            model="llama3.2", messages=MESSAGES, stream=True
        )
        return [part async for part in stream]

    assert asyncio.run(call())[-1].done
    check(harness.attrs(), **{"gen_ai.request.stream": True})


def test_embed(harness):
    response = client(harness).embed(model="nomic-embed-text", input=["a", "b"])
    assert len(response.embeddings) == 2
    attrs = harness.attrs()
    assert attrs["gen_ai.operation.name"] == "embeddings" and attrs["gen_ai.usage.input_tokens"] == 26
    assert "gen_ai.usage.output_tokens" not in attrs and "aispend.usage.estimated" not in attrs


def test_abandoned_stream_is_estimated(harness):
    harness.fake.stream_chunks = 8
    stream = client(harness).chat(model="llama3.2", messages=MESSAGES, stream=True)
    next(stream)
    stream.close()
    attrs = harness.attrs()
    assert attrs["aispend.usage.estimated"] is True and attrs["gen_ai.usage.output_tokens"] >= 1


def test_model_not_found(harness):
    with pytest.raises(ollama.ResponseError):
        client(harness).chat(model="missing-model", messages=MESSAGES)
    attrs = harness.attrs()
    assert attrs["error.type"] == "404" and "gen_ai.usage.input_tokens" not in attrs


def test_ollama_host_is_honoured_without_configuration(fake, monkeypatch):
    """``OLLAMA_HOST`` (what the ollama client itself reads) is all aispend needs."""
    fake.reset()
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{fake.port}")
    h = instrument(fake, provider_urls="openai=http://127.0.0.1:1/v1")  # nothing about ollama
    try:
        ollama.Client().chat(model="llama3.2", messages=MESSAGES)  # the client reads OLLAMA_HOST too
        check(h.attrs())
    finally:
        h.instrumentor.uninstrument()


def test_default_address_routes_without_configuration():
    router = Router(InstrumentationConfig.load({}).provider_urls)
    for host in ("127.0.0.1", "localhost"):
        request = HttpRequest("POST", "http", host, 11434, "/api/chat")
        assert isinstance(router.route(request), OllamaAdapter)
    assert router.route(HttpRequest("POST", "http", "127.0.0.1", 8080, "/api/chat")) is None


@pytest.mark.parametrize("stream", [False, True])
def test_openai_compatible_endpoint_is_ollama_too(harness, stream):
    """The openai SDK pointed at Ollama's /v1: provider ollama (priced $0), OpenAI wire format."""
    import openai

    client = openai.OpenAI(base_url=harness.fake.ollama_base + "/v1", api_key="ollama", max_retries=0)
    result = client.chat.completions.create(
        model="llama3.2",
        messages=MESSAGES,
        stream=stream,
        **({"stream_options": {"include_usage": True}} if stream else {}),
    )
    if stream:
        list(result)
    attrs = harness.attrs()
    assert attrs["gen_ai.provider.name"] == "ollama" and attrs["gen_ai.operation.name"] == "chat"
    usage = harness.fake.usage("openai")
    assert attrs["gen_ai.usage.input_tokens"] == usage["prompt_tokens"] and "aispend.usage.estimated" not in attrs


def test_cached_prompt_counts_zero_new_input():
    """Ollama omits prompt_eval_count when the whole prompt came from its cache."""
    adapter = OllamaAdapter()
    request = HttpRequest("POST", "http", "127.0.0.1", 11434, "/api/chat", body=b'{"model":"llama3.2"}')
    observed = Observed()
    stream = adapter.stream_observer(adapter.request_attributes(request), observed)
    stream.on_event("", '{"model":"llama3.2","message":{"role":"assistant","content":"Hi"},"done":false}')
    stream.on_event("", '{"model":"llama3.2","message":{"content":""},"done":true,"done_reason":"stop","eval_count":2}')
    stream.close()
    assert observed.usage_reported
    assert (
        observed.attributes["gen_ai.usage.input_tokens"] == 0 and observed.attributes["gen_ai.usage.output_tokens"] == 2
    )
