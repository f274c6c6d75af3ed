"""Our fast cost arithmetic must agree with genai-prices itself, for every model it knows."""

from __future__ import annotations

from datetime import UTC, datetime

from genai_prices import Usage
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import ModelPrice
from hypothesis import given, settings
from hypothesis import strategies as st

from aispend.pricing.compute import compute
from aispend.pricing.library import flatten
from aispend.pricing.records import UsageRecord


def _all_prices() -> list[tuple[str, ModelPrice]]:
    out = []
    for provider in get_snapshot().providers:
        for model in provider.models:
            prices = [model.prices] if isinstance(model.prices, ModelPrice) else [c.prices for c in model.prices]
            out.extend((f"{provider.id}/{model.id}", mp) for mp in prices)
    return out


PRICES = [(name, mp, rates) for name, mp in _all_prices() if (rates := flatten(mp)) is not None]


def test_most_library_prices_are_usable():
    assert len(PRICES) > 1500


@st.composite
def usages(draw):
    input_tokens = draw(st.integers(0, 2_000_000))
    cache_read = draw(st.integers(0, input_tokens))
    cache_write = draw(st.integers(0, input_tokens - cache_read))
    output_tokens = draw(st.integers(0, 200_000))
    reasoning = draw(st.integers(0, output_tokens))
    return input_tokens, cache_read, cache_write, output_tokens, reasoning


@settings(max_examples=400, deadline=None)
@given(st.integers(0, len(PRICES) - 1), usages())
def test_compute_matches_genai_prices(index, usage):
    name, model_price, rates = PRICES[index]
    inp, cr, cw, out, reasoning = usage
    ours, _ = compute(
        rates,
        UsageRecord(
            provider="x",
            model=name,
            input_tokens=inp,
            cache_read_tokens=cr,
            cache_write_tokens=cw,
            output_tokens=out,
            reasoning_tokens=reasoning,
            timestamp=datetime.now(UTC),
        ),
    )
    theirs = model_price.calc_price(
        Usage(
            input_tokens=inp,
            cache_read_tokens=cr,
            cache_write_tokens=cw,
            output_tokens=out,
            output_reasoning_tokens=reasoning,
        )
    )
    assert ours.total == theirs["total_price"], name


def test_every_model_once_with_a_fixed_usage():
    for name, model_price, rates in PRICES:
        ours, _ = compute(
            rates,
            UsageRecord(
                provider="x",
                model=name,
                input_tokens=300_000,
                cache_read_tokens=1_000,
                cache_write_tokens=500,
                output_tokens=2_000,
                reasoning_tokens=700,
            ),
        )
        theirs = model_price.calc_price(
            Usage(
                input_tokens=300_000,
                cache_read_tokens=1_000,
                cache_write_tokens=500,
                output_tokens=2_000,
                output_reasoning_tokens=700,
            )
        )
        assert ours.total == theirs["total_price"], name
