"""Groq (OpenAI-compatible): its streams carry the final usage in ``x_groq.usage``, not ``usage``.

The openai SDK pointed at a Groq-format fake is the realistic path (Groq documents it); the groq
SDK itself is tested too when it is installed.
"""

from __future__ import annotations

import openai
import pytest

MESSAGES = [{"role": "user", "content": "Explain low latency in one paragraph."}]
GROQ_KEY = "gsk_abcdefghijklmnopqrstuvwxyz0123456789WXYZ"


def client(h):
    return openai.OpenAI(base_url=h.fake.groq_base, api_key=GROQ_KEY, max_retries=0)


def test_stream_usage_from_x_groq(harness):
    stream = client(harness).chat.completions.create(model="llama-3.1-8b-instant", messages=MESSAGES, stream=True)
    chunks = list(stream)
    assert chunks[-1].model_extra["x_groq"]["usage"]["prompt_tokens"] == 18  # the wire format as Groq sends it
    attrs = harness.attrs()
    assert attrs["gen_ai.provider.name"] == "groq"
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (18, 73)
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert "aispend.usage.estimated" not in attrs


def test_stream_with_include_usage_counts_once(harness):
    stream = client(harness).chat.completions.create(
        model="llama-3.1-8b-instant", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert list(stream)[-1].usage.completion_tokens == 73
    attrs = harness.attrs()
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (18, 73)
    assert "aispend.usage.estimated" not in attrs


def test_json_usage(harness):
    harness.fake.set_usage("groq", prompt_tokens=55, completion_tokens=21)
    reply = client(harness).chat.completions.create(model="llama-3.1-8b-instant", messages=MESSAGES)
    attrs = harness.attrs()
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (55, 21)
    assert attrs["gen_ai.response.id"] == reply.id


def test_usage_in_the_last_choice_is_read():
    """Some OpenAI-compatible hosts attach the final usage to the last choice."""
    from aispend.instrumentation.adapters.openai import usage_in

    chunk = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "usage": {"prompt_tokens": 3}}]}
    assert usage_in(chunk) == {"prompt_tokens": 3}
    assert usage_in({"x_vendor": {"usage": {"prompt_tokens": 4}}}) == {"prompt_tokens": 4}
    assert usage_in({"usage": None, "choices": [{"delta": {"content": "x"}}]}) is None


def test_groq_sdk_stream(harness):
    groq = pytest.importorskip("groq", reason="the groq SDK is optional (pip install groq)")
    base = harness.fake.groq_base.removesuffix("/openai/v1")
    c = groq.Groq(base_url=base, api_key=GROQ_KEY, max_retries=0)
    list(c.chat.completions.create(model="llama-3.1-8b-instant", messages=MESSAGES, stream=True))
    attrs = harness.attrs()
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (18, 73)
    assert "aispend.usage.estimated" not in attrs
