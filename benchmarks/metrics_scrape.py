"""Seconds and bytes per /metrics scrape for the issue-12 workload (features x customers, each
label under its own limit), with the default ``max_series`` bound and without it; the ratio is
against the shipped 4 s scrape timeout (prometheus/prometheus.yml).

Run: .venv/bin/python benchmarks/metrics_scrape.py [--features 1000] [--customers 300]

Without the bound the workload is features x customers label sets; the unbounded scrape is
measured on a tenth of the customers (a full one takes minutes on a loaded machine) and scaled,
which is fair because a scrape's cost is linear in the series it writes.
"""

from __future__ import annotations

import argparse
import time
from decimal import Decimal

from prometheus_client import CollectorRegistry, generate_latest

from aispend.exporter.config import DEFAULT_LABEL_LIMITS, LABELS, ExporterConfig
from aispend.exporter.labels import LabelBounds
from aispend.exporter.metrics import UsageMetrics

COST, TOKENS = Decimal("0.0123"), (1000, 200, 0, 0, 0)
SCRAPE_TIMEOUT_S = 4.0  # prometheus/prometheus.yml, job aispend


def fill(features: int, customers: int, max_series: int) -> tuple[UsageMetrics, LabelBounds]:
    """One call per (feature, customer), through the label bound the pipeline uses."""
    metrics = UsageMetrics()
    limits = {**DEFAULT_LABEL_LIMITS, "feature": features + 1, "customer": customers + 1}
    bounds = LabelBounds(limits, max_series, LABELS)
    metrics.series_overflow = lambda: bounds.series_overflows
    for f in range(features):
        for c in range(customers):
            labels = bounds.series(("app", "openai", "gpt-4o", "chat", f"feature-{f}", f"customer-{c}", "sk-…a1b2"))
            metrics.add_call(labels, COST, TOKENS, "ok", ("openai", "gpt-4o", "chat", "ok"), 0.5, b"\1" * 16)
    return metrics, bounds


def scrape(metrics: UsageMetrics, repeat: int = 3) -> tuple[float, int]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    best, size = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        size = len(generate_latest(registry))
        best = min(best, time.perf_counter() - start)
    return best, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=300)
    args = parser.parse_args()
    default = ExporterConfig().max_series
    bounded, bounds = fill(args.features, args.customers, default)
    seconds, size = scrape(bounded)
    sample = max(1, args.customers // 10)
    unbounded, _ = fill(args.features, sample, 0)
    part_seconds, part_size = scrape(unbounded, repeat=1)
    scale = args.customers / sample
    print(f"workload: {args.features} features x {args.customers} customers = {args.features * args.customers} calls")
    print(
        f"max_series={default}: {len(bounded.series)} label sets, {size / 1e6:.1f} MB, scrape {seconds:.2f} s "
        f"({seconds / SCRAPE_TIMEOUT_S:.0%} of the {SCRAPE_TIMEOUT_S:g} s timeout); "
        f"{bounds.series_overflows} calls counted coarser"
    )
    print(
        f"no bound:  {args.features * args.customers} label sets, ~{part_size * scale / 1e6:.0f} MB, scrape "
        f"~{part_seconds * scale:.1f} s ({part_seconds * scale / SCRAPE_TIMEOUT_S:.1f}x the timeout; measured on "
        f"{args.features * sample} label sets: {part_seconds:.2f} s)"
    )
    print(f"ratio: the bounded scrape takes {seconds / (part_seconds * scale):.3f} of the unbounded one")


if __name__ == "__main__":
    main()
