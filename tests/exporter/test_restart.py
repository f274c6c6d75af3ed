"""`aispend serve` as a process: counters survive a restart; a retried export counts once;
SIGHUP reloads budgets and a broken budgets file is counted, not fatal."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request

import grpc
import pytest

from aispend.exporter.grpc_receiver import EXPORT_METHOD
from aispend.exporter.ledger import CALL_COLUMNS, SQLiteLedger
from tests.exporter.server import ServeProcess, scrape, value
from tests.exporter.spans import NOW_NS, llm, otlp_request, stored_call
from tests.support.polling import eventually


def grpc_export(port: int, request, timeout: float = 10) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        channel.unary_unary(EXPORT_METHOD)(request.SerializeToString(), timeout=timeout)


def test_restart_continues_counters_and_retries_count_once(tmp_path, ledger_url):
    ledger = ledger_url
    first = ServeProcess(tmp_path, "--ledger", ledger).start()
    try:
        batch = otlp_request(
            [
                llm("openai", "gpt-4", 150, 75, **{"aispend.customer": "acme"}),
                llm("anthropic", "claude-3-5-haiku-20241022", 1_000_000, 0),
            ]
        )
        grpc_export(first.ports["otlp_grpc"], batch)
        grpc_export(first.ports["otlp_grpc"], batch)  # the sender retried: counted once
        before = scrape(first.ports["metrics"])
        assert value(before, "aispend_cost_usd_total") == pytest.approx(0.809, abs=1e-9)
        assert value(before, "aispend_spans_deduplicated_total", reason="retry") == 2
    finally:
        assert first.stop() == 0
    second = ServeProcess(tmp_path, "--ledger", ledger).start()
    try:
        after = scrape(second.ports["metrics"])
        for name in (
            "aispend_cost_usd_total",
            "aispend_tokens_total",
            "aispend_requests_total",
            "aispend_request_duration_seconds_count",
            "aispend_request_duration_seconds_sum",
            "aispend_request_duration_seconds_bucket",
        ):
            assert value(before, name) > 0, name
            assert value(after, name) == pytest.approx(value(before, name), abs=1e-9), name
        assert value(after, "aispend_cost_usd_total", customer="acme") == pytest.approx(0.009, abs=1e-9)
        grpc_export(second.ports["otlp_grpc"], batch)  # a retry that arrives after the restart
        grpc_export(second.ports["otlp_grpc"], otlp_request([llm("openai", "gpt-4", 150, 75)]))
        final = scrape(second.ports["metrics"])
        assert value(final, "aispend_cost_usd_total") == pytest.approx(0.818, abs=1e-9)
    finally:
        second.stop()


def test_sighup_reloads_budgets_and_survives_a_broken_file(tmp_path):
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("budgets:\n  - {name: all, period: month, amount_usd: 10}\n")
    proc = ServeProcess(tmp_path, "--ledger", "none", "--budgets", str(budgets)).start()
    try:
        api = f"http://127.0.0.1:{proc.ports['metrics']}/v1/budgets"
        assert [b["limit_usd"] for b in json.load(urllib.request.urlopen(api))["budgets"]] == [10.0]
        budgets.write_text("budgets:\n  - {name: all, period: month, amount_usd: 25}\n")
        proc.signal(signal.SIGHUP)
        assert eventually(lambda: json.load(urllib.request.urlopen(api))["budgets"][0]["limit_usd"] == 25.0)
        budgets.write_text("budgets: [{name: all, period: fortnight, amount_usd: 1}]")
        proc.signal(signal.SIGHUP)
        assert eventually(lambda: value(scrape(proc.ports["metrics"]), "aispend_config_errors_total") == 1)
        assert json.load(urllib.request.urlopen(api))["budgets"][0]["limit_usd"] == 25.0  # the old one stays
        assert value(scrape(proc.ports["metrics"]), "aispend_budget_limit_usd", budget="all") == 25.0
    finally:
        assert proc.stop() == 0


def fill(path, rows: int) -> None:
    """A ledger with ``rows`` calls from the past, written the fast way (one bulk insert)."""
    ledger = SQLiteLedger(str(path))
    ledger.close()
    conn = sqlite3.connect(path)
    day_ns = 86_400 * 10**9
    start = NOW_NS - 30 * day_ns

    def row(i: int) -> tuple:
        values = stored_call(
            start + i * 1_000_000,
            customer=f"c{i % 1000}",
            trace_id=f"{i:032x}",
            span_id=f"{i:016x}",
            response_id=f"resp-{i}",
            instance="old",
        )
        return tuple(values[c] for c in CALL_COLUMNS)

    conn.executemany(
        f"INSERT INTO calls ({', '.join(CALL_COLUMNS)}) VALUES ({', '.join('?' * len(CALL_COLUMNS))})",
        (row(i) for i in range(rows)),
    )
    conn.commit()
    conn.close()


def test_a_retried_batch_after_kill_9_counts_once_with_a_million_calls_in_the_ledger(tmp_path):
    path = tmp_path / "big.sqlite"
    fill(path, 1_000_000)
    args = ("--ledger", f"sqlite:///{path}", "--instance-id", "one")
    batch = otlp_request([llm("openai", "gpt-4", 150, 75) for _ in range(20_000)])
    first = ServeProcess(tmp_path, *args).start()
    started = time.monotonic()
    grpc_export(first.ports["otlp_grpc"], batch, timeout=300)  # committed ...
    print(f"\n20,000 calls on a 1,000,000-call ledger recorded in {time.monotonic() - started:.1f} s")
    first.stop(signal.SIGKILL)  # ... and the sender never saw the answer
    second = ServeProcess(tmp_path, *args).start()
    try:
        grpc_export(second.ports["otlp_grpc"], batch, timeout=300)  # so it sends the batch again
        text = scrape(second.ports["metrics"])
        assert value(text, "aispend_spans_deduplicated_total", reason="retry") == 20_000
        assert value(text, "aispend_requests_total") == 20_000  # this instance's counters: the batch, once
        assert value(text, "aispend_cost_usd_total") == pytest.approx(20_000 * 0.009, abs=1e-9)
    finally:
        second.stop()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 1_020_000


def test_a_second_serve_on_one_sqlite_file_is_refused(tmp_path):
    """A SQLite ledger is one process's: replicas share PostgreSQL, and the message says so."""
    ledger = f"sqlite:///{tmp_path}/one.sqlite"
    first = ServeProcess(tmp_path, "--ledger", ledger, "--instance-id", "a").start()
    try:
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "aispend.cli",
                "serve",
                "--ledger",
                ledger,
                "--otlp-grpc",
                "127.0.0.1:0",
                "--otlp-http",
                "127.0.0.1:0",
                "--metrics",
                "127.0.0.1:0",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert second.returncode == 2
        assert "in use by another aispend serve" in second.stderr and "PostgreSQL" in second.stderr
        grpc_export(first.ports["otlp_grpc"], otlp_request([llm("openai", "gpt-4", 150, 75)]))  # the first runs on
        assert value(scrape(first.ports["metrics"]), "aispend_requests_total") == 1
    finally:
        assert first.stop() == 0
    again = ServeProcess(tmp_path, "--ledger", ledger, "--instance-id", "a").start()  # freed when it stopped
    assert value(scrape(again.ports["metrics"]), "aispend_requests_total") == 1
    again.stop()
