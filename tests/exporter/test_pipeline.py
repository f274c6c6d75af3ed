"""The pipeline: price, dedupe, record exactly once, reject bad spans without losing the batch."""

from __future__ import annotations

from decimal import Decimal

import pytest

from aispend.exporter.config import ExporterConfig
from aispend.exporter.ledger import Filters, LedgerError, SQLiteLedger
from aispend.exporter.metrics import UsageMetrics
from aispend.exporter.pipeline import Pipeline, RetryableError
from aispend.pricing import PriceEngine
from tests.exporter.spans import llm, new_id, otlp_request

ENGINE = PriceEngine()


def make(tmp_path=None, **config):
    ledger = SQLiteLedger(str(tmp_path / "l.sqlite") if tmp_path else ":memory:")
    metrics = UsageMetrics()
    return Pipeline(ExporterConfig(**config), ENGINE, ledger, metrics), metrics, ledger


def cost_of(metrics, **labels):
    return sum(
        (
            v
            for k, v in metrics.cost.items()
            if all(
                k[i] == labels.get(n, k[i])
                for i, n in enumerate(("service", "provider", "model", "operation", "feature", "customer", "key"))
            )
        ),
        Decimal(0),
    )


def test_prices_a_mixed_batch_exactly():
    pipeline, metrics, _ = make()
    result = pipeline.export(
        otlp_request(
            [
                llm("openai", "gpt-4", 150, 75, **{"aispend.feature": "a"}),
                llm("anthropic", "claude-3-5-haiku-20241022", 1_000_000, 0, **{"aispend.feature": "b"}),
                {
                    "gen_ai.provider.name": "serper",
                    "gen_ai.operation.name": "search",
                    "gen_ai.request.model": "search",
                    "aispend.service.kind": "search",
                    "aispend.key": "k1",
                },
            ]
        )
    )
    assert (result.spans, result.recorded, result.rejected) == (3, 3, 0)
    assert cost_of(metrics, model="gpt-4") == Decimal("0.009")
    assert cost_of(metrics, provider="anthropic") == Decimal("0.80")
    assert cost_of(metrics, provider="serper") == 0  # inside the free tier


def test_free_tier_counts_across_batches_per_key(tmp_path):
    pipeline, metrics, ledger = make(tmp_path)
    search = {
        "gen_ai.provider.name": "serper",
        "gen_ai.operation.name": "search",
        "gen_ai.request.model": "search",
        "aispend.service.kind": "search",
        "aispend.key": "k1",
        "aispend.usage.requests": 1250,
    }
    pipeline.export(otlp_request([search, search]))  # 2,500 queries: all free
    assert cost_of(metrics, provider="serper") == 0
    pipeline.export(otlp_request([{**search, "aispend.usage.requests": 2}]))
    assert cost_of(metrics, provider="serper") == Decimal("0.002")
    other_key = {**search, "aispend.key": "k2", "aispend.usage.requests": 1}
    pipeline.export(otlp_request([other_key]))
    assert cost_of(metrics, provider="serper", key="k2") == 0
    # a restarted exporter remembers the key's usage from the ledger
    ledger.close()
    again, metrics2, _ = make(tmp_path)
    again.export(otlp_request([{**search, "aispend.usage.requests": 1}]))
    assert cost_of(metrics2, provider="serper", key="k1") == Decimal("0.001")


def test_same_batch_twice_counts_once():
    pipeline, metrics, _ = make()
    request = otlp_request([llm("openai", "gpt-4", 150, 75)])
    pipeline.export(request)
    second = pipeline.export(request)
    assert second.duplicates == 1 and second.recorded == 0
    assert cost_of(metrics) == Decimal("0.009")
    assert metrics.deduplicated == {"retry": 1}


def test_sdk_span_and_http_span_of_one_call_count_once():
    pipeline, metrics, _ = make()
    trace, parent = new_id(16), new_id(8)
    child = {
        "trace_id": trace,
        "parent": parent,
        "attributes": llm("anthropic", "claude-3-5-haiku-20241022", 100, 10, **{"gen_ai.response.id": "msg_1"}),
    }
    sdk_span = {
        "trace_id": trace,
        "span_id": parent,
        "attributes": {**llm("anthropic", "claude-3-5-haiku-20241022", 100, 10), "aispend.service.kind": None},
    }
    sdk_span["attributes"].pop("aispend.service.kind")
    pipeline.export(otlp_request([child]))
    later = pipeline.export(otlp_request([sdk_span]))  # the parent ends (and is exported) after the child
    assert later.duplicates == 1
    assert sum(metrics.requests.values()) == 1


