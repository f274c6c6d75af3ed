"""One bad span costs that span only: whatever the ledger cannot store (timestamps past 2^63, NUL
characters, ids that are not ids) is rejected with a counted reason, long values are cut and
counted, secret-looking values are fingerprinted, and the rest of the batch is recorded. Only a
real storage failure is retryable."""

from __future__ import annotations

import logging
import random
import string

import pytest

from aispend.exporter.config import ExporterConfig
from aispend.exporter.ledger import Filters, open_ledger
from aispend.exporter.metrics import UsageMetrics
from aispend.exporter.pipeline import Pipeline
from aispend.keys import fingerprint
from aispend.pricing import PriceEngine
from tests.exporter.spans import NOW_NS, llm, otlp_request

ENGINE = PriceEngine()


def pipeline_on(url: str, **config):
    ledger = open_ledger(url)
    metrics = UsageMetrics()
    return Pipeline(ExporterConfig(**config), ENGINE, ledger, metrics), metrics, ledger


def gpt(**extra):
    return llm("openai", "gpt-4", 150, 75, **extra)


def test_what_the_ledger_cannot_store_rejects_only_that_span(ledger_url):
    pipeline, metrics, ledger = pipeline_on(ledger_url)
    bad = [
        {"start": 2**63, **gpt()},  # past BIGINT
        {"start": 2**64 - 1_000_000_000, **gpt()},
        {"start": NOW_NS, "duration": 2**63, **gpt()},  # the end past BIGINT
        {"start": 0, **gpt()},  # no start time at all
    ]
    result = pipeline.export(otlp_request([gpt(), *bad, gpt()]))
    assert (result.recorded, result.rejected) == (2, len(bad))
    assert metrics.rejected == {"bad_timestamp": 4}
    assert "bad_timestamp" in result.message
    assert ledger.summary(Filters(), [])[0]["calls"] == 2
    ledger.close()


def test_nul_characters_are_removed_from_every_stored_string(ledger_url):
    """PostgreSQL TEXT cannot hold NUL: like any control character it is removed and counted."""
    pipeline, metrics, ledger = pipeline_on(ledger_url)
    spans = [
        gpt(**{"gen_ai.response.id": "chatcmpl-\x00abc"}),
        gpt(**{"aispend.service.kind": "llm\x00"}),
        gpt(**{"aispend.customer": "acme\x00"}),
        gpt(**{"error.type": "Timeout\x00"}),
        gpt(**{"gen_ai.response.model": "gpt-4\x00-0613"}),  # and the price model read from it
    ]
    result = pipeline.export(otlp_request([gpt(), *spans], service="shop\x00"))
    assert (result.recorded, result.rejected) == (6, 0)
    rows = ledger._read("SELECT service, customer, response_model, kind, error_type, response_id FROM calls")
    assert len(rows) == 6 and not any("\x00" in value for row in rows for value in row)
    assert {"chatcmpl-abc", "acme", "Timeout", "gpt-4-0613", "shop"} <= {value for row in rows for value in row}
    assert metrics.clamped == {"label_control_chars": 6 + 6}
    ledger.close()


def test_spans_without_a_usable_identity_are_rejected(ledger_url):
    """Empty or wrong-length ids would make distinct calls look like retries of one another."""
    pipeline, metrics, ledger = pipeline_on(ledger_url)
    request = otlp_request([gpt() for _ in range(14)])
    spans = request.resource_spans[0].scope_spans[0].spans
    trace = spans[0].trace_id
    for span in spans[:10]:  # ten distinct calls, same trace, no span id
        span.trace_id, span.span_id = trace, b""
    spans[10].trace_id = b""
    spans[11].trace_id = b"\x00" * 16  # the invalid all-zero id
    spans[12].span_id = b"\x01\x02\x03"
    result = pipeline.export(request)
    assert (result.recorded, result.duplicates) == (1, 0)
    assert metrics.rejected == {"bad_span_id": 11, "bad_trace_id": 2}
    assert ledger.summary(Filters(), [])[0]["calls"] == 1
    ledger.close()


def test_every_stored_string_is_bounded(ledger_url):
    pipeline, metrics, ledger = pipeline_on(ledger_url)
    huge = "x" * 1_000_000
    spans = [
        gpt(**{"gen_ai.response.id": huge}),
        gpt(**{"aispend.service.kind": huge}),
        gpt(**{"error.type": huge}),
        gpt(**{"gen_ai.response.model": huge}),
        gpt(**{"aispend.feature": huge}),
    ]
    request = otlp_request(spans, service="s" * 100_000)
    assert pipeline.export(request).recorded == len(spans)
    rows = ledger._read(
        "SELECT service, feature, response_model, kind, error_type, response_id, trace_id, span_id FROM calls"
    )
    assert len(rows) == len(spans)
    assert max(len(value) for row in rows for value in row) <= 256
    # the service on each span, one field each, and the price model beside the response model
    assert metrics.clamped == {"label_too_long": 5 + 5 + 1}
    ledger.close()


