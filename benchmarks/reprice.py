"""Seconds to reprice N stored calls (plan + one-transaction apply) on SQLite; baseline: recording the
same N calls into the ledger, measured in the same run. Also the start-up cost of the price data:
validating and loading genai-prices' bundled data (what a cache of the same size costs at start and
on each SIGHUP).

Run: .venv/bin/python benchmarks/reprice.py [--calls 100000] [--ledger sqlite:///path | postgresql://...]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal

from aispend.exporter import reprice
from aispend.exporter.ledger import Accounting, open_ledger
from aispend.exporter.normalise import Call
from aispend.pricing import PriceEngine, pricedata

MODELS = [("openai", "gpt-4o-2024-08-06"), ("anthropic", "claude-3-5-haiku-20241022"), ("deepseek", "deepseek-chat")]
START_NS = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp()) * 10**9


def calls(n: int) -> list[Call]:
    out = []
    for i in range(n):
        provider, model = MODELS[i % len(MODELS)]
        out.append(
            Call(
                trace_id=i.to_bytes(16, "big"),
                span_id=i.to_bytes(8, "big"),
                parent_span_id=b"",
                start_ns=START_NS + i * 1_000_000_000,
                duration_s=0.5,
                service="bench",
                provider=provider,
                model=model,
                price_model=model,
                response_model=model,
                operation="chat",
                kind="llm",
                feature="f",
                customer=f"c{i % 50}",
                key="k",
                status="ok",
                error_type="",
                input_tokens=1000 + i % 997,
                output_tokens=200 + i % 101,
                requests=1,
                cost=Decimal("0.001"),
                priced=True,
                book_cost=Decimal("0.001"),
                cost_source="genai-prices@old",
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--ledger", help="default: a temporary SQLite file")
    args = parser.parse_args()

    t = time.perf_counter()
    bundled = pricedata.bundled()
    pricedata.validate(bundled.snapshot.providers)
    print(
        f"price data: validate genai-prices' bundled data ({bundled.providers} providers, {bundled.models} models): "
        f"{time.perf_counter() - t:.3f} s"
    )

    with tempfile.TemporaryDirectory() as tmp:
        ledger = open_ledger(args.ledger or f"sqlite:///{os.path.join(tmp, 'bench.sqlite')}")
        assert ledger is not None
        batch = calls(args.calls)
        t = time.perf_counter()
        accounting = Accounting(instance="bench")
        for i in range(0, len(batch), 1000):
            ledger.record(batch[i : i + 1000], accounting)
        record = time.perf_counter() - t
        engine = PriceEngine()
        t = time.perf_counter()
        plan = reprice.plan(ledger, engine, START_NS)
        planned = time.perf_counter() - t
        t = time.perf_counter()
        changed = reprice.apply(ledger, plan)
        applied = time.perf_counter() - t
        ledger.close()
    n = args.calls
    print(f"record {n:,} calls (ledger.record, batches of 1,000): {record:.2f} s  ({n / record:,.0f} calls/s)")
    print(f"reprice plan (read + price):  {planned:.2f} s  ({n / planned:,.0f} calls/s)")
    print(f"reprice apply ({changed:,} calls, one transaction): {applied:.2f} s  ({changed / applied:,.0f} calls/s)")
    print(f"reprice total / record: {(planned + applied) / record:.2f}x")


if __name__ == "__main__":
    main()
