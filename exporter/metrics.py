"""The Prometheus metrics: their names (one place) and a custom collector over plain dicts.

A collector that yields metric families from dicts is several times cheaper per recorded call
than prometheus-client's labelled counters (no per-child lock or object), which is what lets one
process keep up with tens of thousands of spans a second. Costs are summed as Decimal and become
floats only here, at the Prometheus boundary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.samples import Exemplar

from aispend.exporter.config import LABELS

COST = "aispend_cost_usd"  # exposed as aispend_cost_usd_total
TOKENS = "aispend_tokens"
REQUESTS = "aispend_requests"
DURATION = "aispend_request_duration_seconds"
UNPRICED = "aispend_unpriced_requests"
BUDGET_SPEND = "aispend_budget_spend_usd"
BUDGET_LIMIT = "aispend_budget_limit_usd"
SPANS_RECEIVED = "aispend_spans_received"
SPANS_REJECTED = "aispend_spans_rejected"
SPANS_DEDUPLICATED = "aispend_spans_deduplicated"
LABEL_OVERFLOW = "aispend_label_overflow"
VALUES_CLAMPED = "aispend_values_clamped"

TOKEN_TYPES = ("input", "output", "cache_read", "cache_write", "reasoning")
DURATION_LABELS = ("provider", "model", "operation", "status")
# GenAI semantic-convention buckets for gen_ai.client.operation.duration
BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)

LabelValues = tuple[str, ...]
BudgetSamples = Callable[[], Iterable[tuple[str, str, float, float]]]


class UsageMetrics:
    """In-memory counters, written by the pipeline under its lock and read by Prometheus."""

    def __init__(self, budget_samples: BudgetSamples | None = None) -> None:
        self.cost: dict[LabelValues, Decimal] = {}
        self.tokens: dict[LabelValues, int] = {}
        self.requests: dict[LabelValues, int] = {}
        self.exemplars: dict[LabelValues, tuple[str, float, float]] = {}
        self.duration: dict[LabelValues, list[float]] = {}  # bucket counts..., sum, count
        self.unpriced: dict[LabelValues, int] = {}
        self.spans_received = 0
        self.rejected: dict[str, int] = {}
        self.deduplicated: dict[str, int] = {}
        self.clamped: dict[str, int] = {}
        self.overflow: Callable[[], dict[str, int]] = dict
        self.budget_samples = budget_samples

    # -- writing (pipeline) --------------------------------------------------------------------
    def add_call(
        self,
        labels: LabelValues,
        cost: Decimal,
        tokens: Iterable[tuple[str, int]],
        status: str,
        duration_key: LabelValues,
        duration: float,
        trace_id: str,
    ) -> None:
        self.cost[labels] = self.cost.get(labels, _ZERO) + cost
        for token_type, count in tokens:
            if count:
                key = (*labels, token_type)
                self.tokens[key] = self.tokens.get(key, 0) + count
        rkey = (*labels, status)
        self.requests[rkey] = self.requests.get(rkey, 0) + 1
        if trace_id:
            self.exemplars[labels] = (trace_id, float(cost), time.time())
        self.observe_duration(duration_key, duration)

    def observe_duration(self, key: LabelValues, seconds: float) -> None:
        hist = self.duration.get(key)
        if hist is None:
            hist = self.duration[key] = [0.0] * (len(BUCKETS) + 2)
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                hist[i] += 1
                break
        hist[-2] += seconds
        hist[-1] += 1

    def restore_duration(self, key: LabelValues, seconds: float, buckets: list[int]) -> None:
        """The histogram as the ledger left it: calls per bucket (the last one: longer than every
        bound), and their total seconds."""
        hist = self.duration.get(key)
        if hist is None:
            hist = self.duration[key] = [0.0] * (len(BUCKETS) + 2)
        for i, count in enumerate(buckets[: len(BUCKETS)]):
            hist[i] += count
        hist[-2] += seconds
        hist[-1] += sum(buckets)

    def restore(self, labels: LabelValues, cost: Decimal, tokens: dict[str, int], requests: dict[str, int]) -> None:
        """Counters as the ledger left them, so a restart resets nothing Prometheus saw."""
        self.cost[labels] = self.cost.get(labels, _ZERO) + cost
        for token_type, count in tokens.items():
            if count:
                key = (*labels, token_type)
                self.tokens[key] = self.tokens.get(key, 0) + count
        for status, count in requests.items():
            if count:
                key = (*labels, status)
                self.requests[key] = self.requests.get(key, 0) + count

    @staticmethod
    def bump(counter: dict[str, int], reason: str, n: int = 1) -> None:
        counter[reason] = counter.get(reason, 0) + n

    # -- reading (Prometheus) ------------------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        cost = CounterMetricFamily(COST, "Cost of AI, search and image API calls in USD.", labels=LABELS)
        exemplars = dict(self.exemplars)
        for labels, value in dict(self.cost).items():
            ex = exemplars.get(labels)
            exemplar = Exemplar({"trace_id": ex[0]}, ex[1], ex[2]) if ex else None
            cost.add_metric(labels, float(value), exemplar=exemplar)
        yield cost

        tokens = CounterMetricFamily(TOKENS, "Tokens used, by type.", labels=(*LABELS, "type"))
        for labels, value in dict(self.tokens).items():
            tokens.add_metric(labels, value)
        yield tokens

        requests = CounterMetricFamily(REQUESTS, "Provider calls, by outcome.", labels=(*LABELS, "status"))
        for labels, value in dict(self.requests).items():
            requests.add_metric(labels, value)
        yield requests

        hist = HistogramMetricFamily(DURATION, "Duration of provider calls.", labels=DURATION_LABELS)
        for labels, values in dict(self.duration).items():
            buckets, running = [], 0.0
            for bound, count in zip(BUCKETS, values, strict=False):
                running += count
                buckets.append((_le(bound), running))
            buckets.append(("+Inf", values[-1]))
            hist.add_metric(labels, buckets, values[-2])
        yield hist

        unpriced = CounterMetricFamily(
            UNPRICED, "Calls no price matched (their cost is counted as 0).", labels=("provider", "model")
        )
        for labels, value in dict(self.unpriced).items():
            unpriced.add_metric(labels, value)
        yield unpriced

        if self.budget_samples is not None:
            spend = GaugeMetricFamily(BUDGET_SPEND, "Budget spend this calendar period.", labels=("budget", "period"))
            limit = GaugeMetricFamily(BUDGET_LIMIT, "Budget limit for the period.", labels=("budget", "period"))
            for name, period, spent, limited in self.budget_samples():
                spend.add_metric((name, period), spent)
                limit.add_metric((name, period), limited)
            yield spend
            yield limit

        yield _counter(SPANS_RECEIVED, "Spans received over OTLP.", (), {(): self.spans_received})
        yield _counter(SPANS_REJECTED, "Spans rejected, by reason.", ("reason",), _keyed(self.rejected))
        yield _counter(
            SPANS_DEDUPLICATED, "Spans not counted because the call was seen.", ("reason",), _keyed(self.deduplicated)
        )
        yield _counter(LABEL_OVERFLOW, "Label values replaced by __overflow__.", ("label",), _keyed(self.overflow()))
        yield _counter(VALUES_CLAMPED, "Attribute values cleaned or shortened.", ("reason",), _keyed(self.clamped))


_ZERO = Decimal(0)


def _le(bound: float) -> str:
    return repr(float(bound))


def _keyed(counter: dict[str, int]) -> dict[LabelValues, int]:
    return {(k,): v for k, v in dict(counter).items()}


def _counter(name: str, doc: str, labels: tuple[str, ...], values: dict[LabelValues, int]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in values.items():
        family.add_metric(key, value)
    return family
