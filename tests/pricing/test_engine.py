"""The price engine against the figures the product promises (exact Decimal, >= 6 places)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from aispend.pricing import PriceEngine, UsageRecord, load_book
from aispend.pricing.book import parse_book

M = 1_000_000


@pytest.fixture(scope="module")
def engine() -> PriceEngine:
    return PriceEngine()


def cost(engine: PriceEngine, free_used: int = 0, **kw) -> Decimal:
    result = engine.price(UsageRecord(**kw), free_used=free_used)
    assert result.matched, kw
    return result.cost


def test_claude_haiku_35_per_million(engine):
    assert cost(engine, provider="anthropic", model="claude-3-5-haiku-20241022", input_tokens=M) == Decimal("0.80")
    assert cost(engine, provider="anthropic", model="claude-3-5-haiku-20241022", output_tokens=M) == Decimal("4.00")


def test_claude_sonnet_per_million(engine):
    assert cost(engine, provider="anthropic", model="claude-3-5-sonnet-20241022", input_tokens=M) == Decimal(3)
    assert cost(engine, provider="anthropic", model="claude-3-5-sonnet-20241022", output_tokens=M) == Decimal(15)


def test_gpt4_150_prompt_75_completion_is_exactly_0_009(engine):
    assert cost(engine, provider="openai", model="gpt-4", input_tokens=150, output_tokens=75) == Decimal("0.009")


def test_serper_free_tier_boundary(engine):
    # free_used = queries this key already made; the 2,500th query is still free.
    assert cost(engine, free_used=2499, provider="serper", model="search") == Decimal(0)
    result = engine.price(UsageRecord(provider="serper", model="search"), free_used=2500)
    assert result.cost == Decimal("0.001")
    assert result.free_units == 0
    # a batch straddling the boundary pays only for the units past it
    batch = engine.price(UsageRecord(provider="serper", model="search", requests=3), free_used=2499)
    assert batch.free_units == 1 and batch.cost == Decimal("0.002")


def test_unsplash_is_free(engine):
    result = engine.price(UsageRecord(provider="unsplash", model="search-photos", operation="search"))
    assert result.matched and result.cost == 0 and result.source == "book"


def test_anthropic_cached_tokens(engine):
    # input_tokens includes cache tokens (the convention); Haiku 3.5: cache read $0.08, write $1.00 /M
    got = cost(
        engine,
        provider="anthropic",
        model="claude-3-5-haiku-20241022",
        input_tokens=1000,
        cache_read_tokens=400,
        cache_write_tokens=100,
        output_tokens=50,
    )
    expected = (Decimal(500) * Decimal("0.80") + 400 * Decimal("0.08") + 100 * Decimal(1) + 50 * Decimal(4)) / M
    assert got == expected == Decimal("0.000732")


def test_openai_cached_tokens(engine):
    # gpt-4o: $2.50 input, $1.25 cached input, $10 output per 1M
    got = cost(engine, provider="openai", model="gpt-4o", input_tokens=2000, cache_read_tokens=1024, output_tokens=300)
    assert got == (976 * Decimal("2.5") + 1024 * Decimal("1.25") + 300 * Decimal(10)) / M
    assert got == Decimal("0.00672")


def test_exact_to_many_places(engine):
    got = cost(engine, provider="openai", model="gpt-4o-mini", input_tokens=7, output_tokens=3)
    assert got == Decimal("0.00000285")  # 7*0.15/1e6 + 3*0.6/1e6, no float rounding


@pytest.mark.parametrize(
    ("provider", "model", "expected_model"),
    [
        ("openai", "gpt-4o-2024-08-06", "gpt-4o"),
        ("openai", "openai/gpt-4o", "gpt-4o"),
        ("openai", "GPT-4o ", "gpt-4o"),
        ("gcp.gemini", "models/gemini-1.5-flash", "gemini-1.5-flash"),
        ("gcp.vertex_ai", "claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
        ("aws.bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", None),
        ("", "us.anthropic.claude-3-5-sonnet-20241022-v2:0", None),
        ("azure.ai.openai", "gpt-4o", "gpt-4o"),
        ("openrouter", "openai/gpt-4o", "openai/gpt-4o"),
    ],
)
def test_model_names_as_users_write_them(engine, provider, model, expected_model):
    result = engine.price(UsageRecord(provider=provider, model=model, input_tokens=M))
    assert result.matched, (provider, model)
    if expected_model:
        assert result.model_id == expected_model
    assert result.cost > 0


def test_bedrock_and_vertex_price_like_the_vendor(engine):
    bedrock = cost(engine, provider="aws.bedrock", model="anthropic.claude-3-5-sonnet-20240620-v1:0", input_tokens=M)
    vertex = cost(engine, provider="gcp.vertex_ai", model="claude-3-5-sonnet-v2@20241022", input_tokens=M)
    assert bedrock == vertex == Decimal(3)


def test_unknown_model_is_unmatched_not_an_error(engine):
    result = engine.price(UsageRecord(provider="openai", model="gpt-unknown-9000", input_tokens=10))
    assert result.matched is False and result.cost == 0 and result.source == "none"
    weird = engine.price(UsageRecord(provider="", model="", input_tokens=10))
    assert weird.matched is False


def test_known_provider_does_not_fall_back_to_another_vendor(engine):
    # Bedrock has no "gpt-4o": it must not be priced at OpenAI's list price.
    assert engine.price(UsageRecord(provider="aws.bedrock", model="gpt-4o", input_tokens=10)).matched is False


def test_unknown_provider_falls_back_to_the_model_name(engine):
    result = engine.price(UsageRecord(provider="my-proxy", model="gpt-4o", input_tokens=M))
    assert result.matched and result.cost == Decimal("2.5")


def test_images_priced_per_image_by_size_and_quality(engine):
    def img(model, size, quality, n=1):
        return cost(
            engine,
            provider="openai",
            model=model,
            operation="image_generation",
            images=n,
            image_size=size,
            image_quality=quality,
        )

    assert img("dall-e-3", "1024x1024", "standard") == Decimal("0.040")
    assert img("dall-e-3", "1792x1024", "hd", n=2) == Decimal("0.240")
    assert img("dall-e-2", "256x256", None) == Decimal("0.016")
    assert img("gpt-image-1", "1024x1536", "high") == Decimal("0.25")


def test_gpt_image_with_token_usage_is_priced_by_tokens(engine):
    result = engine.price(
        UsageRecord(
            provider="openai",
            model="gpt-image-1",
            operation="image_generation",
            images=1,
            input_tokens=50,
            output_tokens=4160,
        )
    )
    assert result.source == "genai-prices"
    assert result.cost == (50 * Decimal(5) + 4160 * Decimal(40)) / M


def test_tiered_long_context_price(engine):
    small = cost(engine, provider="gcp.gemini", model="gemini-2.5-pro", input_tokens=200_000)
    large = cost(engine, provider="gcp.gemini", model="gemini-2.5-pro", input_tokens=200_001)
    assert small == Decimal("0.25")  # 200k x $1.25/M
    assert large == 200_001 * Decimal("2.5") / M


OVERRIDES = """
aliases:
  prod-gpt4o-deployment: gpt-4o
