"""µs per price lookup for a mix of 1,000 model names; baseline: genai-prices' own calc_price.

Run: .venv/bin/python benchmarks/pricing.py   (target: median < 20 µs per lookup, warm cache)
"""

from __future__ import annotations

import random
import statistics
import time

from genai_prices import Usage, calc_price

from aispend.pricing import PriceEngine, UsageRecord

KNOWN = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4"),
    ("openai", "o3-mini"),
    ("anthropic", "claude-3-5-haiku-latest"),
    ("anthropic", "claude-sonnet-4-0"),
    ("gcp.gemini", "gemini-1.5-flash"),
    ("gcp.gemini", "gemini-2.5-pro"),
    ("openai", "text-embedding-3-small"),
    ("mistral_ai", "mistral-large-latest"),
]
DATED = [
    ("openai", "gpt-4o-2024-08-06"),
    ("openai", "gpt-4o-mini-2024-07-18"),
    ("anthropic", "claude-3-5-haiku-20241022"),
    ("anthropic", "claude-3-5-sonnet-20241022"),
    ("openai", "gpt-4-0613"),
]
PREFIXED = [
    ("openai", "openai/gpt-4o"),
    ("aws.bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0"),
    ("gcp.vertex_ai", "claude-3-5-sonnet-v2@20241022"),
    ("gcp.gemini", "models/gemini-1.5-flash"),
    ("serper", "search"),
    ("unsplash", "search-photos"),
]
UNKNOWN = [("openai", f"gpt-unknown-{i}") for i in range(5)] + [("acme", "in-house-llm")]


def workload(n: int = 1000, seed: int = 7) -> list[UsageRecord]:
    rng = random.Random(seed)
    pools = [KNOWN, DATED, PREFIXED, UNKNOWN]
    out = []
    for _ in range(n):
        provider, model = rng.choice(rng.choice(pools))
        out.append(
            UsageRecord(
                provider=provider,
                model=model,
                input_tokens=rng.randint(1, 50_000),
                output_tokens=rng.randint(1, 4_000),
                cache_read_tokens=0,
            )
        )
    return out


def per_call_us(fn, items, rounds: int = 7) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for item in items:
            fn(item)
        samples.append((time.perf_counter() - start) / len(items) * 1e6)
    return samples


def main() -> None:
    items = workload()
    engine = PriceEngine()
    start = time.perf_counter()
    for u in items:
        engine.price(u)
    cold = (time.perf_counter() - start) / len(items) * 1e6
    warm = per_call_us(engine.price, items)

    def library_only(u: UsageRecord):
        try:
            return calc_price(
                Usage(input_tokens=u.input_tokens, output_tokens=u.output_tokens), u.model, provider_id=None
            )
        except LookupError:
            return None

    baseline = per_call_us(library_only, items, rounds=3)
    matched = sum(engine.price(u).matched for u in items)
    print(
        f"workload: {len(items)} records, {len({(u.provider, u.model) for u in items})} distinct names, "
        f"{matched} priced, {len(items) - matched} unpriced"
    )
    print(f"aispend PriceEngine.price, first pass (cold caches): {cold:8.2f} µs/lookup")
    print(
        f"aispend PriceEngine.price, warm: median {statistics.median(warm):8.2f} µs/lookup "
        f"(min {min(warm):.2f}, max {max(warm):.2f})"
    )
    print(f"baseline genai_prices.calc_price:  median {statistics.median(baseline):8.2f} µs/lookup")
    print(f"ratio baseline / aispend warm: {statistics.median(baseline) / statistics.median(warm):.1f}x faster")
    print(f"target < 20 µs median: {'met' if statistics.median(warm) < 20 else 'NOT met'}")


if __name__ == "__main__":
    main()
