"""budgets.yaml, calendar periods in a timezone, spend tracking, the rule generator and the API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from aispend.exporter.budget_rules import render
from aispend.exporter.budgets import BudgetsError, BudgetTracker, load_budgets, parse_budgets, period_bounds
from aispend.exporter.ledger import Accounting, SQLiteLedger
from aispend.exporter.normalise import Call
from tests.exporter.server import running, scrape, value
from tests.exporter.spans import llm, otlp_request
from tests.exporter.test_receivers import post

ROOT = Path(__file__).resolve().parents[2]


def test_example_budgets_render_to_the_checked_in_rules():
    budgets = load_budgets(ROOT / "prometheus/budgets.example.yaml")
    assert render(budgets, "prometheus/budgets.example.yaml") == (ROOT / "prometheus/rules/budgets.yml").read_text()


def test_render_cli_and_custom_labels(tmp_path):
    src = tmp_path / "b.yaml"
    src.write_text(
        "budgets:\n  - {name: team-x, period: day, amount_usd: 5.5, thresholds: [80, 120],"
        " scope: {customer: [acme, globex]}, labels: {team: x}}\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "aispend.cli", "budgets", "render", str(src)], capture_output=True, text=True, check=True
    ).stdout
    rules = yaml.safe_load(out)["groups"][0]["rules"]
    assert [(r["alert"], r["labels"]["threshold"], r["labels"]["severity"], r["labels"]["team"]) for r in rules] == [
        ("AispendBudgetThresholdReached", "80", "warning", "x"),
        ("AispendBudgetExhausted", "120", "critical", "x"),
    ]
    assert rules[1]["expr"].endswith(">= 1.2")
    assert "customer=acme|globex" in rules[0]["annotations"]["description"]
    assert "$5.5 daily limit" in rules[0]["annotations"]["description"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("budgets: [{name: a, period: week, amount_usd: 1}]", "period: one of day, month"),
        ("budgets: [{name: a, amount_usd: -1}]", "positive"),
        ("budgets: [{name: a, amount_usd: 1, scope: {planet: mars}}]", "unknown label 'planet'"),
        ("budgets: [{name: a, amount_usd: 1, enforce: maybe}]", "true, false or warn"),
        ("budgets: [{name: 'a b', amount_usd: 1}]", "letters, digits"),
        ("budgets: [{name: a, amount_usd: 1}, {name: a, amount_usd: 2}]", "duplicate"),
        ("timezone: Mars/Olympus\nbudgets: []", "unknown timezone"),
        ("budgets: [{name: a, amount_usd: 1, thresholds: [0]}]", "thresholds"),
    ],
)
def test_broken_budgets_name_the_problem(text, message):
    with pytest.raises(BudgetsError, match=message):
        parse_budgets(yaml.safe_load(text))


def test_calendar_periods_in_a_timezone():
    tz = ZoneInfo("America/New_York")
    now = datetime(2026, 3, 1, 3, 30, tzinfo=UTC)  # still Feb 28th in New York
    start, end = period_bounds("month", now, tz)
    assert (start.isoformat(), end.isoformat()) == ("2026-02-01T00:00:00-05:00", "2026-03-01T00:00:00-05:00")
    start, end = period_bounds("day", datetime(2026, 3, 8, 12, tzinfo=UTC), tz)  # DST starts that day
    assert (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds() == 23 * 3600


def _call(cost: str, start: datetime, **labels) -> Call:
    fields = dict(service="app", provider="openai", model="gpt-4", operation="chat", feature="", customer="", key="")
    fields.update(labels)
    return Call(
        trace_id=os.urandom(16),
        span_id=os.urandom(8),
        parent_span_id=b"",
        start_ns=int(start.timestamp() * 1e9),
        duration_s=0,
        price_model="gpt-4",
        response_model="",
        kind="llm",
        status="ok",
        error_type="",
        cost=Decimal(cost),
        priced=True,
        from_aispend=True,
        **fields,
    )


def _add(ledger, tracker, calls, when: datetime) -> None:
    """Record calls as a batch does: the budgets' spend changes in the batch's transaction."""
    ns = int(when.timestamp() * 1e9)
    ledger.record(calls, Accounting("test", budgets=tracker.windows(ns), now_ns=ns))
    tracker.changed()


def test_tracker_scopes_periods_and_overrides():
    clock = [datetime(2026, 1, 31, 23, 0, tzinfo=UTC)]
    budgets = parse_budgets(
        yaml.safe_load(
            "budgets:\n  - {name: openai, period: month, amount_usd: 10, scope: {provider: openai}}\n"
            "  - {name: acme-day, period: day, amount_usd: 1, scope: {customer: acme}}\n"
        )
    )
    ledger = SQLiteLedger(":memory:")
    tracker = BudgetTracker(budgets, ledger, clock=lambda: clock[0], refresh=0)
    calls = [_call("2.5", clock[0], customer="acme"), _call("1", clock[0], provider="anthropic", customer="acme")]
    _add(ledger, tracker, calls, clock[0])
    assert {b["name"]: b["spend_usd"] for b in tracker.as_json()} == {"openai": 2.5, "acme-day": 3.5}
    assert tracker.as_json()[1]["exhausted"] is True
    clock[0] = datetime(2026, 2, 1, 0, 1, tzinfo=UTC)  # a new day and a new month
    assert {b["name"]: b["spend_usd"] for b in tracker.as_json()} == {"openai": 0, "acme-day": 0}
    _add(ledger, tracker, [_call("4", clock[0])], clock[0])
    tracker.override("openai", Decimal(50), reset=False)
    state = tracker.as_json()[0]
    assert (state["limit_usd"], state["spend_usd"], state["resets_at"]) == (50, 4, "2026-03-01T00:00:00+00:00")
    tracker.override("openai", None, reset=True)
    assert tracker.as_json()[0]["spend_usd"] == 0 and tracker.as_json()[0]["limit_usd"] == 50


def test_budget_gauges_api_and_admin_override(tmp_path):
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(
        "budgets:\n  - {name: gpt4, period: month, amount_usd: 0.01, scope: {model: gpt-4}, enforce: true}\n"
    )
    with running(budgets=str(budgets), admin_token="adm", ledger=f"sqlite:///{tmp_path}/l.sqlite") as exporter:
        port = exporter.ports["metrics"]
        post(
            f"http://127.0.0.1:{exporter.ports['otlp_http']}/v1/traces",
            otlp_request([llm("openai", "gpt-4", 150, 75), llm("openai", "gpt-4o", 10, 10)]).SerializeToString(),
            "application/x-protobuf",
        )
        text = scrape(port, token="adm")
        assert value(text, "aispend_budget_spend_usd", budget="gpt4", period="month") == pytest.approx(0.009)
        assert value(text, "aispend_budget_limit_usd", budget="gpt4", period="month") == 0.01
        api = f"http://127.0.0.1:{port}/v1/budgets"
        request = urllib.request.Request(api, headers={"Authorization": "Bearer adm"})
        state = json.load(urllib.request.urlopen(request))["budgets"][0]
        assert (state["enforce"], state["exhausted"], state["scope"]) == ("true", False, {"model": ["gpt-4"]})
        assert post(f"{api}/gpt4", b'{"amount_usd": 1}', "application/json")[0] == 401
        assert post(f"{api}/gpt4", b'{"amount_usd": 1}', "application/json", token="wrong")[0] == 401
        assert post(f"{api}/nope", b'{"amount_usd": 1}', "application/json", token="adm")[0] == 404
        assert post(f"{api}/gpt4", b'{"amount_usd": -1}', "application/json", token="adm")[0] == 400
        status, body = post(f"{api}/gpt4", b'{"amount_usd": 2}', "application/json", token="adm")
        assert status == 200 and json.loads(body)["limit_usd"] == 2
        assert value(scrape(port, token="adm"), "aispend_budget_limit_usd", budget="gpt4") == 2
    # the override is persisted in the ledger: a restart keeps it
    with running(budgets=str(budgets), ledger=f"sqlite:///{tmp_path}/l.sqlite") as exporter:
        state = json.load(urllib.request.urlopen(f"http://127.0.0.1:{exporter.ports['metrics']}/v1/budgets"))
        assert state["budgets"][0]["limit_usd"] == 2
        assert state["budgets"][0]["spend_usd"] == pytest.approx(0.009)  # restored from the ledger


def test_budget_changes_need_an_admin_token_configured(tmp_path):
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("budgets: [{name: a, amount_usd: 1}]")
    with running(budgets=str(budgets)) as exporter:
        url = f"http://127.0.0.1:{exporter.ports['metrics']}/v1/budgets/a"
        assert post(url, b'{"reset": true}', "application/json", token="x")[0] == 403


def test_unreachable_routes_are_404(tmp_path):
    with running() as exporter:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{exporter.ports['metrics']}/nope")
        assert err.value.code == 404