prices:
  - provider: openai
    models: ["ft:gpt-4o-mini:acme:*"]
    input_mtok: "0.30"
    output_mtok: "1.20"
  - provider: anthropic
    models: [claude-3-5-haiku-*]
    input_mtok: "0.50"
    output_mtok: "2.50"
    effective_from: 2026-06-01
discounts:
  - provider: azure.ai.openai
    discount: 0.2
"""


@pytest.fixture
def overridden(tmp_path) -> PriceEngine:
    path = tmp_path / "prices.yaml"
    path.write_text(OVERRIDES)
    return PriceEngine(overrides=load_book(path))


def test_override_for_a_fine_tuned_model(overridden):
    result = overridden.price(UsageRecord(provider="openai", model="ft:gpt-4o-mini:acme:support:9xYz", input_tokens=M))
    assert result.source == "override" and result.cost == Decimal("0.30")


def test_effective_dated_override_applies_only_after_its_date(overridden):
    before = datetime(2026, 5, 31, 23, 59, tzinfo=UTC)
    after = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
    old = overridden.price(
        UsageRecord(provider="anthropic", model="claude-3-5-haiku-20241022", input_tokens=M, timestamp=before)
    )
    new = overridden.price(
        UsageRecord(provider="anthropic", model="claude-3-5-haiku-20241022", input_tokens=M, timestamp=after)
    )
    assert (old.source, old.cost) == ("genai-prices", Decimal("0.80"))
    assert (new.source, new.cost) == ("override", Decimal("0.50"))


def test_azure_deployment_alias_and_provider_discount(overridden):
    result = overridden.price(UsageRecord(provider="azure.ai.openai", model="prod-gpt4o-deployment", input_tokens=M))
    assert result.matched and result.model_id == "gpt-4o"
    assert result.discount == Decimal("0.2")
    assert result.cost == Decimal("2.5") * Decimal("0.8")
    # the discount is for Azure only
    assert overridden.price(UsageRecord(provider="openai", model="gpt-4o", input_tokens=M)).cost == Decimal("2.5")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prices: [{provider: openai, models: [x], input_price: 1}]", r"prices\[0\]: unknown key\(s\) input_price"),
        ("prices: [{provider: openai, models: [x], input_mtok: -1}]", "non-negative"),
        ("prices: [{provider: openai, models: [x], input_mtok: abc}]", "expected a number"),
        ("prices: [{provider: openai, models: [x]}]", "no price given"),
        ("discounts: [{provider: openai, discount: 1.5}]", "fraction below 1"),
        ("prices: [{provider: openai, models: [x], input_mtok: 1, effective_from: tomorrow}]", "not an ISO date"),
        ("prices: [{provider: serper, per_request: 1, free_tier: {units: 5, period: week}}]", "period must be"),
        ("- just a list", "top level must be a mapping"),
    ],
)
def test_bad_overrides_name_the_problem(text, message):
    import yaml

    from aispend.pricing import PriceBookError

    with pytest.raises(PriceBookError, match=message):
        parse_book(yaml.safe_load(text), "prices.yaml")


def test_unreadable_or_invalid_yaml_file(tmp_path):
    from aispend.pricing import PriceBookError

    with pytest.raises(PriceBookError, match="cannot read"):
        load_book(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("prices: [unclosed")
    with pytest.raises(PriceBookError, match="not valid YAML"):
        load_book(bad)


def test_pricing_never_touches_the_network(monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("pricing tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    fresh = PriceEngine()  # loads genai-prices' bundled data and the price book from the package
    assert fresh.price(UsageRecord(provider="openai", model="gpt-4o-mini", input_tokens=M)).cost == Decimal("0.15")
    assert fresh.price(UsageRecord(provider="serper", model="search"), free_used=2500).cost == Decimal("0.001")
