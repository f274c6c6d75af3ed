"""The bound on metric series (issue 12, item 19): limits per label do not bound their product, so
the number of label sets is bounded too (``max_series``), the calls past it are counted coarser
and in ``aispend_series_overflow_total``, totals stay exact, and which values keep their own
series is the same before and after a restart."""

from __future__ import annotations

from decimal import Decimal

import grpc
import pytest

from aispend.exporter.config import ExporterConfig
from aispend.exporter.ledger import SQLiteLedger
from aispend.exporter.metrics import UsageMetrics
from aispend.exporter.pipeline import Pipeline
from aispend.pricing import PriceEngine
from tests.exporter.server import running, samples, scrape, value
from tests.exporter.spans import llm, otlp_request

ENGINE = PriceEngine()
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def call(feature: str, customer: str, tokens: int = 1000) -> dict:
    return llm("openai", "gpt-4o", tokens, 10, **{"aispend.feature": feature, "aispend.customer": customer})


def test_features_times_customers_under_their_label_limits_are_bounded_in_series(tmp_path):
    """40 features x 25 customers (each label far under its limit) are 1,000 label sets; with
    max_series=100, /metrics holds at most 100 + 10 + 1 of them and loses no cost."""
    spans = [call(f"f{f}", f"c{c}") for f in range(40) for c in range(25)]
    with running(ledger=f"sqlite:///{tmp_path / 'l.sqlite'}", max_series=100) as exporter:
        with grpc.insecure_channel(f"127.0.0.1:{exporter.ports['otlp_grpc']}") as channel:
            export = channel.unary_unary(EXPORT)
            for i in range(0, len(spans), 200):
                export(otlp_request(spans[i : i + 200]).SerializeToString(), timeout=30)
        text = scrape(exporter.ports["metrics"])
    cost = samples(text, "aispend_cost_usd_total")
    assert 100 < len(cost) <= 111, len(cost)
    assert value(text, "aispend_series_overflow_total") == 900
    assert value(text, "aispend_requests_total") == 1000
    one = value(text, "aispend_cost_usd_total", feature="f0", customer="c0")
    assert sum(cost.values()) == pytest.approx(one * 1000, rel=1e-12)  # no cost lost, only coarser
    coarse = {labels for labels in cost if ("customer", "__overflow__") in labels}
    assert coarse and all(("model", "gpt-4o") in labels and ("feature", "__overflow__") in labels for labels in coarse)


def _pipeline(path, **config) -> tuple[Pipeline, UsageMetrics]:
    metrics = UsageMetrics()
    pipeline = Pipeline(ExporterConfig(**config), ENGINE, SQLiteLedger(str(path)), metrics)
    pipeline.restore()
    return pipeline, metrics


def _kept(metrics: UsageMetrics, index: int) -> set[str]:
    return {labels[index] for labels in metrics.cost}


def test_which_customers_keep_their_series_is_the_same_after_a_restart(tmp_path):
    """customer=3: c5, c4, c3 arrive first and keep their series; c1 spends the most but arrives
    last. Before the fix the restore admitted in the ledger's GROUP BY order ({c1, c2, c3})."""
    path = tmp_path / "l.sqlite"
    before, metrics = _pipeline(path, label_limits={"customer": 3})
    for customer, tokens in (("c5", 10), ("c4", 20), ("c3", 30), ("c2", 40), ("c1", 5000)):
        before.export(otlp_request([call("chat", customer, tokens)]))
    kept = _kept(metrics, 5)
    assert kept == {"c5", "c4", "c3", "__overflow__"}
    cost = dict(metrics.cost)
    before.ledger.close()
    for _ in range(2):  # and again: each restart gives the same series with the same values
        after, restored = _pipeline(path, label_limits={"customer": 3})
        assert _kept(restored, 5) == kept and dict(restored.cost) == cost
        after.ledger.close()


def test_which_label_sets_keep_their_series_is_the_same_after_a_restart(tmp_path):
    path = tmp_path / "l.sqlite"
    before, metrics = _pipeline(path, max_series=4)
    order = [("f9", "c9"), ("f1", "c8"), ("f5", "c1"), ("f2", "c2"), ("f0", "c0"), ("f3", "c7"), ("f9", "c1")]
    for i, (feature, customer) in enumerate(order):
        before.export(otlp_request([call(feature, customer, 10 * (len(order) - i))]))
    kept = set(metrics.cost)
    assert {(labels[4], labels[5]) for labels in kept} == {*order[:4], ("__overflow__", "__overflow__")}
    assert before.bounds.series_overflows == 3
    cost = dict(metrics.cost)
    total = sum(cost.values(), Decimal(0))
    before.ledger.close()
    after, restored = _pipeline(path, max_series=4)
    assert set(restored.cost) == kept and dict(restored.cost) == cost
    assert sum(restored.cost.values(), Decimal(0)) == total
    assert after.bounds.series_overflows == 0  # counted when the calls came, not again at restore
    after.export(otlp_request([call("f4", "c4")]))  # a new label set still goes to the coarse one
    assert set(restored.cost) == kept and after.bounds.series_overflows == 1


def test_max_series_is_a_setting():
    assert ExporterConfig().max_series == 5000
    assert ExporterConfig.load({"max_series": "200"}, environ={}).max_series == 200
    assert ExporterConfig.load({}, environ={"AISPEND_MAX_SERIES": "0"}).max_series == 0
