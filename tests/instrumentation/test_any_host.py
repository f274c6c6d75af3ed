"""SDK traffic to a host aispend does not know, with no ``AISPEND_PROVIDER_URLS``: the OpenAI and
Anthropic SDKs name themselves in their User-Agent, so their calls become spans named for the host.
Any other client's traffic to such a host is not read at all."""

from __future__ import annotations

import asyncio

import anthropic
import httpx
import openai
import pytest
import requests

from tests.instrumentation.conftest import ANTHROPIC_KEY, OPENAI_KEY, instrument

MESSAGES = [{"role": "user", "content": "Hello"}]


def unconfigured(fake, **kwargs):
    fake.reset()
    return instrument(fake, provider_urls="", **kwargs)


def ours(h):
    return [dict(s.attributes) for s in h.spans() if "aispend.service.kind" in s.attributes]


def test_openai_sdk_to_an_unknown_host(fake):
    h = unconfigured(fake)
    try:
        c = openai.OpenAI(base_url=fake.openai_base, api_key=OPENAI_KEY, max_retries=0)
        c.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        list(
            c.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
        )
        c.embeddings.create(model="text-embedding-3-small", input="hi")
        spans = ours(h)
        assert [s["gen_ai.operation.name"] for s in spans] == ["chat", "chat", "embeddings"]
        for attrs in spans:
            assert attrs["gen_ai.provider.name"] == "127.0.0.1"  # named for the host
            assert attrs["server.port"] == fake.port
            assert "aispend.usage.estimated" not in attrs
        assert (spans[0]["gen_ai.usage.input_tokens"], spans[0]["gen_ai.usage.output_tokens"]) == (11, 7)
        assert spans[1]["gen_ai.usage.output_tokens"] == 7
        assert spans[0]["aispend.key"] == "prod-backend"
    finally:
        h.instrumentor.uninstrument()


def test_anthropic_and_async_openai_sdks_and_a_name_override(fake):
    h = unconfigured(fake, provider_names=f"127.0.0.1:{fake.port}=corp-gateway")
    try:
        an = anthropic.Anthropic(base_url=fake.anthropic_base, api_key=ANTHROPIC_KEY, max_retries=0)
        an.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=MESSAGES)

        async def call():
            c = openai.AsyncOpenAI(base_url=fake.openai_base, api_key=OPENAI_KEY, max_retries=0)
            return await c.chat.completions.create(model="gpt-4o", messages=MESSAGES)

        asyncio.run(call())
        spans = ours(h)
        assert {s["gen_ai.provider.name"] for s in spans} == {"corp-gateway"}
        by_op = {s["gen_ai.request.model"]: s for s in spans}
        assert by_op["claude-haiku-4-5"]["gen_ai.usage.input_tokens"] == 17  # Anthropic's wire format
        assert by_op["gpt-4o"]["gen_ai.usage.input_tokens"] == 11
    finally:
        h.instrumentor.uninstrument()


def test_azure_sdk_to_an_unknown_host_reads_the_deployment(fake):
    h = unconfigured(fake, provider_names={"127.0.0.1": "corp-apim"})
    try:
        c = openai.AzureOpenAI(
            azure_endpoint=fake.azure_base, api_key="azure-0000", api_version="2024-10-21", max_retries=0
        )
        c.chat.completions.create(model="prod-gpt4o", messages=MESSAGES)
        (attrs,) = ours(h)
        assert attrs["gen_ai.provider.name"] == "corp-apim"
        assert attrs["gen_ai.request.model"] == "prod-gpt4o"
    finally:
        h.instrumentor.uninstrument()


def test_other_clients_to_unknown_hosts_are_not_read(fake):
    h = unconfigured(fake)
    try:
        body = {"model": "gpt-4o", "messages": MESSAGES}
        httpx.post(f"{fake.openai_base}/chat/completions", json=body)
        requests.post(f"{fake.openai_base}/chat/completions", json=body, timeout=10)
        # even a look-alike that is not one of the two SDKs
        httpx.post(f"{fake.openai_base}/chat/completions", json=body, headers={"user-agent": "MyOpenAIClone/1.0"})
        assert ours(h) == []
        # the SDK's calls that are not AI calls (listing models) are not spans either
        with pytest.raises(openai.NotFoundError):  # the fake serves no model list: a 404, still no span
            openai.OpenAI(base_url=fake.openai_base, api_key=OPENAI_KEY, max_retries=0).models.list()
        assert ours(h) == []
    finally:
        h.instrumentor.uninstrument()


def test_user_agents():
    from aispend.instrumentation.adapters import sdk_wire_format

    assert sdk_wire_format("OpenAI/Python 3.57.0") == "openai"
    assert sdk_wire_format("AsyncOpenAI/Python 3.57.0") == "openai"
    assert sdk_wire_format("OpenAI/JS 5.1.0") == "openai"
    assert sdk_wire_format("AsyncAzureOpenAI/Python 3.57.0") == "azure"
    assert sdk_wire_format("Anthropic/Python 2.14.0") == "anthropic"
    assert sdk_wire_format("python-httpx/0.28.1") is None
    assert sdk_wire_format(None) is None


def test_exporter_prices_an_unknown_provider_by_model():
    """ "priced by model where known, else counted unpriced": the price engine's fallback."""
    from aispend.pricing.engine import PriceEngine

    engine = PriceEngine()
    assert engine.resolve("corp-gateway", "gpt-4o").library is not None
    assert engine.resolve("corp-gateway", "my-private-finetune-7b").library is None
