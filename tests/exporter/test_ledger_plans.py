"""A batch's identity lookups on PostgreSQL use the ledger's indexes, also on a big ledger the server
has not analysed yet (a new deployment under load, a restored dump): without statistics PostgreSQL
planned the lookups of a batch's hundreds of ids as scans of the whole calls table, each batch
reading every row (benchmarks/exporter_throughput.py measures what that cost)."""

from __future__ import annotations

import psycopg
import pytest

from aispend.exporter.config import ExporterConfig
from aispend.exporter.ledger import open_ledger
from aispend.exporter.metrics import UsageMetrics
from aispend.exporter.pipeline import Pipeline
from aispend.pricing import PriceEngine
from tests.exporter.spans import llm, otlp_request
from tests.support.polling import eventually

ROWS = 50_000


def _fill(conn: psycopg.Connection, rows: int) -> None:
    """``rows`` calls in one statement, every column from its type (ids unique per row)."""
    special = {
        "trace_id": "md5(g::text)",
        "span_id": "left(md5(g::text), 16)",
        "response_id": "'old-' || g",
        "day": "'2026-01-01'",
        "ts_ns": "1767225600000000000 + g",
    }
    columns = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'calls' "
        "AND column_name <> 'id' ORDER BY ordinal_position"
    ).fetchall()
    names = [name for name, _ in columns]
    values = [special.get(name, "'x'" if kind == "text" else "0") for name, kind in columns]
    conn.execute(
        f"INSERT INTO calls ({', '.join(names)}) SELECT {', '.join(values)} FROM generate_series(1, {rows}) AS g"
    )


def _scans(conn: psycopg.Connection) -> tuple[int, int]:
    """(rows read by whole-table scans of calls, index scans of calls) so far."""
    row = conn.execute(
        "SELECT COALESCE(seq_tup_read, 0), COALESCE(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = 'calls'"
    ).fetchone()
    return int(row[0]), int(row[1])


@pytest.mark.integration
def test_a_batch_on_a_big_unanalysed_ledger_reads_no_whole_table(postgres):
    url = postgres.create_database("plans")
    ledger = open_ledger(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE calls SET (autovacuum_enabled = false)")  # no statistics during the test
        _fill(conn, ROWS)
        assert conn.execute("SELECT reltuples FROM pg_class WHERE relname = 'calls'").fetchone()[0] < 0  # unanalysed
        seq_before, idx_before = _scans(conn)
    pipeline = Pipeline(ExporterConfig(instance_id="plans"), PriceEngine(), ledger, UsageMetrics())
    spans = [llm("openai", "gpt-4o", 100, 10, **{"gen_ai.response.id": f"new-{i}"}) for i in range(512)]
    assert pipeline.export(otlp_request(spans)).recorded == 512
    ledger.close()  # the ledger's backend reports its table statistics as it ends
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == ROWS + 512
        # the statistics arrive once the backend has gone: the lookups' index scans show they did
        assert eventually(lambda: _scans(conn)[1] > idx_before, timeout=10), "no index scan of calls reported"
        seq_read = _scans(conn)[0] - seq_before
        assert seq_read < ROWS, f"the batch's writes read {seq_read:,} rows by scanning the calls table"
