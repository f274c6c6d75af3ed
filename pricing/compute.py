"""Cost arithmetic: rates x usage -> breakdown. Pure, Decimal only.

This mirrors genai-prices' leaf decomposition for the units aispend records (tokens by type,
requests, images); ``tests/test_pricing_oracle.py`` checks it against the library itself for
every model the library knows, so the fast path cannot drift from the source of truth.
"""

from __future__ import annotations

from decimal import Decimal

from aispend.pricing.records import ZERO, CostBreakdown, Price, Rates, TieredPrice, Usage

_MILLION = Decimal(1_000_000)


def _per_million(tokens: int, price: Price, total_input: int) -> Decimal:
    if not tokens:
        return ZERO
    unit = price.at(total_input) if isinstance(price, TieredPrice) else price
    return tokens * unit / _MILLION


def free_units_of(rates: Rates, requests: int, free_used: int) -> int:
    """How many of this call's request units fall inside the free tier."""
    if rates.free_tier is None or requests <= 0:
        return 0
    remaining = rates.free_tier.units - max(free_used, 0)
    return max(0, min(requests, remaining))


def compute(rates: Rates, usage: Usage, free_used: int = 0) -> tuple[CostBreakdown, int]:
    """Return the cost breakdown and the number of request units that were free."""
    total_in = usage.input_tokens
    uncached = total_in
    cache_read = cache_write = ZERO
    if rates.cache_read_mtok is not None:
        uncached -= usage.cache_read_tokens
        cache_read = _per_million(usage.cache_read_tokens, rates.cache_read_mtok, total_in)
    if rates.cache_write_mtok is not None:
        uncached -= usage.cache_write_tokens
        cache_write = _per_million(usage.cache_write_tokens, rates.cache_write_mtok, total_in)
    plain_out = usage.output_tokens
    reasoning = ZERO
    if rates.reasoning_mtok is not None:
        plain_out -= usage.reasoning_tokens
        reasoning = _per_million(usage.reasoning_tokens, rates.reasoning_mtok, total_in)

    free = free_units_of(rates, usage.requests, free_used)
    request = (usage.requests - free) * rates.per_request if rates.per_request else ZERO

    image = ZERO
    if usage.images and rates.per_image:
        unit = rates.image_price(usage.image_size, usage.image_quality)
        image = usage.images * unit if unit is not None else ZERO

    breakdown = CostBreakdown(
        input=_per_million(max(uncached, 0), rates.input_mtok, total_in),
        cache_read=cache_read,
        cache_write=cache_write,
        output=_per_million(max(plain_out, 0), rates.output_mtok, total_in) + reasoning,
        request=request,
        image=image,
    )
    return breakdown, free
