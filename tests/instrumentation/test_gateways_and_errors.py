"""Gateways serving several providers under one host:port, and HTTP 200 answers that are errors."""

from __future__ import annotations

import contextlib
import json

import anthropic
import httpx
import openai

from aispend.instrumentation.adapters.base import CallStart, Observed
from aispend.instrumentation.adapters.openai import OpenAIAdapter
from aispend.instrumentation.exchange import HttpResponse
from tests.instrumentation.conftest import ANTHROPIC_KEY, OPENAI_KEY, instrument

MESSAGES = [{"role": "user", "content": "Hello"}]


def test_gateway_with_two_providers_under_one_base(fake):
    """``openai=http://gw/v1,anthropic=http://gw``: the longer prefix's adapter does not know
    ``/v1/messages``, so the Anthropic call falls through to the next route."""
    fake.reset()
    urls = f"openai={fake.gateway_base}/v1,anthropic={fake.gateway_base}"
    h = instrument(fake, provider_urls=urls)
    try:
        oa = openai.OpenAI(base_url=f"{fake.gateway_base}/v1", api_key=OPENAI_KEY, max_retries=0)
        oa.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        an = anthropic.Anthropic(base_url=fake.gateway_base, api_key=ANTHROPIC_KEY, max_retries=0)
        an.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=MESSAGES)
        spans = {
            s.attributes["gen_ai.provider.name"]: dict(s.attributes)
            for s in h.spans()
            if "aispend.service.kind" in s.attributes
        }
        assert set(spans) == {"openai", "anthropic"}
        assert spans["openai"]["gen_ai.usage.input_tokens"] == 11
        assert spans["anthropic"]["gen_ai.usage.input_tokens"] == 17
        assert "aispend.usage.estimated" not in spans["anthropic"]
    finally:
        h.instrumentor.uninstrument()


def test_gateway_requests_no_adapter_knows_get_no_span(fake):
    """Every route of the gateway is tried and none claims the request (nor the OpenAI SDK's
    User-Agent, the last resort): the SDK's files API and a plain request make no span, while a
    chat completion through the same gateway does."""
    fake.reset()
    h = instrument(fake, provider_urls=f"openai={fake.gateway_base}/v1,anthropic={fake.gateway_base}")
    try:
        oa = openai.OpenAI(base_url=f"{fake.gateway_base}/v1", api_key=OPENAI_KEY, max_retries=0)
        with contextlib.suppress(openai.APIStatusError):  # the fake has no files API; the call is made
            oa.files.list()
        httpx.post(f"{fake.gateway_base}/v1/files", json={})
        assert [r.path for r in fake.requests][-2:] == ["/gateway/v1/files", "/gateway/v1/files"]
        assert h.spans() == []
        oa.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert [s.attributes["gen_ai.provider.name"] for s in h.spans()] == ["openai"]
    finally:
        h.instrumentor.uninstrument()


def test_azure_content_filter_with_http_200_is_an_error(harness):
    harness.fake.fault = "error_200"
    c = openai.AzureOpenAI(
        azure_endpoint=harness.fake.azure_base,
        api_key="azure-key-0000000000000000",
        api_version="2024-10-21",
        max_retries=0,
    )
    c.chat.completions.create(model="prod-gpt4o", messages=MESSAGES)  # the SDK returns the odd body as is
    span = harness.span()
    attrs = dict(span.attributes)
    assert attrs["http.response.status_code"] == 200
    assert attrs["error.type"] == "content_filter"
    assert span.status.status_code.name == "ERROR"
    assert "aispend.usage.estimated" not in attrs and "gen_ai.usage.input_tokens" not in attrs


def test_openai_compatible_host_error_object_with_http_200(harness):
    harness.fake.fault = "error_200"
    c = openai.OpenAI(base_url=harness.fake.openai_base, api_key=OPENAI_KEY, max_retries=0)
    c.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    attrs = harness.attrs()
    assert attrs["error.type"] == "invalid_request_error"
    assert "gen_ai.usage.output_tokens" not in attrs


def test_gemini_error_object_with_http_200(harness):
    harness.fake.fault = "error_200"
    r = httpx.post(
        f"{harness.fake.gemini_base}/v1beta/models/gemini-2.0-flash:generateContent",
        json={"contents": [{"parts": [{"text": "hi"}]}]},
        headers={"x-goog-api-key": "AIzaSy-test-0000"},
    )
    assert r.status_code == 200
    assert harness.attrs()["error.type"] == "INVALID_ARGUMENT"


def test_error_in_ok_body_shapes():
    from aispend.instrumentation.adapters.base import error_in_ok_body

    assert error_in_ok_body({"error": {"code": "content_filter"}}, "choices") == "content_filter"
    # error.type is low-cardinality: an identifier-like string is kept, a sentence is not
    assert error_in_ok_body({"error": "model_overloaded"}, "choices") == "model_overloaded"
    assert error_in_ok_body({"error": "Model gpt-9 does not exist"}, "choices") == "error"
    assert error_in_ok_body({"error": {"code": "The model is busy, retry later"}}, "choices") == "error"
    assert error_in_ok_body({"error": {"code": "A sentence", "type": "overloaded"}}, "choices") == "overloaded"
    # OpenRouter's shape: an integer code only, its digits (429 is counted as rate-limited)
    assert error_in_ok_body({"error": {"code": 429, "message": "Rate limit exceeded"}}, "choices") == "429"
    # a failed Responses API response: its error beside an empty output
    failed = {"id": "resp_1", "status": "failed", "output": [], "error": {"code": "server_error", "message": "x"}}
    assert error_in_ok_body(failed, "choices", "output", "data") == "server_error"
    assert error_in_ok_body({"object": "error", "type": "BadRequestError", "code": 400}, "choices") == "BadRequestError"
    assert error_in_ok_body({"error": None, "choices": []}, "choices") is None  # an answer, not an error
    assert error_in_ok_body({"id": "x", "error": None}, "output") is None


def test_failed_responses_api_response_keeps_what_it_says():
    """A failed Responses API response is an error, and still a response: its model, id and
    usage are read, as its stream's ``response.failed`` event is."""
    body = {
        "id": "resp_9",
        "object": "response",
        "status": "failed",
        "model": "gpt-4o-2024-08-06",
        "output": [],
        "error": {"code": "server_error", "message": "The model failed."},
        "usage": {"input_tokens": 40, "output_tokens": 0},
    }
    observed = Observed()
    start = CallStart("chat", "llm", model="gpt-4o")
    OpenAIAdapter().response_attributes(start, HttpResponse(200, {}, json.dumps(body).encode()), observed)
    assert observed.error_type == "server_error"
    attrs = observed.attributes
    assert (attrs["gen_ai.response.id"], attrs["gen_ai.response.model"]) == ("resp_9", "gpt-4o-2024-08-06")
    assert attrs["gen_ai.usage.input_tokens"] == 40 and observed.usage_reported
