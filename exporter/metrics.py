"""The Prometheus metrics: their names (one place) and a custom collector over plain dicts.

A collector that yields metric families from dicts is several times cheaper per recorded call
than prometheus-client's labelled counters (no per-child lock or object), which is what lets one
process keep up with tens of thousands of spans a second. Each label set is one list holding its
cost, tokens by type, calls by status and exemplar (a dict entry per counter and type costs about
four times the memory at 100,000 label sets). Costs are summed as Decimal and become floats only
here, at the Prometheus boundary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

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
SERIES_OVERFLOW = "aispend_series_overflow"  # calls counted under a coarser label set past max_series
VALUES_CLAMPED = "aispend_values_clamped"

TOKEN_TYPES = ("input", "output", "cache_read", "cache_write", "reasoning")
STATUSES = ("ok", "error", "rate_limited")  # the values normalise gives a call's status
_STATUS = {status: i for i, status in enumerate(STATUSES)}
# one label set's series: [cost, tokens by TOKEN_TYPES..., calls by STATUSES..., exemplar trace id,
# exemplar value, exemplar time]
_TOKENS = 1
_CALLS = _TOKENS + len(TOKEN_TYPES)
_EXEMPLAR = _CALLS + len(STATUSES)
DURATION_LABELS = ("provider", "model", "operation", "status")
# GenAI semantic-convention buckets for gen_ai.client.operation.duration
BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)

LabelValues = tuple[str, ...]
BudgetSamples = Callable[[], Iterable[tuple[str, str, float, float]]]


class UsageMetrics:
    """In-memory counters, written by the pipeline under its lock and read by Prometheus."""

    def __init__(self, budget_samples: BudgetSamples | None = None) -> None:
        self.series: dict[LabelValues, list[Any]] = {}
        self.duration: dict[LabelValues, list[float]] = {}  # bucket counts..., sum, count
        self.unpriced: dict[LabelValues, int] = {}
        self.spans_received = 0
        self.rejected: dict[str, int] = {}
        self.deduplicated: dict[str, int] = {}
        self.clamped: dict[str, int] = {}
        self.overflow: Callable[[], dict[str, int]] = dict
        self.series_overflow: Callable[[], int] = int
        self.budget_samples = budget_samples

    # -- writing (pipeline) --------------------------------------------------------------------
    def add_call(
        self,
        labels: LabelValues,
        cost: Decimal,
        tokens: tuple[int, int, int, int, int],
        status: str,
        duration_key: LabelValues,
        duration: float,
        trace_id: bytes,
    ) -> None:
        """One call: ``tokens`` in TOKEN_TYPES order; ``trace_id`` becomes the cost's exemplar."""
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = _new_series()
        series[0] += cost
        for i, count in enumerate(tokens, _TOKENS):
            if count:
                series[i] += count
        series[_CALLS + _STATUS[status]] += 1
        if trace_id:
            series[_EXEMPLAR : _EXEMPLAR + 3] = trace_id, cost, time.time()
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
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = _new_series()
        series[0] += cost
        for i, token_type in enumerate(TOKEN_TYPES, _TOKENS):
            series[i] += tokens.get(token_type) or 0
        for status, count in requests.items():
            series[_CALLS + _STATUS[status]] += count or 0

    # -- views (tests and the JSON API read these; Prometheus reads collect()) --------------------
    @property
    def cost(self) -> dict[LabelValues, Decimal]:
        return {labels: s[0] for labels, s in list(self.series.items())}

    @property
    def tokens(self) -> dict[LabelValues, int]:
        return self._counts(TOKEN_TYPES, _TOKENS)

    @property
    def requests(self) -> dict[LabelValues, int]:
        return self._counts(STATUSES, _CALLS)

    def _counts(self, names: tuple[str, ...], first: int) -> dict[LabelValues, int]:
        """Nonzero counts by (*labels, name), from the series slots starting at ``first``."""
        return {
            (*labels, name): s[i]
            for labels, s in list(self.series.items())
            for i, name in enumerate(names, first)
            if s[i]
        }

    @staticmethod
    def bump(counter: dict[str, int], reason: str, n: int = 1) -> None:
        counter[reason] = counter.get(reason, 0) + n

    # -- reading (Prometheus) ------------------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        cost = CounterMetricFamily(COST, "Cost of AI, search and image API calls in USD.", labels=LABELS)
        tokens = CounterMetricFamily(TOKENS, "Tokens used, by type.", labels=(*LABELS, "type"))
        requests = CounterMetricFamily(REQUESTS, "Provider calls, by outcome.", labels=(*LABELS, "status"))
        for labels, series in list(self.series.items()):
            series = list(series)  # a consistent copy: the pipeline may be adding to it
            trace_id, value, when = series[_EXEMPLAR : _EXEMPLAR + 3]
            exemplar = Exemplar({"trace_id": trace_id.hex()}, float(value), when) if trace_id else None
            cost.add_metric(labels, float(series[0]), exemplar=exemplar)
            for i, token_type in enumerate(TOKEN_TYPES, _TOKENS):
                if series[i]:
                    tokens.add_metric((*labels, token_type), series[i])
            for i, status in enumerate(STATUSES, _CALLS):
                if series[i]:
                    requests.add_metric((*labels, status), series[i])
        yield cost
        yield tokens
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
        yield _counter(
            SERIES_OVERFLOW,
            "Calls counted with feature, customer and key __overflow__ because max_series label sets exist.",
            (),
            {(): self.series_overflow()},
        )
        yield _counter(VALUES_CLAMPED, "Attribute values cleaned or shortened.", ("reason",), _keyed(self.clamped))


_ZERO = Decimal(0)


def _new_series() -> list[Any]:
    return [_ZERO, *([0] * (len(TOKEN_TYPES) + len(STATUSES))), b"", 0.0, 0.0]


def _le(bound: float) -> str:
    return repr(float(bound))


def _keyed(counter: dict[str, int]) -> dict[LabelValues, int]:
    return {(k,): v for k, v in dict(counter).items()}


def _counter(name: str, doc: str, labels: tuple[str, ...], values: dict[LabelValues, int]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in values.items():
        family.add_metric(key, value)
    return family
