"""The ledger's behaviour, the same on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import pytest

from aispend.exporter.config import ExporterConfig
from aispend.exporter.ledger import (
    Filters,
    Ledger,
    LedgerError,
    SQLiteLedger,
    open_ledger,
    redacted,
)
from aispend.exporter.metrics import UsageMetrics
from aispend.exporter.pipeline import Pipeline, RetryableError
from aispend.pricing import PriceEngine
from tests.exporter.spans import NOW_NS, llm, otlp_request, stored_call
from tests.support.postgres import PostgresServer

ENGINE = PriceEngine()
DAY_NS = 86_400 * 1_000_000_000


def pipeline_on(url: str) -> tuple[Pipeline, UsageMetrics, Ledger]:
    ledger = open_ledger(url)
    assert ledger is not None
    metrics = UsageMetrics()
    return Pipeline(ExporterConfig(), ENGINE, ledger, metrics), metrics, ledger


BATCH = [
    {"duration": 300_000_000, **llm("openai", "gpt-4", 150, 75, **{"aispend.customer": "acme"})},
    {"duration": 3_000_000_000, **llm("anthropic", "claude-3-5-haiku-20241022", 1_000_000, 0)},
    {"duration": 100_000_000_000, **llm("openai", "no-such-model", 10, 10)},  # unpriced; over every bucket
    {
        "gen_ai.provider.name": "serper",
        "gen_ai.operation.name": "search",
        "aispend.service.kind": "search",
        "aispend.key": "serper-prod",
        "aispend.usage.requests": 3,
    },
]


def test_exact_totals_restore_and_reports(ledger_url):
    pipeline, metrics, ledger = pipeline_on(ledger_url)
    assert pipeline.export(otlp_request(BATCH)).recorded == 4
    total = sum(metrics.cost.values(), Decimal(0))
    assert total == Decimal("0.809")  # gpt-4 0.009 + haiku 0.80; serper's 3 queries are in its free tier
    ledger.close()

    again, restored, ledger = pipeline_on(ledger_url)
    again.restore()
    assert restored.cost == metrics.cost and restored.tokens == metrics.tokens
    assert restored.requests == metrics.requests and restored.unpriced == metrics.unpriced
    assert restored.duration == metrics.duration  # buckets, sum and count, per (provider, model, op, status)
    assert again.export(otlp_request(BATCH)).duplicates == 0  # fresh ids: new calls
    rows = ledger.summary(Filters(), ["provider"])
    by_provider = {r["provider"]: r for r in rows}
    assert by_provider["openai"]["calls"] == 4 and by_provider["openai"]["cost_nusd"] == 18_000_000
    assert by_provider["anthropic"]["input_tokens"] == 2_000_000
    assert ledger.units_used("serper", "serper-prod", None) == 6
    assert ledger.spend_since(NOW_NS - DAY_NS, {"customer": ["acme"]}) == Decimal("0.018")
    calls = ledger.calls(Filters(equals={"provider": "anthropic"}), limit=10)
    assert [c["cost_nusd"] for c in calls] == [800_000_000, 800_000_000]
    assert ledger.free_units_used("serper", "serper-prod", "") == 6  # a lifetime tier
    ledger.close()


def test_a_failed_batch_records_nothing(ledger_url):
    pipeline, metrics, ledger = pipeline_on(ledger_url)
    # an integer past 64 bits cannot be stored by either backend: the whole batch is refused
    bad = llm("openai", "gpt-4", 150, 75, **{"aispend.usage.requests": 1})
    calls_before = ledger.summary(Filters(), [])
    original = ledger.record

    def write_with_overflow(calls, acc):
        calls[-1].free_units = 2**70
        return original(calls, acc)

    ledger.record = write_with_overflow  # type: ignore[method-assign]
    with pytest.raises(RetryableError):
        pipeline.export(otlp_request([llm("openai", "gpt-4", 150, 75), bad]))
    assert ledger.summary(Filters(), []) == calls_before == []
    assert metrics.cost == {}
    del ledger.record
    assert pipeline.export(otlp_request([llm("openai", "gpt-4", 150, 75)])).recorded == 1
    assert ledger.summary(Filters(), [])[0]["calls"] == 1
    ledger.close()


def test_retention_keeps_daily_aggregates(ledger_url):
    pipeline, _, ledger = pipeline_on(ledger_url)
    old = NOW_NS - 40 * DAY_NS
    pipeline.export(otlp_request([{"start": old, **llm("openai", "gpt-4", 150, 75)}, llm("openai", "gpt-4", 150, 75)]))
    assert ledger.prune(30, NOW_NS) == 1
    assert ledger.summary(Filters(), [])[0]["calls"] == 1  # the per-call log
    assert ledger.summary(Filters(), [], from_daily=True)[0]["calls"] == 2  # all time
    assert ledger.summary(Filters(), [], from_daily=True)[0]["cost_nusd"] == 18_000_000
    ledger.close()


def test_budget_overrides(ledger_url):
    ledger = open_ledger(ledger_url)
    ledger.set_budget_override("team-a", "25.50", None)
    ledger.set_budget_override("team-a", None, 1234)  # a reset keeps the amount
    ledger.set_budget_override("team-b", None, 99)
    assert ledger.budget_overrides() == {"team-a": ("25.50", 1234), "team-b": (None, 99)}
    ledger.close()


def test_postgres_outage_is_retryable_and_recovers():
    server = PostgresServer().start()
    try:
        pipeline, metrics, ledger = pipeline_on(server.create_database("outage"))
        assert pipeline.export(otlp_request([llm("openai", "gpt-4", 150, 75)])).recorded == 1
        server.stop(remove=False)
        request = otlp_request([llm("openai", "gpt-4", 150, 75)])
        with pytest.raises(RetryableError, match=r"ledger write to postgresql://aispend@127\.0\.0\.1"):
            pipeline.export(request)
        assert sum(metrics.cost.values(), Decimal(0)) == Decimal("0.009")  # nothing applied
        with pytest.raises(LedgerError, match=r"ledger query on postgresql://aispend@127\.0\.0\.1"):
            ledger.budget_overrides()  # reads fail the same way, never with a driver error
        server.start()  # the database is back: the sender's retry lands, on a new connection
        assert pipeline.export(request).recorded == 1
        assert sum(metrics.cost.values(), Decimal(0)) == Decimal("0.018")
        assert ledger.summary(Filters(), [])[0]["calls"] == 2

        # A restart nobody noticed: the first statement on the dropped connection is the free-tier
        # lookup made while pricing; it runs again on a new connection, so the call stays priced.
        server.stop(remove=False)
        server.start()
        assert pipeline.export(otlp_request([BATCH[3]])).recorded == 1
        assert metrics.unpriced == {} and ledger.units_used("serper", "serper-prod", None) == 3
        ledger.close()
    finally:
        server.stop()


def test_unreachable_postgres_names_the_host_never_the_password():
    with pytest.raises(ValueError) as err:
        open_ledger("postgresql://aispend:s3cret-pw@127.0.0.1:9/ledger")
    assert "127.0.0.1" in str(err.value) and "s3cret-pw" not in str(err.value)


def test_sqlite_ledger_from_before_the_histogram_gains_its_table(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE daily (day TEXT NOT NULL, service TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL, "
        "operation TEXT NOT NULL, feature TEXT NOT NULL, customer TEXT NOT NULL, key TEXT NOT NULL, "
        "status TEXT NOT NULL, calls INTEGER NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, "
        "cache_read_tokens INTEGER NOT NULL, cache_write_tokens INTEGER NOT NULL, "
        "reasoning_tokens INTEGER NOT NULL, requests INTEGER NOT NULL, images INTEGER NOT NULL, "
        "cost_nusd INTEGER NOT NULL, unpriced INTEGER NOT NULL, duration_s REAL NOT NULL, "
        "PRIMARY KEY (day, service, provider, model, operation, feature, customer, key, status))"
    )
    conn.close()
    pipeline = Pipeline(ExporterConfig(), ENGINE, SQLiteLedger(str(path)), UsageMetrics())
    assert pipeline.export(otlp_request([llm("openai", "gpt-4", 150, 75)])).recorded == 1
    rows = sqlite3.connect(path).execute("SELECT provider, bucket, calls FROM durations").fetchall()
    assert rows == [("openai", 6, 1)]  # 0.5 s: at most 0.64 s, BUCKETS[6]


def test_urls_in_messages_are_redacted():
    assert redacted("postgresql://aispend:s3cret@db:5432/ledger") == "postgresql://aispend:***@db:5432/ledger"
    assert redacted("sqlite:///var/lib/aispend.sqlite") == "sqlite:///var/lib/aispend.sqlite"


def test_daily_totals_filtered_by_time_range(ledger_url):
    pipeline, _, ledger = pipeline_on(ledger_url)
    old = NOW_NS - 10 * DAY_NS
    pipeline.export(otlp_request([{"start": old, **llm("openai", "gpt-4", 150, 75)}, llm("openai", "gpt-4", 150, 75)]))
    recent = ledger.summary(Filters(since_ns=NOW_NS - DAY_NS), [], from_daily=True)
    assert recent[0]["calls"] == 1
    before = ledger.summary(Filters(until_ns=NOW_NS - 5 * DAY_NS), [], from_daily=True)
    assert before[0]["calls"] == 1
    assert (
        ledger.summary(Filters(since_ns=old - DAY_NS, until_ns=NOW_NS + DAY_NS), [], from_daily=True)[0]["calls"] == 2
    )
    ledger.close()


def test_a_ledger_from_before_instances_is_upgraded_and_adopted_once(tmp_path):
    """A v1 ledger (no instance column, no unique span index, a double-counted span): the upgrade
    keeps one copy, the first replica takes the old rows into its counters, a retry of an old span
    is a duplicate, and a later start does not scan for unowned rows again."""
    from aispend.exporter.ledger import CALL_COLUMNS, DAILY_KEY, SUM_COLUMNS

    new = {"instance", "rank", "book_cost_nusd", "cost_source"}
    new_sums = {"unpriced_no_usage", "cost_mismatch", "repriced_nusd", "repriced_unpriced"}
    calls = [c for c in CALL_COLUMNS if c not in new]
    sums = [c for c in SUM_COLUMNS if c not in new_sums]
    key = [c for c in DAILY_KEY if c != "instance"]
    path = tmp_path / "v1.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(f"CREATE TABLE calls (id INTEGER PRIMARY KEY, {', '.join(calls)})")
    conn.execute(f"CREATE TABLE daily ({', '.join(key + sums)}, PRIMARY KEY ({', '.join(key)}))")
    row = stored_call(customer="acme", trace_id="ab" * 16, span_id="cd" * 8)
    for _ in range(2):  # the old replica bug: one span recorded twice
        conn.execute(
            f"INSERT INTO calls ({', '.join(calls)}) VALUES ({', '.join('?' * len(calls))})", [row[c] for c in calls]
        )
    daily = dict.fromkeys(key + sums, 0)
    # the old daily totals counted both copies
    daily.update(
        {k: row[k] for k in key},
        calls=2,
        input_tokens=300,
        output_tokens=150,
        requests=2,
        cost_nusd=18_000_000,
        duration_s=1.0,
    )
    conn.execute(f"INSERT INTO daily VALUES ({', '.join('?' * len(key + sums))})", [daily[c] for c in key + sums])
    conn.commit()
    conn.close()

    pipeline, metrics, ledger = pipeline_on(f"sqlite:///{path}")
    pipeline.restore()
    assert sum(metrics.cost.values()) == Decimal("0.009") and sum(metrics.requests.values()) == 1
    assert len(ledger.calls(Filters())) == 1  # one copy kept, and taken out of the daily totals
    assert ledger.summary(Filters(), [], from_daily=True)[0]["cost_nusd"] == 9_000_000
    retry = {
        "trace_id": bytes.fromhex("ab" * 16),
        "span_id": bytes.fromhex("cd" * 8),
        **llm("openai", "gpt-4", 150, 75),
    }
    assert pipeline.export(otlp_request([retry])).duplicates == 1
    assert ledger.adopt_unowned("another") == 0  # taken once, by the first to start
    ledger.close()


def test_insert_or_skip_reports_exactly_which_rows_went_in(ledger_url):
    """The batch learns which of its rows are new: rows already stored and a second copy of a row in
    the same batch are skipped, and every value goes in unchanged (big integers, floats, text)."""
    from aispend.exporter.ledger import CALL_COLUMNS

    ledger = open_ledger(ledger_url)
    insert = ledger.dialect.insert("calls", CALL_COLUMNS)

    def row(span: str, **values) -> tuple:
        r = stored_call(trace_id="a" * 32, span_id=span, parent_span_id="", response_id=f"r-{span}", **values)
        return tuple(r[c] for c in CALL_COLUMNS)

    with ledger.transaction() as tx:
        assert tx.insert_new(insert, [row("01"), row("02")]) == [True, True]
    big = 9_223_372_036_854_775_807  # the largest BIGINT
    batch = [row("02"), row("03", cost_nusd=big, duration_s=0.1 + 0.2), row("03"), row("04", customer="ünï ‘x’")]
    with ledger.transaction() as tx:
        assert tx.insert_new(insert, batch) == [False, True, False, True]
        assert tx.insert_new(insert, []) == []
    rows = ledger._read("SELECT span_id, cost_nusd, duration_s, customer FROM calls ORDER BY span_id")
    assert [(r[0], int(r[1]), float(r[2]), r[3]) for r in rows] == [
        ("01", 9_000_000, 0.5, ""),
        ("02", 9_000_000, 0.5, ""),
        ("03", big, 0.1 + 0.2, ""),
        ("04", 9_000_000, 0.5, "ünï ‘x’"),
    ]
