"""Faults: whatever goes wrong, the app sees exactly what it would see without aispend, and the
span still ends (once)."""

from __future__ import annotations

import gc
import logging

import openai
import pytest

from aispend.instrumentation.adapters.openai import OpenAIAdapter
from tests.instrumentation.conftest import OPENAI_KEY, provider_urls

MESSAGES = [{"role": "user", "content": "hi"}]


def client(h):
    return openai.OpenAI(base_url=h.fake.openai_base, api_key=OPENAI_KEY, max_retries=0)


def outcome(fn):
    """(result repr or exception type and message) of one call."""
    try:
        value = fn()
    except Exception as exc:
        return ("raised", type(exc), str(exc))
    return ("returned", type(value), repr(getattr(value, "choices", value))[:200])


def compare(harness, fn):
    harness.instrumentor.uninstrument()
    bare = outcome(fn)
    harness.instrumentor.instrument(tracer_provider=harness.provider, provider_urls=provider_urls(harness.fake))
    observed = outcome(fn)
    assert observed == bare
    return observed


def test_non_json_response(harness):
    harness.fake.fault = "not_json"
    result = compare(harness, lambda: client(harness).chat.completions.create(model="gpt-4o", messages=MESSAGES))
    assert result[0] == "returned"  # the SDK hands the HTML to the app; so do we
    span = harness.span()
    assert span.end_time is not None and span.attributes["http.response.status_code"] == 200


def test_truncated_openai_stream(harness):
    harness.fake.fault = "truncate"

    def consume():
        return list(client(harness).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))

    assert compare(harness, consume)[0] == "raised"
    span = harness.span()
    assert span.status.status_code.name == "ERROR" and span.end_time is not None


def test_connection_reset(harness):
    harness.fake.fault = "reset"
    compare(harness, lambda: client(harness).chat.completions.create(model="gpt-4o", messages=MESSAGES))
    assert harness.span().attributes["error.type"] in ("RemoteProtocolError", "ReadError", "ConnectError")


def test_abandoned_stream_ends_the_span_when_collected(harness):
    stream = client(harness).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    next(iter(stream))
    assert harness.spans() == []  # still open while the app holds the stream
    del stream
    gc.collect()
    spans = harness.spans()
    assert len(spans) == 1 and spans[0].attributes["aispend.usage.estimated"] is True


def test_exception_inside_an_adapter_is_contained(harness, monkeypatch, caplog):
    def broken(self, start, response, observed):
        raise RuntimeError("adapter bug")

    monkeypatch.setattr(OpenAIAdapter, "response_attributes", broken)
    with caplog.at_level(logging.DEBUG, logger="aispend.instrumentation"):
        compare(harness, lambda: client(harness).chat.completions.create(model="gpt-4o", messages=MESSAGES))
        client(harness).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    spans = harness.spans()
    assert len(spans) == 2 and all(s.end_time is not None for s in spans)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "the call proceeds unchanged" in warnings[0].getMessage()  # logged once


def test_exception_reading_the_request_is_contained(harness, monkeypatch):
    def broken(self, request):
        raise ValueError("bad request parse")

    monkeypatch.setattr(OpenAIAdapter, "request_attributes", broken)
    result = compare(harness, lambda: client(harness).chat.completions.create(model="gpt-4o", messages=MESSAGES))
    assert result[0] == "returned" and harness.spans() == []


def test_suppressed_instrumentation_makes_no_span(harness):
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        client(harness).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert harness.spans() == []


@pytest.mark.parametrize("fault", ["http_400", "http_500"])
def test_error_statuses_compare_equal(harness, fault):
    harness.fake.fault = fault
    compare(harness, lambda: client(harness).chat.completions.create(model="gpt-4o", messages=MESSAGES))
    assert harness.span().status.status_code.name == "ERROR"