def test_a_cost_past_bigint_is_unpriced_not_retried(ledger_url, tmp_path):
    """An absurd price override must not make the ledger write fail for the whole batch forever."""
    from aispend.pricing import load_book

    prices = tmp_path / "prices.yaml"
    prices.write_text('prices:\n  - {provider: openai, models: [gpt-4], input_mtok: "1e9", output_mtok: "1"}\n')
    ledger = open_ledger(ledger_url)
    metrics = UsageMetrics()
    engine = ENGINE.with_overrides(load_book(str(prices)))
    pipeline = Pipeline(ExporterConfig(), engine, ledger, metrics)
    result = pipeline.export(otlp_request([gpt(), llm("openai", "gpt-4", 40_000_000, 1), gpt()]))
    assert result.recorded == 3
    assert metrics.unpriced == {("openai", "gpt-4"): 1}
    ledger.close()


_random = random.Random(12)  # fixed: test ids must be the same in every pytest worker
RAW_KEY = "sk-proj-" + "".join(_random.choice(string.ascii_letters + string.digits) for _ in range(48))
TOKEN = "".join(_random.choice(string.ascii_letters + string.digits) for _ in range(40)) + "Aa1"


@pytest.mark.parametrize(
    "value",
    [RAW_KEY, "sk-ant-api03-" + "A1b2" * 20, "AKIAIOSFODNN7EXAMPLE", "AIzaSyA-1234567890abcdefghijklmnopqrstu", TOKEN],
)
def test_secret_looking_values_are_recognised(value):
    from aispend.keys import looks_secret

    assert looks_secret(value)


@pytest.mark.parametrize(
    "value",
    [
        "acme-corp",
        "claude-3-5-haiku-20241022",
        "gpt-4o-2024-08-06",
        "550e8400-e29b-41d4-a716-446655440000",  # a UUID customer id
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",  # a sha256 hex id
        "sk-…a1b2",  # already a fingerprint
        "RateLimitError",
        "openai.APIConnectionError",
        "customer 42 from the onboarding flow",
        "cus_NffrFeUfNV2Hib",
    ],
)
def test_ordinary_values_are_kept(value):
    from aispend.keys import looks_secret

    assert not looks_secret(value)


def test_the_exporter_fingerprints_secret_looking_values(tmp_path, caplog):
    alias = {fingerprint(RAW_KEY): "prod-backend"}
    pipeline, metrics, ledger = pipeline_on(f"sqlite:///{tmp_path}/l.sqlite", key_aliases=alias)
    spans = [
        gpt(**{"aispend.key": RAW_KEY}),
        gpt(**{"aispend.key": "AIzaSyA-1234567890abcdefghijklmnopqrstu"}),
        gpt(**{"error.type": "AKIAIOSFODNN7EXAMPLE", "aispend.customer": TOKEN}),
        gpt(**{"aispend.feature": "sk-ant-api03-" + "A1b2" * 20}),
        gpt(**{"aispend.customer": "acme"}),
    ]
    with caplog.at_level(logging.WARNING, logger="aispend.exporter"):
        result = pipeline.export(otlp_request([*spans, gpt(**{"gen_ai.usage.input_tokens": RAW_KEY})]))
    assert (result.recorded, result.rejected) == (5, 1)
    rows = ledger._read("SELECT key, error_type, customer, feature FROM calls")
    stored = {value for row in rows for value in row}
    assert "prod-backend" in stored and "AIza…rstu" in stored
    assert "AKIA…MPLE" in stored and fingerprint(TOKEN) in stored and "sk-ant-…A1b2" in stored
    assert "acme" in stored
    assert metrics.clamped == {"secret_fingerprinted": 5}
    everything = caplog.text + result.message + repr(metrics.series)
    for secret in (RAW_KEY, TOKEN, "AKIAIOSFODNN7EXAMPLE", "A1b2A1b2A1b2"):
        assert secret not in everything
    assert RAW_KEY[:20] not in everything  # rejected values are logged as a fingerprint
    assert "bad_token_count" in caplog.text and fingerprint(RAW_KEY) in caplog.text
    ledger.close()
