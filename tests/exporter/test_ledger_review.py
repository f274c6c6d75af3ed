"""Accounting defects found in review of the ledger layer (issue 11), each shown by a real process
on a real ledger: a budget reset seen late by another replica, and an upgraded ledger whose old
duplicates were removed from ``calls`` but stayed in the daily totals."""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.request
from decimal import Decimal

import pytest

from aispend.exporter.ledger import Filters, open_ledger
from tests.exporter.server import ServeProcess, scrape, value
from tests.exporter.spans import NOW_NS, llm, otlp_request
from tests.exporter.test_replicas import GPT4, export
from tests.support.polling import eventually


def budget(port: int, name: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/budgets", headers={"Authorization": "Bearer adm"})
    with urllib.request.urlopen(request) as response:
        return {b["name"]: b for b in json.load(response)["budgets"]}[name]


def gpt4_calls(n: int) -> object:
    """n GPT-4 calls ($0.009 each) that start now: after any reset made before."""
    start = time.time_ns()
    return otlp_request([{**llm("openai", "gpt-4", 150, 75), "start": start} for _ in range(n)])


@pytest.mark.integration
def test_a_reset_seen_late_by_another_replica_still_counts_its_calls(tmp_path, postgres):
    """A reset on replica A; replica B has not re-read the overrides yet (its refresh is long
    here to make the window certain; at the default 1 s the same happens inside that second).
    Calls that start after the reset count in the new period, whichever replica records them."""
    url = postgres.create_database("late_reset")
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("budgets:\n  - {name: daily, period: day, amount_usd: 100}\n")
    common = ("--ledger", url, "--budgets", str(budgets), "--admin-token", "adm")
    a = ServeProcess(tmp_path, *common, "--instance-id", "a").start()
    b = ServeProcess(tmp_path, *common, "--instance-id", "b", "--budget-refresh-seconds", "30").start()
    try:
        export(b.ports["otlp_grpc"], gpt4_calls(10))  # before the reset; B has read the overrides
        reset = urllib.request.Request(
            f"http://127.0.0.1:{a.ports['metrics']}/v1/budgets/daily",
            data=b'{"reset": true}',
            headers={"Authorization": "Bearer adm", "Content-Type": "application/json"},
        )
        assert urllib.request.urlopen(reset).status == 200
        time.sleep(0.01)
        export(a.ports["otlp_grpc"], gpt4_calls(3))  # after the reset, on A
        export(b.ports["otlp_grpc"], gpt4_calls(4))  # after the reset, on B (not re-read yet)
        expected = float(GPT4 * 7)
        time.sleep(1.5)  # A's budget refresh
        assert budget(a.ports["metrics"], "daily")["spend_usd"] == pytest.approx(expected, abs=1e-9)
        assert eventually(
            lambda: budget(b.ports["metrics"], "daily")["spend_usd"] == pytest.approx(expected, abs=1e-9), timeout=5
        )
    finally:
        a.stop()
        b.stop()


# -- a ledger written by the aispend before issue 11 (schema 1: no instance, no unique span) -----
_V1_CALLS = (
    "ts_ns", "day", "duration_s", "service", "provider", "model", "operation", "feature", "customer", "key",
    "response_model", "kind", "status", "error_type", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "requests", "images", "cost_nusd", "priced", "estimated",
    "free_units", "trace_id", "span_id", "parent_span_id", "response_id",
)  # fmt: skip
_TEXT = {"day", "service", "provider", "model", "operation", "feature", "customer", "key", "response_model", "kind"}
_TEXT |= {"status", "error_type", "trace_id", "span_id", "parent_span_id", "response_id"}
_LABELS = ("service", "provider", "model", "operation", "feature", "customer", "key")
_SUMS = ("calls", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
_SUMS += ("requests", "images", "cost_nusd", "unpriced", "duration_s")


def _v1_schema(integer: str, real: str, id_column: str) -> list[str]:
    calls = ", ".join(
        f"{c} {'TEXT' if c in _TEXT else real if c == 'duration_s' else integer} NOT NULL" for c in _V1_CALLS
    )
    daily_key = ("day", *_LABELS, "status")
    sums = ", ".join(f"{c} {real if c == 'duration_s' else integer} NOT NULL" for c in _SUMS)
    return [
        f"CREATE TABLE calls ({id_column}, {calls})",
        f"CREATE TABLE daily ({', '.join(f'{c} TEXT NOT NULL' for c in daily_key)}, {sums}, "
        f"PRIMARY KEY ({', '.join(daily_key)}))",
        "CREATE TABLE durations (day TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL, operation TEXT "
        f"NOT NULL, status TEXT NOT NULL, bucket {integer} NOT NULL, calls {integer} NOT NULL, "
        "PRIMARY KEY (day, provider, model, operation, status, bucket))",
        f"CREATE TABLE budget_overrides (budget TEXT PRIMARY KEY, amount_usd TEXT, reset_at_ns {integer})",
    ]


def _v1_rows() -> tuple[list[tuple], list[tuple], list[tuple]]:
    """Three calls, one of them recorded twice (a retry across replicas, as schema 1 allowed), and
    the daily and duration totals schema 1 kept for those four rows."""
    day = time.strftime("%Y-%m-%d", time.gmtime(NOW_NS / 1e9))
    labels = ("app", "openai", "gpt-4", "chat", "", "acme", "")

    def call(span: str) -> tuple:
        return (NOW_NS, day, 0.5, *labels, "gpt-4", "llm", "ok", "", 150, 75, 0, 0, 0, 1, 0, 9_000_000, 1, 0, 0)
        # trace/span/parent/response appended below

    calls = [(*call(s), "ab" * 16, s, "", f"resp-{s}") for s in ("01" * 8, "02" * 8, "03" * 8, "02" * 8)]
    daily = [(day, *labels, "ok", 4, 600, 300, 0, 0, 0, 4, 0, 36_000_000, 0, 2.0)]
    durations = [(day, "openai", "gpt-4", "chat", "ok", 6, 4)]  # bucket 6: at most 0.64 s
    return calls, daily, durations


def _write_v1(url: str) -> None:
    calls, daily, durations = _v1_rows()

    def fill(execute, mark: str) -> None:
        execute(f"INSERT INTO calls ({', '.join(_V1_CALLS)}) VALUES ({', '.join([mark] * len(_V1_CALLS))})", calls)
        execute(f"INSERT INTO daily VALUES ({', '.join([mark] * len(daily[0]))})", daily)
        execute(f"INSERT INTO durations VALUES ({', '.join([mark] * 7)})", durations)

    if url.startswith("sqlite"):
        conn = sqlite3.connect(url[len("sqlite:///") :])
        for statement in _v1_schema("INTEGER", "REAL", "id INTEGER PRIMARY KEY"):
            conn.execute(statement)
        fill(conn.executemany, "?")
        conn.commit()
        conn.close()
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            for statement in _v1_schema(
                "BIGINT", "DOUBLE PRECISION", "id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
            ):
                conn.execute(statement)
            with conn.cursor() as cur:
                fill(cur.executemany, "%s")


@pytest.mark.integration
def test_upgrading_a_ledger_with_duplicates_takes_them_out_of_the_totals_too(tmp_path, ledger_url):
    """Schema 1 let a call be recorded twice (in ``calls`` and in the daily totals). The upgrade
    keeps one row per span; the daily and duration totals, which the counters are restored from,
    must lose the removed copies too, so the ledger, its totals and /metrics agree."""
    _write_v1(ledger_url)
    serve = ServeProcess(tmp_path, "--ledger", ledger_url, "--instance-id", "solo").start()
    try:
        metrics = scrape(serve.ports["metrics"])
        ledger = open_ledger(ledger_url)
        try:
            rows = ledger.summary(Filters(), [])[0]
            daily = ledger.summary(Filters(), [], from_daily=True)[0]
            buckets = sum(sum(b) for _, _, b in ledger.durations("solo"))
        finally:
            ledger.close()
        assert (rows["calls"], rows["cost_nusd"]) == (3, 27_000_000)  # one row per span
        assert (daily["calls"], daily["cost_nusd"], daily["input_tokens"]) == (3, 27_000_000, 450)
        assert buckets == 3
        assert value(metrics, "aispend_cost_usd_total") == pytest.approx(float(Decimal("0.027")), abs=1e-9)
        assert value(metrics, "aispend_requests_total") == 3
    finally:
        serve.stop()


# -- one call, two provider names ------------------------------------------------------------------
_APP = """
import sys
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
import openai
from aispend.instrumentation import AiSpendInstrumentor

grpc, base = sys.argv[1], sys.argv[2]
provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=grpc, insecure=True)))
OpenAIInstrumentor().instrument(tracer_provider=provider)
AiSpendInstrumentor().instrument(tracer_provider=provider, provider_urls=f"groq={base}")
client = openai.OpenAI(base_url=base, api_key="gsk-test-000000000000000000000000", max_retries=0)
for _ in range(3):
    client.chat.completions.create(model="llama-3.1-8b-instant", messages=[{"role": "user", "content": "hi"}])
provider.shutdown()
"""


@pytest.mark.integration
def test_openai_v2_beside_aispend_on_an_openai_compatible_provider_counts_each_call_once(tmp_path):
    """The OpenAI SDK pointed at Groq, with openai-v2 and aispend both instrumenting it (as the
    README allows): openai-v2 names every call's provider "openai", aispend names it "groq". They
    are the same calls (one trace, one response id): each is counted once, as aispend saw it."""
    import subprocess
    import sys

    from tests.fakes.providers import FakeProviders

    fake = FakeProviders().start()
    serve = ServeProcess(tmp_path, "--ledger", f"sqlite:///{tmp_path}/l.sqlite", "--settle-seconds", "1").start()
    try:
        script = tmp_path / "app.py"
        script.write_text(_APP)
        base = f"{fake.url}/groq/openai/v1"
        subprocess.run(
            [sys.executable, str(script), f"127.0.0.1:{serve.ports['otlp_grpc']}", base], check=True, timeout=120
        )
        time.sleep(3)  # past the settle delay: openai-v2's spans are decided
        ledger = open_ledger(f"sqlite:///{tmp_path}/l.sqlite")
        try:
            rows = ledger.summary(Filters(), ["provider"])
        finally:
            ledger.close()
        assert {r["provider"]: r["calls"] for r in rows} == {"groq": 3}
        assert value(scrape(serve.ports["metrics"]), "aispend_requests_total") == 3
    finally:
        serve.stop()
        fake.stop()


# -- a free tier's first use in a period, after later periods were counted -------------------------
def test_a_late_call_of_last_month_gets_last_months_free_units(tmp_path):
    """Brave: 2,000 free requests a month per key. December's 2,000 are used up; then a call made on
    30 November arrives (a retried export): November's count starts from November's calls only,
    so it is free. It used to start from every day since 1 November, December's included."""
    from datetime import UTC, datetime

    from aispend.exporter.config import ExporterConfig
    from aispend.exporter.metrics import UsageMetrics
    from aispend.exporter.pipeline import Pipeline
    from aispend.pricing import PriceEngine

    def search(when: datetime) -> dict:
        attrs = {
            "gen_ai.provider.name": "brave",
            "gen_ai.operation.name": "search",
            "aispend.service.kind": "search",
            "aispend.key": "brave-key",
        }
        return {**attrs, "start": int(when.timestamp()) * 10**9}

    ledger = open_ledger(f"sqlite:///{tmp_path}/free.sqlite")
    pipeline = Pipeline(ExporterConfig(), PriceEngine(), ledger, UsageMetrics())
    december = datetime(2026, 12, 1, 0, 0, 5, tzinfo=UTC)
    pipeline.export(otlp_request([search(december)] * 2001))  # 2,000 free, one at $0.005
    pipeline.export(otlp_request([search(datetime(2026, 11, 30, 23, 59, 55, tzinfo=UTC))]))
    try:
        by_day = {r["day"]: r for r in ledger.summary(Filters(equals={"provider": "brave"}), ["day"], from_daily=True)}
        assert ledger.free_units_used("brave", "brave-key", "2026-11-01") == 1
    finally:
        ledger.close()
    assert (by_day["2026-12-01"]["calls"], by_day["2026-12-01"]["cost_nusd"]) == (2001, 5_000_000)
    assert (by_day["2026-11-30"]["calls"], by_day["2026-11-30"]["cost_nusd"]) == (1, 0)


# -- a big export on PostgreSQL ---------------------------------------------------------------------
@pytest.mark.integration
def test_a_collector_sized_batch_lands_on_postgresql(tmp_path, postgres):
    """An OpenTelemetry Collector's batch processor sends up to 8,192 spans per export (its
    default send_batch_size); every span is its own call here (own trace, own response id). The
    batch must be recorded, not answered "retry" forever because the identity locks it takes
    outgrow PostgreSQL's lock table (max_locks_per_transaction x max_connections)."""
    url = postgres.create_database("big_batch")
    serve = ServeProcess(tmp_path, "--ledger", url, "--instance-id", "big").start()
    try:
        spans = [{**llm("openai", "gpt-4", 150, 75), "gen_ai.response.id": f"chatcmpl-{i}"} for i in range(8192)]
        export(serve.ports["otlp_grpc"], otlp_request(spans), timeout=120)
        ledger = open_ledger(url)
        try:
            assert ledger.summary(Filters(), [])[0]["calls"] == 8192
        finally:
            ledger.close()
    finally:
        serve.stop()
