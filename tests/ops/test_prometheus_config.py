"""Prometheus config, rules and rule unit tests, checked with the real promtool.

Also structural rules of the mixin style: every alert has a severity label and summary /
description / runbook_url annotations, and a promtool test that expects it to fire and one
that expects it not to; every recording rule is named level:metric:operations and has a
promql_expr_test.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.binaries import require

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
TEST_FILES = sorted((PROM / "tests").glob("*.yml"))
RUNBOOK = "https://github.com/aispend/aispend/blob/main/docs/runbook.md#"
SEVERITIES = {"critical", "warning", "info"}
# the alerts the design asks for; each must exist (rules/alerts.yml or generated budgets.yml)
REQUIRED_ALERTS = {
    "AispendBudgetForecastOverrun",
    "AispendCostSpike",
    "AispendUnpricedCalls",
    "AispendHighErrorRatio",
    "AispendHighRateLimitRatio",
    "AispendSpansRejected",
    "AispendExporterDown",
    "AispendConfigFileErrors",
    "AispendBudgetThresholdReached",
    "AispendBudgetExhausted",
}

pytestmark = pytest.mark.integration


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, (
        f"{' '.join(args)} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )
    return proc


def _load(path: Path) -> dict:
    with path.open() as f:
        return yaml.safe_load(f)


def _rules(kind: str, files: list[Path] = RULE_FILES) -> list[tuple[Path, dict]]:
    return [
        (path, rule) for path in files for group in _load(path)["groups"] for rule in group["rules"] if kind in rule
    ]


def test_rule_and_test_files_exist():
    names = {p.name for p in RULE_FILES}
    assert {"recording.yml", "alerts.yml", "budgets.yml"} <= names
    assert TEST_FILES, "no promtool test files in prometheus/tests/"


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus.compose.yml"])
def test_promtool_check_config(config):
    # also checks every rule file the config loads (rules/*.yml)
    _run(require("promtool"), "check", "config", str(PROM / config))


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(rule_file):
    _run(require("promtool"), "check", "rules", str(rule_file))


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_test_rules(test_file):
    proc = _run(require("promtool"), "test", "rules", str(test_file))
    assert "SUCCESS" in proc.stdout


def test_required_alerts_exist():
    names = {rule["alert"] for _, rule in _rules("alert")}
    assert names >= REQUIRED_ALERTS, f"missing alerts: {sorted(REQUIRED_ALERTS - names)}"


@pytest.mark.parametrize(
    ("path", "rule"),
    _rules("alert"),
    ids=lambda x: x.name if isinstance(x, Path) else x.get("alert"),
)
def test_alert_has_severity_and_annotations(path, rule):
    name = rule["alert"]
    labels = rule.get("labels") or {}
    annotations = rule.get("annotations") or {}
    assert labels.get("severity") in SEVERITIES, f"{path.name}: {name} needs a severity in {SEVERITIES}"
    for key in ("summary", "description", "runbook_url"):
        assert str(annotations.get(key, "")).strip(), f"{path.name}: {name} has no {key} annotation"
    assert annotations["runbook_url"] == RUNBOOK + name.lower(), f"{path.name}: {name} runbook_url"


def _alert_tests() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """alertname -> test files expecting it to fire / expecting it not to."""
    firing: dict[str, set[str]] = {}
    quiet: dict[str, set[str]] = {}
    for path in TEST_FILES:
        for test in _load(path).get("tests", []):
            for case in test.get("alert_rule_test") or []:
                target = firing if case.get("exp_alerts") else quiet
                target.setdefault(case["alertname"], set()).add(path.name)
    return firing, quiet


def test_every_alert_has_firing_and_not_firing_tests():
    firing, quiet = _alert_tests()
    names = sorted({rule["alert"] for _, rule in _rules("alert")})
    untested = [n for n in names if n not in firing]
    never_quiet = [n for n in names if n not in quiet]
    assert not untested, f"alerts with no promtool test expecting them to fire: {untested}"
    assert not never_quiet, f"alerts with no promtool test expecting them NOT to fire: {never_quiet}"


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_tests_load_the_rules_they_test(test_file):
    # a "not firing" case for an alert whose rule file is not loaded would pass vacuously
    doc = _load(test_file)
    loaded = [(test_file.parent / f).resolve() for f in doc.get("rule_files", [])]
    defined = {rule["alert"] for _, rule in _rules("alert", loaded)}
    for test in doc.get("tests", []):
        for case in test.get("alert_rule_test") or []:
            assert case["alertname"] in defined, (
                f"{test_file.name} tests {case['alertname']} without loading the file defining it"
            )


def test_recording_rules_are_named_level_metric_operations():
    pattern = re.compile(r"^[a-z][a-z_]*:aispend_[a-z_]+:[a-z0-9_]+$")
    bad = [rule["record"] for _, rule in _rules("record") if not pattern.match(rule["record"])]
    assert not bad, f"recording rules not named level:aispend_metric:operations: {bad}"


def test_every_recording_rule_has_an_exact_value_test():
    tested = set()
    for path in TEST_FILES:
        for test in _load(path).get("tests", []):
            for case in test.get("promql_expr_test") or []:
                tested.update(re.findall(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", case["expr"]))
    untested = sorted({rule["record"] for _, rule in _rules("record")} - tested)
    assert not untested, f"recording rules without a promql_expr_test: {untested}"


def test_budgets_example_is_marked_generated():
    first = (PROM / "rules" / "budgets.yml").read_text().splitlines()[0]
    assert "generated by aispend budgets render" in first
    assert (PROM / "budgets.example.yaml").is_file()


def _targets(config: dict) -> list[str]:
    found = [t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    found += [t for am in config["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]]
    return found


def _without_targets(config: dict) -> dict:
    for job in config["scrape_configs"]:
        job.pop("static_configs")
    for am in config["alerting"]["alertmanagers"]:
        am.pop("static_configs")
    return config


def test_host_config_contract():
    config = _load(PROM / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["aispend"]["scrape_interval"] == "5s"
    assert jobs["aispend"]["static_configs"] == [{"targets": ["127.0.0.1:9464"]}]
    assert "prometheus" in jobs
    assert config["global"]["evaluation_interval"] == "15s"
    assert config["rule_files"] == ["rules/*.yml"]
    assert _targets(config)[-1] == "127.0.0.1:9093"


def test_compose_config_differs_only_in_targets():
    host = _load(PROM / "prometheus.yml")
    compose = _load(PROM / "prometheus.compose.yml")
    assert _without_targets(compose) == _without_targets(host)
    host, compose = _load(PROM / "prometheus.yml"), _load(PROM / "prometheus.compose.yml")
    # same ports, service names instead of loopback
    assert [t.split(":")[1] for t in _targets(compose)] == [t.split(":")[1] for t in _targets(host)]
    assert "aispend:9464" in _targets(compose)
    assert "alertmanager:9093" in _targets(compose)
