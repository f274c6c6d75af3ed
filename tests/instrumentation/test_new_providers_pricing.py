"""Bedrock, Cohere and Ollama spans, as the instrumentation records them from the real SDKs,
through the exporter's normalising and pricing: inference profiles priced as their model, Cohere's
billed units, Ollama at $0 unless an override prices it."""

from __future__ import annotations

import json
from decimal import Decimal

import boto3
import cohere
import ollama
import pytest
import yaml
from botocore.config import Config

from aispend.exporter.costing import price_call
from aispend.exporter.normalise import Call, normalise
from aispend.pricing import PriceEngine
from aispend.pricing.book import parse_book
from aispend.pricing.records import UsageRecord
from tests.exporter.spans import view

M = 1_000_000


def priced(engine: PriceEngine, span) -> Call:
    call = normalise(view(dict(span.attributes)))
    assert isinstance(call, Call), call
    price_call(engine, call, lambda tier, when: 0)
    return call


def bedrock(fake):
    return boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=fake.bedrock_base,
        aws_access_key_id="AKIAFAKEEXAMPLE0K3Y9",
        aws_secret_access_key="fake-secret",
        config=Config(retries={"total_max_attempts": 1}),
    )


@pytest.mark.parametrize("prefix", ["", "us.", "eu.", "apac."])
def test_regional_inference_profiles_cost_what_their_model_costs(prefix):
    engine = PriceEngine()
    model = "anthropic.claude-3-5-haiku-20241022-v1:0"
    usage = {"input_tokens": M, "output_tokens": M}
    base = engine.price(UsageRecord(provider="aws.bedrock", model=model, **usage))
    profile = engine.price(UsageRecord(provider="aws.bedrock", model=prefix + model, **usage))
    assert base.matched and profile.matched and profile.cost == base.cost == Decimal("4.8")


def test_global_profile_has_its_own_price():
    """AWS prices newer Claude models lower through the global profile than in-region or through a
    geographic profile (us., eu., …); genai-prices carries both, and each id gets its own."""
    engine = PriceEngine()
    model = "anthropic.claude-sonnet-4-5-20250929-v1:0"
    one_m = {"input_tokens": M}
    regional = engine.price(UsageRecord(provider="aws.bedrock", model="us." + model, **one_m))
    global_ = engine.price(UsageRecord(provider="aws.bedrock", model="global." + model, **one_m))
    assert (regional.cost, global_.cost) == (Decimal("3.3"), Decimal("3"))


def test_bedrock_converse_span_is_priced_with_its_cache_tokens(harness):
    bedrock(harness.fake).converse(
        modelId="us.anthropic.claude-3-5-haiku-20241022-v1:0", messages=[{"role": "user", "content": [{"text": "hi"}]}]
    )
    call = priced(PriceEngine(), harness.span())
    assert call.provider == "aws.bedrock" and call.priced
    # 11 new input, 3 cache read, 5 cache write, 7 output at $0.8 / $0.08 / $1 / $4 per M
    expected = (11 * Decimal("0.8") + 3 * Decimal("0.08") + 5 * Decimal("1") + 7 * Decimal("4")) / M
    assert call.cost == expected


def test_cohere_on_bedrock_is_priced_from_the_book(harness):
    harness.fake.set_usage("bedrock", cache_read_tokens=0, cache_write_tokens=0)
    body = json.dumps({"message": "hi"})
    bedrock(harness.fake).invoke_model(modelId="cohere.command-r-v1:0", body=body)["body"].read()
    call = priced(PriceEngine(), harness.span())
    assert call.priced and call.cost == (11 * Decimal("0.50") + 7 * Decimal("1.50")) / M


def test_cohere_is_priced_on_billed_units(harness):
    client = cohere.ClientV2(api_key="co-fake-key-0123456789", base_url=harness.fake.cohere_base)
    client.chat(model="command-a-03-2025", messages=[{"role": "user", "content": "hi"}])
    call = priced(PriceEngine(), harness.span())
    assert (call.input_tokens, call.output_tokens) == (5, 9)  # billed units, not the 71 tokens seen
    assert call.priced and call.cost == (5 * Decimal("2.5") + 9 * Decimal("10")) / M


def test_ollama_is_counted_at_zero_unless_overridden(harness):
    ollama.Client(host=harness.fake.ollama_base).chat(model="llama3.2", messages=[{"role": "user", "content": "hi"}])
    span = harness.span()
    call = priced(PriceEngine(), span)
    assert (call.input_tokens, call.output_tokens) == (26, 13)
    assert call.priced and call.cost == 0  # priced (self-hosted), not "unpriced"

    overrides = parse_book(
        yaml.safe_load("prices:\n  - {provider: ollama, models: ['llama3*'], input_mtok: '0.10', output_mtok: '0.40'}"),
        "overrides.yaml",
    )
    call = priced(PriceEngine(overrides=overrides), span)
    assert call.cost == (26 * Decimal("0.10") + 13 * Decimal("0.40")) / M
