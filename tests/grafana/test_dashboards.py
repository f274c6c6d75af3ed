"""Dashboards are generated code: checked in as generated, structurally sound, valid PromQL.
(tests/e2e/test_stack.py runs every query against a real Prometheus and requires data.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.grafana.queries import DASHBOARDS, dashboards, grafana_queries, panels
from tests.support.binaries import require

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "grafana"))
import build  # noqa: E402

REQUIRED_VARIABLES = {"service", "provider", "model", "feature", "customer", "key"}


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
