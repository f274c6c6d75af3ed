"""Dashboards are generated code: checked in as generated, structurally sound, valid PromQL.
(tests/e2e/test_stack.py runs every query against a real Prometheus and requires data.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.grafana.queries import DASHBOARDS, dashboards, grafana_queries, panels, substitute
from tests.support.binaries import require

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "grafana"))
import build  # noqa: E402

REQUIRED_VARIABLES = {"service", "provider", "model", "feature", "customer", "key"}
# Which dashboard variables each metric's selectors must filter on (the labels the metric has).
FILTERS = {
    "aispend_cost_usd_total": REQUIRED_VARIABLES,
    "aispend_tokens_total": REQUIRED_VARIABLES,
    "aispend_requests_total": REQUIRED_VARIABLES,
    "aispend_unpriced_requests_total": {"provider", "model"},
    "aispend_request_duration_seconds_bucket": {"provider", "model"},
    "aispend_budget_spend_usd": set(),
    "aispend_budget_limit_usd": set(),
}


def test_checked_in_json_is_what_build_py_generates():
    generated = build.render()
    assert sorted(generated) == sorted(p.name for p in DASHBOARDS.glob("*.json"))
    for name, text in generated.items():
        assert (DASHBOARDS / name).read_text() == text, f"{name} is stale: run python grafana/build.py"


def test_structure():
    boards = dashboards()
    assert {b["uid"] for b in boards.values()} == {"aispend-overview", "aispend-api-key", "aispend-customer"}
    for name, board in boards.items():
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), name
        names = {v["name"] for v in board["templating"]["list"]}
        assert names >= REQUIRED_VARIABLES, name
        for panel in panels(board):
            assert panel["datasource"]["uid"] == "aispend-prometheus"
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "aispend-prometheus"
    single = {b["uid"]: [v["name"] for v in b["templating"]["list"] if not v["multi"]] for b in boards.values()}
    assert single == {"aispend-overview": [], "aispend-api-key": ["key"], "aispend-customer": ["customer"]}


def test_variables_are_chained_multi_select_with_all_as_regex():
    for board in dashboards().values():
        for var in board["templating"]["list"]:
            assert var["datasource"]["uid"] == "aispend-prometheus"
            assert var["query"]["query"].startswith("label_values(aispend_cost_usd_total")
            assert var["definition"] == var["query"]["query"]
            if var["multi"]:
                assert var["includeAll"] and var["allValue"] == ".*", var["name"]
    model = next(v for v in dashboards()["aispend-overview.json"]["templating"]["list"] if v["name"] == "model")
    assert 'service=~"$service", provider=~"$provider"' in model["query"]["query"]


def test_every_query_filters_on_the_dashboard_variables():
    for board in dashboards().values():
        for panel in panels(board):
            for target in panel["targets"]:
                expr = target["expr"]
                found = re.findall(r"(aispend_\w+)(\{[^}]*\})?", expr)
                assert found, expr
                for metric, selector in found:
                    assert metric in FILTERS, (panel["title"], metric)
                    for label in FILTERS[metric]:
                        assert f'{label}=~"${label}"' in selector, (board["uid"], panel["title"], label, expr)


def test_tables_name_their_columns_and_units():
    for board in dashboards().values():
        for panel in panels(board):
            if panel["type"] != "table":
                continue
            refs = [t["refId"] for t in panel["targets"]]
            organize = next(t for t in panel["transformations"] if t["id"] == "organize")["options"]
            assert organize["renameByName"] == {f"Value #{r}": r for r in refs}, panel["title"]
            assert panel["options"]["sortBy"][0]["displayName"] in refs
            assert [o["matcher"]["options"] for o in panel["fieldConfig"]["overrides"]] == refs
            units = {o["matcher"]["options"]: o["properties"][0]["value"] for o in panel["fieldConfig"]["overrides"]}
            assert all(units[r] == "currencyUSD" for r in refs if r in {"cost", "spend", "limit"}), panel["title"]


def test_units():
    for board in dashboards().values():
        for panel in panels(board):
            title, unit = panel["title"].lower(), panel["fieldConfig"]["defaults"]["unit"]
            if panel["type"] == "table":
                continue
            if re.search(r"\b(cost|spend)\b", title):
                assert unit == "currencyUSD", panel["title"]
            elif re.search(r"\b(tokens|calls|requests|rate-limited)\b", title):
                assert unit == "short", panel["title"]


def test_substitute():
    expr = 'sum(increase(m{key=~"$key", model=~"${model}"}[$__range])) / rate(m[$__rate_interval])'
    assert substitute(expr, {}) == 'sum(increase(m{key=~".*", model=~".*"}[1h])) / rate(m[1m])'
    assert substitute(expr, {"key": "sk-…a1b2", "__range": "5m"}).startswith(
        'sum(increase(m{key=~"sk-…a1b2", model=~".*"}[5m]))'
    )


def test_overview_has_the_panels_people_ask_for():
    titles = {p["title"] for p in panels(dashboards()["aispend-overview.json"])}
    assert {
        "Spend today",
        "Spend this month",
        "Spend all time",
        "Cost by model",
        "Models",
        "Cost by feature",
        "Top customers",
        "Cost by API key",
        "Tokens per second by type",
        "Requests per hour",
        "Average cost per call",
        "Error and rate-limit ratio",
        "Budget used (calendar period)",
        "Budgets",
        "Unpriced calls in range",
        "Cost by provider and service",
    } <= titles
    by_title = {p["title"]: p for p in panels(dashboards()["aispend-overview.json"])}
    assert by_title["Spend today"]["timeFrom"] == "now/d" and by_title["Spend this month"]["timeFrom"] == "now/M"


def test_every_query_is_valid_promql(tmp_path):
    promtool = require("promtool")
    queries = grafana_queries()
    assert len(queries) >= 30
    rules = {
        "groups": [
            {
                "name": "grafana",
                "rules": [{"record": f"grafana:query_{i}", "expr": expr} for i, (_, _, expr) in enumerate(queries)],
            }
        ]
    }
    path = tmp_path / "grafana_queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_provisioning_points_at_the_dashboards_and_datasource():
    datasource = yaml.safe_load((ROOT / "grafana/provisioning/datasources/aispend.yaml").read_text())
    assert datasource["datasources"][0]["uid"] == "aispend-prometheus"
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/aispend.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
