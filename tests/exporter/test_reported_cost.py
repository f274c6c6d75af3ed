"""Provider-reported cost wins; the price book's figure is kept beside it; unpriced calls say why.

Every ledger test here runs on SQLite and on a real PostgreSQL server (``ledger_url``).
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal

from prometheus_client import generate_latest

from aispend.exporter.config import ExporterConfig
from aispend.exporter.ledger import Filters, Ledger, open_ledger
from aispend.exporter.metrics import UsageMetrics
from aispend.exporter.pipeline import Pipeline
from aispend.pricing import PriceEngine
from tests.exporter.spans import llm, otlp_request

ENGINE = PriceEngine()
# gpt-4: $30 / $60 per 1M tokens, so 150 in + 75 out = $0.009 by the book
BOOK = Decimal("0.009")


def reported(amount: float, currency: str = "USD", source: str = "provider") -> dict[str, object]:
    return {
        "gen_ai.usage.cost.amount": amount,
        "gen_ai.usage.cost.currency": currency,
        "gen_ai.usage.cost.source": source,
    }


def pipeline_on(url: str) -> tuple[Pipeline, UsageMetrics, Ledger]:
    ledger = open_ledger(url)
    assert ledger is not None
    metrics = UsageMetrics()
    return Pipeline(ExporterConfig(), ENGINE, ledger, metrics), metrics, ledger


def rows(ledger: Ledger) -> list[tuple]:
    return ledger._read("SELECT model, cost_nusd, book_cost_nusd, cost_source, priced FROM calls ORDER BY id")


def test_a_provider_reported_cost_is_what_the_call_costs(ledger_url):
    pipeline, metrics, ledger = pipeline_on(ledger_url)
    pipeline.export(otlp_request([llm("openai", "gpt-4", 150, 75, **reported(0.00905))]))
    assert sum(metrics.cost.values()) == Decimal("0.00905")
    assert rows(ledger) == [("gpt-4", 9_050_000, 9_000_000, "provider", 1)]
    assert ledger.summary(Filters(), [])[0]["cost_nusd"] == 9_050_000
    assert metrics.cost_mismatch == {}  # 0.56 % apart: within 1 %
    call = ledger.calls(Filters(), 1)[0]
    assert (call["cost_nusd"], call["book_cost_nusd"], call["cost_source"]) == (9_050_000, 9_000_000, "provider")
    ledger.close()


def test_reported_and_book_more_than_one_percent_apart_are_counted(ledger_url):
    pipeline, metrics, ledger = pipeline_on(ledger_url)
    pipeline.export(
        otlp_request(
            [
                llm("openai", "gpt-4", 150, 75, **reported(0.0095)),  # 5.6 % above the book
                llm("openai", "gpt-4", 150, 75, **reported(0.009)),  # the same
                llm("openai", "in-house-model", 150, 75, **reported(0.001)),  # the book has no price
            ]
        )
    )
    assert metrics.cost_mismatch == {("openai", "gpt-4"): 1, ("openai", "in-house-model"): 1}
    assert metrics.unpriced == {}
    assert sum(metrics.cost.values()) == Decimal("0.0195")
    assert rows(ledger)[2] == ("in-house-model", 1_000_000, 0, "provider", 1)
    text = generate_latest(_registry(metrics)).decode()
    assert 'aispend_cost_mismatch_total{model="gpt-4",provider="openai"} 1.0' in text
    ledger.close()
    again, restored, ledger = pipeline_on(ledger_url)
    again.restore()  # a restart resets nothing
    assert restored.cost_mismatch == metrics.cost_mismatch
    ledger.close()


def test_local_and_non_usd_figures_do_not_replace_the_price_book():
    pipeline, metrics, ledger = pipeline_on("sqlite:///:memory:")
    pipeline.export(
        otlp_request(
            [
                llm("openai", "gpt-4", 150, 75, **{"gen_ai.usage.cost": 0.5}),  # OpenLIT's own (local) price
                llm("openai", "gpt-4", 150, 75, **reported(0.5, source="local")),
                llm("openai", "gpt-4", 150, 75, **reported(0.5, currency="EUR")),
            ]
        )
    )
    assert sum(metrics.cost.values()) == 3 * BOOK
    assert {r[3] for r in rows(ledger)} == {"genai-prices"}
    assert metrics.cost_mismatch == {}


def test_a_bad_reported_cost_rejects_the_span_not_the_batch():
    pipeline, metrics, _ = pipeline_on("sqlite:///:memory:")
    result = pipeline.export(
        otlp_request([llm("openai", "gpt-4", 150, 75, **reported(-1.0)), llm("openai", "gpt-4", 150, 75)])
    )
    assert (result.recorded, result.rejected) == (1, 1)
    assert metrics.rejected == {"bad_cost": 1}


def test_unpriced_calls_carry_a_reason_and_keep_it_across_a_restart(ledger_url):
    pipeline, metrics, ledger = pipeline_on(ledger_url)
    no_usage = llm("openai", "gpt-4", 0, 0)
    del no_usage["gen_ai.usage.input_tokens"], no_usage["gen_ai.usage.output_tokens"]
    pipeline.export(otlp_request([llm("openai", "gpt-9-ultra", 10, 10), no_usage, no_usage]))
    assert metrics.unpriced == {("openai", "gpt-9-ultra", "no_price"): 1, ("openai", "gpt-4", "no_usage"): 2}
    assert [r[3] for r in rows(ledger)] == ["no_price", "no_usage", "no_usage"]
    ledger.close()
    again, restored, ledger = pipeline_on(ledger_url)
    again.restore()
    assert restored.unpriced == metrics.unpriced
    text = generate_latest(_registry(restored)).decode()
    assert 'aispend_unpriced_requests_total{model="gpt-4",provider="openai",reason="no_usage"} 2.0' in text
    ledger.close()


def test_a_ledger_from_before_gains_the_new_columns(tmp_path, postgres):
    """An older ledger (no book_cost_nusd / cost_source / unpriced_no_usage) is migrated at start:
    older calls' book cost is their cost."""
    import psycopg

    old_calls = (
        "CREATE TABLE calls ({id}, ts_ns {i} NOT NULL, day TEXT NOT NULL, duration_s {r} NOT NULL, service TEXT "
        "NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL, operation TEXT NOT NULL, feature TEXT NOT NULL, "
        "customer TEXT NOT NULL, key TEXT NOT NULL, response_model TEXT NOT NULL, kind TEXT NOT NULL, status TEXT "
        "NOT NULL, error_type TEXT NOT NULL, input_tokens {i} NOT NULL, output_tokens {i} NOT NULL, "
        "cache_read_tokens {i} NOT NULL, cache_write_tokens {i} NOT NULL, reasoning_tokens {i} NOT NULL, requests "
        "{i} NOT NULL, images {i} NOT NULL, cost_nusd {i} NOT NULL, priced {i} NOT NULL, estimated {i} NOT NULL, "
        "free_units {i} NOT NULL, trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT NOT NULL, "
        "response_id TEXT NOT NULL)"
    )
    insert = (
        "INSERT INTO calls (ts_ns, day, duration_s, service, provider, model, operation, feature, customer, key, "
        "response_model, kind, status, error_type, input_tokens, output_tokens, cache_read_tokens, "
        "cache_write_tokens, reasoning_tokens, requests, images, cost_nusd, priced, estimated, free_units, trace_id, "
        "span_id, parent_span_id, response_id) VALUES (1, '1970-01-01', 0.1, 'app', 'openai', 'gpt-4', 'chat', '', "
        "'', '', '', 'llm', 'ok', '', 150, 75, 0, 0, 0, 1, 0, 9000000, 1, 0, 0, 'aa', 'bb', '', '')"
    )
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(old_calls.format(id="id INTEGER PRIMARY KEY", i="INTEGER", r="REAL"))
    conn.execute(insert)
    conn.commit()
    conn.close()
    pg = postgres.create_database("migrated")
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(old_calls.format(id="id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", i="BIGINT", r="REAL"))
        conn.execute(insert)
    for url in (f"sqlite:///{path}", pg):
        pipeline, _, ledger = pipeline_on(url)
        assert rows(ledger) == [("gpt-4", 9_000_000, 9_000_000, "", 1)]
        pipeline.export(otlp_request([llm("openai", "gpt-4", 150, 75, **reported(0.01))]))
        assert rows(ledger)[1] == ("gpt-4", 10_000_000, 9_000_000, "provider", 1)
        ledger.close()
        _, _, ledger = pipeline_on(url)  # a second start finds nothing to add
        assert len(rows(ledger)) == 2
        ledger.close()


def _registry(metrics: UsageMetrics):
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    return registry
