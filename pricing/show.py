"""Text for ``aispend prices``: the unit prices that apply to a model and what a call costs."""

from __future__ import annotations

from decimal import Decimal

from aispend.pricing.records import Price, PriceResult, TieredPrice, UsageRecord


def _fmt_price(price: Price | None) -> str:
    if price is None:
        return "-"
    if isinstance(price, TieredPrice):
        tiers = ", ".join(f"${t.price} above {t.above:,} input tokens" for t in price.tiers)
        return f"${price.base} ({tiers})"
    return f"${price}"


def money(amount: Decimal) -> str:
    """USD with enough places to show sub-cent costs exactly (at least 6)."""
    exponent = amount.normalize().as_tuple().exponent
    places = max(6, -exponent) if isinstance(exponent, int) else 6
    return f"${amount:.{places}f}"


def describe(usage: UsageRecord, result: PriceResult) -> str:
    lines = [f"model:     {usage.model}  (provider: {usage.provider or '-'})"]
    if not result.matched or result.rates is None:
        lines.append("price:     no price found (the call would be counted as unpriced, cost $0)")
        return "\n".join(lines)
    rates = result.rates
    lines.append(f"matched:   {result.provider_id}/{result.model_id}  (source: {result.source})")
    if rates.has_token_prices:
        lines += [
            "per 1M tokens:",
            f"  input        {_fmt_price(rates.input_mtok)}",
            f"  output       {_fmt_price(rates.output_mtok)}",
            f"  cache read   {_fmt_price(rates.cache_read_mtok)}",
            f"  cache write  {_fmt_price(rates.cache_write_mtok)}",
        ]
        if rates.reasoning_mtok is not None:
            lines.append(f"  reasoning    {_fmt_price(rates.reasoning_mtok)}")
    if rates.per_request:
        lines.append(f"per request: ${rates.per_request}")
    if rates.free_tier is not None:
        lines.append(f"free tier:   {rates.free_tier.units:,} requests per key ({rates.free_tier.period})")
    if rates.per_image:
        lines.append("per image:")
        for size, by_quality in rates.per_image.items():
            qualities = ", ".join(f"{q}: ${p}" for q, p in by_quality.items())
            lines.append(f"  {size:<10} {qualities}")
    if result.discount:
        lines.append(f"discount:  {result.discount * 100}%")
    b = result.breakdown
    lines.append(
        f"cost:      {money(result.cost)}  (input {money(b.input)}, cache read {money(b.cache_read)}, "
        f"cache write {money(b.cache_write)}, output {money(b.output)}, requests {money(b.request)}, "
        f"images {money(b.image)})"
    )
    if result.free_units:
        lines.append(f"free:      {result.free_units} request unit(s) inside the free tier")
    return "\n".join(lines)