def test_same_response_id_in_one_trace_counts_once_and_prefers_aispend():
    pipeline, metrics, _ = make()
    trace = new_id(16)
    peer = {
        "trace_id": trace,
        "attributes": {
            "gen_ai.system": "openai",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 5,
            "gen_ai.response.id": "chatcmpl-1",
        },
    }
    ours = {
        "trace_id": trace,
        "attributes": llm(
            "openai", "gpt-4o", 10, 5, **{"gen_ai.response.id": "chatcmpl-1", "aispend.customer": "acme"}
        ),
    }
    result = pipeline.export(otlp_request([peer, ours]))
    assert result.recorded == 1 and result.duplicates == 1
    assert [k[5] for k in metrics.cost] == ["acme"]


def test_bad_spans_are_rejected_and_the_rest_recorded():
    pipeline, metrics, _ = make()
    result = pipeline.export(
        otlp_request(
            [
                llm("openai", "gpt-4", -5, 1),
                llm("openai", "gpt-4", "many", 1),
                llm("openai", "gpt-4", 150, 75),
                {"http.request.method": "GET"},  # not a call: ignored, not rejected
            ]
        )
    )
    assert (result.spans, result.recorded, result.rejected) == (4, 1, 2)
    assert metrics.rejected == {"negative_tokens": 1, "bad_token_count": 1}
    assert "negative" in result.message
    assert cost_of(metrics) == Decimal("0.009")


def test_unknown_model_is_recorded_as_unpriced():
    pipeline, metrics, ledger = make()
    pipeline.export(otlp_request([llm("openai", "gpt-9-turbo-ultra", 10, 10)]))
    assert metrics.unpriced == {("openai", "gpt-9-turbo-ultra"): 1}
    assert sum(metrics.requests.values()) == 1
    assert ledger.summary(__import__("aispend.exporter.ledger", fromlist=["Filters"]).Filters(), [])[0]["unpriced"] == 1


def test_openlit_precomputed_cost_is_a_fallback_for_unknown_models():
    pipeline, metrics, _ = make()
    pipeline.export(otlp_request([llm("openai", "in-house-model", 10, 10, **{"gen_ai.usage.cost": 0.25})]))
    assert cost_of(metrics) == Decimal("0.25") and metrics.unpriced == {}


def test_labels_cleaned_and_bounded():
    pipeline, metrics, _ = make(label_limits={"customer": 2}, label_max_length=20)
    pipeline.export(
        otlp_request(
            [
                llm("openai", "gpt-4", 1, 1, **{"aispend.customer": "a"}),
                llm("openai", "gpt-4", 1, 1, **{"aispend.customer": "b"}),
                llm("openai", "gpt-4", 1, 1, **{"aispend.customer": "c"}),
                llm("openai", "gpt-4", 1, 1, **{"aispend.customer": "x" * 10_000}),
                llm("openai", "gpt-4", 1, 1, **{"aispend.feature": "bad\x00\nfeature"}),
            ]
        )
    )
    customers = {k[5] for k in metrics.cost}
    assert customers == {"a", "b", "__overflow__", ""}
    assert pipeline.bounds.overflows == {"customer": 2}
    assert metrics.clamped == {"label_too_long": 1, "label_control_chars": 1}
    assert {k[4] for k in metrics.cost} == {"", "badfeature"}


def test_ledger_failure_is_retryable_and_applies_nothing():
    pipeline, metrics, ledger = make()

    def broken(calls, acc):
        raise LedgerError("disk full")

    ledger.record = broken
    request = otlp_request([llm("openai", "gpt-4", 150, 75)])
    with pytest.raises(RetryableError):
        pipeline.export(request)
    assert metrics.cost == {} and ledger.summary(Filters(), []) == []
    del ledger.record  # the disk has room again: the sender's retry is recorded once
    assert pipeline.export(request).recorded == 1
    assert cost_of(metrics) == Decimal("0.009")


def test_restore_from_ledger(tmp_path):
    pipeline, metrics, ledger = make(tmp_path)
    request = otlp_request(
        [llm("openai", "gpt-4", 150, 75, **{"aispend.customer": "acme"}), llm("openai", "nope", 1, 1)]
    )
    pipeline.export(request)
    ledger.close()
    again, metrics2, _ = make(tmp_path)
    again.restore()
    assert cost_of(metrics2, customer="acme") == Decimal("0.009")
    assert metrics2.tokens == metrics.tokens and metrics2.requests == metrics.requests
    assert metrics2.unpriced == metrics.unpriced
    assert metrics2.duration == metrics.duration and sum(h[-1] for h in metrics.duration.values()) == 2
    assert again.export(request).duplicates == 2  # the ledger knows them after the restart
