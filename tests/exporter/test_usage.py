"""`aispend usage` (real subprocess) and GET /v1/usage, /v1/calls: the same reports."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import urllib.request

import pytest

from aispend.exporter.config import ExporterConfig
from aispend.exporter.ledger import open_ledger
from aispend.exporter.metrics import UsageMetrics
from aispend.exporter.pipeline import Pipeline
from aispend.pricing import PriceEngine
from tests.exporter.server import running
from tests.exporter.spans import llm, otlp_request
from tests.exporter.test_receivers import post

SPANS = [
    llm("openai", "gpt-4", 150, 75, **{"aispend.feature": "summary", "aispend.customer": "acme", "aispend.key": "k1"}),
    llm("openai", "gpt-4", 300, 150, **{"aispend.feature": "chat", "aispend.customer": "acme", "aispend.key": "k1"}),
    llm(
        "anthropic",
        "claude-3-5-haiku-20241022",
        1_000_000,
        0,
        **{"aispend.feature": "chat", "aispend.customer": "globex", "aispend.key": "k2"},
    ),
    {
        **llm("openai", "gpt-4", 0, 0, **{"aispend.customer": "globex"}),
        "error.type": "rate_limit_exceeded",
        "http.response.status_code": 429,
    },
]


@pytest.fixture
def ledger_url(ledger_url):
    """The conftest's ledger (SQLite, then PostgreSQL) with SPANS recorded in it."""
    ledger = open_ledger(ledger_url)
    Pipeline(ExporterConfig(), PriceEngine(), ledger, UsageMetrics()).export(otlp_request(SPANS, service="shop"))
    ledger.close()
    return ledger_url


def usage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aispend.cli", "usage", *args], capture_output=True, text=True, timeout=60
    )


def test_totals_and_group_by_table(ledger_url):
    out = usage("--ledger", ledger_url, "--group-by", "customer")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("today") and "$0.827" in lines[0] and "(4 calls)" in lines[0]
    assert "all time" in lines[2] and "$0.827" in lines[2]
    table = "\n".join(lines[4:])
    assert "globex" in table and "acme" in table
    assert table.index("globex") < table.index("acme")  # sorted by cost


def test_filters_json(ledger_url):
    out = usage("--ledger", ledger_url, "--customer", "acme", "--group-by", "feature,model", "--format", "json")
    data = json.loads(out.stdout)
    rows = {(r["feature"], r["model"]): r for r in data["rows"]}
    assert rows[("chat", "gpt-4")]["cost_usd"] == "0.018" and rows[("summary", "gpt-4")]["cost_usd"] == "0.009"
    assert data["selected"]["calls"] == 2 and data["totals"]["all_time"]["cost_usd"] == "0.027"


def test_per_call_log_csv_and_status_filter(ledger_url):
    out = usage("--ledger", ledger_url, "--calls", "--format", "csv", "--status", "rate_limited")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 1 and rows[0]["customer"] == "globex" and rows[0]["error_type"] == "rate_limit_exceeded"
    out = usage("--ledger", ledger_url, "--calls", "--limit", "2", "--since", "1h")
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 4  # header, rule, 2 rows


def test_bad_options_are_clear_errors(ledger_url):
    out = usage("--ledger", ledger_url, "--group-by", "planet")
    assert out.returncode == 2 and "cannot group by 'planet'" in out.stderr
    out = usage("--ledger", ledger_url, "--since", "yesterday-ish")
    assert out.returncode == 2 and "not a time" in out.stderr


def test_http_usage_and_calls(tmp_path):
    with running(ledger=f"sqlite:///{tmp_path}/l.sqlite") as exporter:
        post(
            f"http://127.0.0.1:{exporter.ports['otlp_http']}/v1/traces",
            otlp_request(SPANS, service="shop").SerializeToString(),
            "application/x-protobuf",
        )
        base = f"http://127.0.0.1:{exporter.ports['metrics']}"
        report = json.load(urllib.request.urlopen(f"{base}/v1/usage?group_by=key&provider=openai"))
        assert {r["key"]: r["cost_usd"] for r in report["rows"]} == {"k1": "0.027", "": "0"}
        calls = json.load(urllib.request.urlopen(f"{base}/v1/calls?customer=globex&limit=5"))
        assert [c["status"] for c in calls] == ["rate_limited", "ok"] or [c["status"] for c in calls] == [
            "ok",
            "rate_limited",
        ]
        assert all("time" in c and "trace_id" in c for c in calls)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{base}/v1/usage?group_by=nope")
        assert err.value.code == 400


def test_http_reports_answer_503_while_the_ledger_is_away(tmp_path):
    from aispend.exporter.http_server import Api, serve_api
    from aispend.exporter.ledger import LedgerError

    def away(params):
        raise LedgerError("ledger query on postgresql://aispend@db/ledger failed: connection refused")

    server, port = serve_api(Api(None, None, None, away, away, None), "127.0.0.1", 0)
    try:
        for path in ("/v1/usage", "/v1/calls"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}")
            assert err.value.code == 503 and "connection refused" in json.load(err.value)["error"]
    finally:
        server.shutdown()
