"""normalise(): any span -> a billable call, None, or a rejection with a reason."""

from __future__ import annotations

import pytest

from aispend.exporter.normalise import Call, Rejected, normalise
from tests.exporter.spans import view


def call(attrs, **kw) -> Call:
    out = normalise(view(attrs, **kw))
    assert isinstance(out, Call), out
    return out


def test_plain_http_span_is_not_a_call():
    assert normalise(view({"http.request.method": "POST", "url.full": "https://api.openai.com/v1/chat"})) is None


def test_agent_spans_are_not_calls():
    assert normalise(view({"gen_ai.operation.name": "invoke_agent", "gen_ai.provider.name": "openai"})) is None


def test_aispend_span():
    c = call(
        {
            "gen_ai.provider.name": "anthropic",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "claude-3-5-haiku-latest",
            "gen_ai.response.model": "claude-3-5-haiku-20241022",
            "gen_ai.usage.input_tokens": 17,
            "gen_ai.usage.output_tokens": 6,
            "gen_ai.usage.cache_read.input_tokens": 3,
            "gen_ai.usage.cache_creation.input_tokens": 5,
            "gen_ai.usage.cache_write.input_tokens": 5,
            "aispend.feature": "chat",
            "aispend.customer": "acme",
            "aispend.key": "sk-ant-…ZZZZ",
            "aispend.service.kind": "llm",
            "gen_ai.response.id": "msg_1",
        }
    )
    assert (c.provider, c.model, c.price_model) == ("anthropic", "claude-3-5-haiku-latest", "claude-3-5-haiku-20241022")
    assert (c.input_tokens, c.output_tokens, c.cache_read_tokens, c.cache_write_tokens) == (17, 6, 3, 5)
    assert (c.feature, c.customer, c.key, c.status, c.requests) == ("chat", "acme", "sk-ant-…ZZZZ", "ok", 1)
    assert c.from_aispend and c.response_id == "msg_1"


def test_openai_v2_default_names():
    c = call(
        {
            "gen_ai.system": "openai",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 11,
            "gen_ai.usage.output_tokens": 7,
        }
    )
    assert (c.provider, c.input_tokens, c.output_tokens, c.from_aispend) == ("openai", 11, 7, False)


def test_openllmetry_047_older_names_and_capitalised_provider():
    c = call(
        {
            "gen_ai.system": "Anthropic",
            "llm.request.type": "chat",
            "gen_ai.request.model": "claude-3-5-sonnet-20241022",
            "gen_ai.usage.prompt_tokens": 17,
            "gen_ai.usage.completion_tokens": 6,
            "gen_ai.usage.cache_read_input_tokens": 3,
            "gen_ai.usage.cache_creation_input_tokens": 5,
            "llm.usage.total_tokens": 23,
            "traceloop.association.properties.user_id": "user-9",
        }
    )
    assert (c.provider, c.operation) == ("anthropic", "chat")
    assert (c.input_tokens, c.output_tokens, c.cache_read_tokens, c.cache_write_tokens) == (17, 6, 3, 5)
    assert c.customer == "user-9"


def test_openlit_anthropic_input_excludes_cache_and_is_corrected():
    c = call(
        {
            "gen_ai.provider.name": "anthropic",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "claude-3-5-haiku-latest",
            "gen_ai.usage.input_tokens": 9,
            "gen_ai.usage.output_tokens": 6,
            "gen_ai.usage.cache_read.input_tokens": 3,
            "gen_ai.usage.cache_creation.input_tokens": 5,
            "telemetry.sdk.name": "openlit",
            "gen_ai.usage.cost": 0.0001,
        }
    )
    assert c.input_tokens == 17 and c.span_cost == 0.0001


def test_exclusive_input_detected_when_cache_exceeds_input():
    c = call(llm_attrs(inp=2, out=1, **{"gen_ai.usage.cache_read.input_tokens": 10}))
    assert c.input_tokens == 12


def test_reasoning_reported_beside_output_is_added():
    c = call(llm_attrs(inp=5, out=3, **{"gen_ai.usage.reasoning_tokens": 10}))
    assert (c.output_tokens, c.reasoning_tokens) == (13, 10)


def test_provider_inferred_from_server_address_url():
    c = call(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "server.address": "https://api.openai.com/v1",
        }
    )
    assert c.provider == "openai"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (-5, "negative_tokens"),
        ("lots", "bad_token_count"),
        (1.5, "bad_token_count"),
        (10**12, "absurd_token_count"),
        (True, "bad_token_count"),
    ],
)
def test_bad_token_counts_are_rejected_with_a_reason(value, reason):
    out = normalise(view(llm_attrs(inp=value, out=1)))
    assert isinstance(out, Rejected) and out.reason == reason


def test_numeric_strings_are_accepted():
    assert call(llm_attrs(inp="12", out="3.0")).input_tokens == 12


def test_errors_and_rate_limits():
    limited = call(llm_attrs(inp=0, out=0, **{"http.response.status_code": 429, "error.type": "rate_limit_exceeded"}))
    assert (limited.status, limited.requests) == ("rate_limited", 0)
    failed = call(llm_attrs(inp=0, out=0), status_code=2)
    assert failed.status == "error" and failed.error_type == "_OTHER"
    budget = call(llm_attrs(inp=0, out=0, **{"error.type": "budget_exceeded"}))
    assert budget.status == "error" and budget.error_type == "budget_exceeded"


def test_stream_without_usage_is_marked_unknown():
    c = call({"gen_ai.system": "openai", "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"})
    assert c.usage_known is False


def test_search_span_units_and_kind():
    c = call(
        {
            "gen_ai.provider.name": "serper",
            "gen_ai.operation.name": "search",
            "gen_ai.request.model": "search",
            "aispend.service.kind": "search",
            "aispend.usage.requests": 3,
        }
    )
    assert (c.kind, c.requests, c.usage_known) == ("search", 3, True)


def test_key_aliases_applied_at_the_exporter():
    out = normalise(view(llm_attrs(inp=1, out=1, **{"aispend.key": "sk-…a1b2"})), key_aliases={"sk-…a1b2": "prod"})
    assert out.key == "prod"


def llm_attrs(inp, out, **extra):
    attrs = {
        "gen_ai.provider.name": "openai",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": inp,
        "gen_ai.usage.output_tokens": out,
    }
    attrs.update(extra)
    return attrs
