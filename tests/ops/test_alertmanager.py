"""prometheus/alertmanager.yml: amtool checks, routing, and a real Alertmanager run.

The real run starts Alertmanager on loopback with a copy of the shipped config whose
receivers point at an HTTP server in this test, posts budget alerts to its v2 API and
checks routing (webhook + Slack for an exhausted budget) and inhibition (Exhausted hides
the 90% alert of the same budget).
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests.support.binaries import require
from tests.support.stack import point_alertmanager_at

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "prometheus" / "alertmanager.yml"
WAIT_S = 20.0

pytestmark = pytest.mark.integration


def _amtool(*args: str) -> str:
    proc = subprocess.run([require("amtool"), *args], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, f"amtool {' '.join(args)}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_amtool_check_config():
    out = _amtool("check-config", str(CONFIG))
    assert "SUCCESS" in out


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        # exhausted budget: the automation webhook AND Slack (continue: true)
        (
            "alertname=AispendBudgetExhausted budget=openai-monthly period=month threshold=100 severity=critical",
            ["budget-webhook", "slack"],
        ),
        (
            "alertname=AispendBudgetThresholdReached budget=openai-monthly period=month threshold=75 severity=warning",
            ["slack"],
        ),
        (
            "alertname=AispendBudgetThresholdReached budget=chat-daily period=day threshold=50 severity=info",
            ["email"],
        ),
        ("alertname=AispendBudgetForecastOverrun budget=openai-monthly period=month severity=warning", ["slack"]),
        ("alertname=AispendHighErrorRatio provider=openai severity=warning", ["slack"]),
        (
            "alertname=AispendExporterDown job=aispend instance=127.0.0.1:9464 severity=critical",
            ["oncall-webhook", "slack"],
        ),
        ("alertname=AispendSpansRejected reason=malformed severity=info", ["email"]),
    ],
)
def test_routes(labels, receivers):
    out = _amtool("config", "routes", "test", f"--config.file={CONFIG}", *labels.split())
    assert out.strip().splitlines()[-1].split(",") == receivers


def test_grouping_and_inhibition_contract():
    config = yaml.safe_load(CONFIG.read_text())
    route = config["route"]
    assert route["group_by"] == ["alertname", "provider"]
    budget_routes = [r for r in route["routes"] if 'alertname=~"AispendBudget.+"' in r.get("matchers", [])]
    assert budget_routes and budget_routes[0]["group_by"] == ["alertname", "budget", "period"]
    webhook = next(r for r in config["receivers"] if r["name"] == "budget-webhook")
    assert webhook["webhook_configs"][0]["url"] == "http://127.0.0.1:9099/alerts"
    for rule in config["inhibit_rules"]:
        assert rule["equal"] == ["budget", "period"]


# --- a real Alertmanager -------------------------------------------------------------------


class _Sink(ThreadingHTTPServer):
    """Records every POST (path, JSON body) sent by Alertmanager's receivers."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SinkHandler)
        self.lock = threading.Lock()
        self.received: list[tuple[str, dict]] = []

    def bodies(self, path: str) -> list[dict]:
        with self.lock:
            return [body for p, body in self.received if p == path]


class _SinkHandler(BaseHTTPRequestHandler):
    server: _Sink

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        with self.server.lock:
            self.server.received.append((self.path, body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _test_config(sink_port: int) -> dict:
    """The shipped config pointed at the sink, with 1s timings (tests/support/stack.py); email goes
    to a port where nothing listens."""
    config = yaml.safe_load(CONFIG.read_text())
    point_alertmanager_at(config, f"http://127.0.0.1:{sink_port}")
    config["global"]["smtp_smarthost"] = f"127.0.0.1:{_free_port()}"
    return config


def _get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


def _wait_for(what: str, check: object, proc: subprocess.Popen, log: Path) -> object:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"alertmanager exited ({proc.returncode}) waiting for {what}:\n{log.read_text()}")
        try:
            result = check()
        except (urllib.error.URLError, ConnectionError):
            result = None
        if result:
            return result
        time.sleep(0.1)
    pytest.fail(f"timed out after {WAIT_S}s waiting for {what}; alertmanager log:\n{log.read_text()}")


def _alert(budget: str, period: str, threshold: str, severity: str) -> dict:
    name = "AispendBudgetExhausted" if threshold == "100" else "AispendBudgetThresholdReached"
    now = datetime.now(UTC)
    return {
        "labels": {
            "alertname": name,
            "budget": budget,
            "period": period,
            "threshold": threshold,
            "severity": severity,
        },
        "annotations": {
            "summary": f"Budget {budget} reached {threshold}%",
            "description": f"test alert {name} {budget} {threshold}",
            "runbook_url": f"https://github.com/aispend/aispend/blob/main/docs/runbook.md#{name.lower()}",
        },
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=10)).isoformat(),
    }


def test_real_alertmanager_routes_and_inhibits(tmp_path):
    binary = require("prometheus-alertmanager")
    sink = _Sink()
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    config_path = tmp_path / "alertmanager.yml"
    config_path.write_text(yaml.safe_dump(_test_config(sink.server_address[1])))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "alertmanager.log"
    proc = None
    try:
        with log.open("w") as log_file:
            proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_path}",
                    f"--storage.path={tmp_path / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--cluster.listen-address=",  # no clustering (no gossip port)
                    "--log.level=debug",
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )

        def ready() -> bool:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as resp:
                return resp.status == 200

        _wait_for("readiness", ready, proc, log)

        alerts = [
            _alert("openai-monthly", "month", "100", "critical"),
            _alert("openai-monthly", "month", "90", "warning"),  # inhibited by the 100
            _alert("other-budget", "month", "90", "warning"),  # control: not inhibited
        ]
        request = urllib.request.Request(
            f"{url}/api/v2/alerts",
            data=json.dumps(alerts).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert resp.status == 200

        # 1. the webhook gets the Exhausted alert, and only it
        def webhook_alerts() -> list[dict]:
            return [a for body in sink.bodies("/budget-webhook") for a in body.get("alerts", [])]

        got = _wait_for("the budget-webhook notification", webhook_alerts, proc, log)
        assert {a["labels"]["alertname"] for a in got} == {"AispendBudgetExhausted"}
        assert got[0]["labels"]["budget"] == "openai-monthly"

        # 2. Slack gets it too (continue: true), and the control 90% alert of another budget
        def slack_text() -> str:
            return "\n".join(json.dumps(body) for body in sink.bodies("/slack"))

        _wait_for(
            "Slack notifications for the exhausted budget and the control alert",
            lambda: (
                "Budget openai-monthly reached 100%" in slack_text()
                and "Budget other-budget reached 90%" in slack_text()
            ),
            proc,
            log,
        )

        # 3. the 90% alert of the exhausted budget is inhibited
        def inhibited() -> list[dict]:
            listed = _get_json(f"{url}/api/v2/alerts")
            return [
                a
                for a in listed
                if a["labels"]["budget"] == "openai-monthly"
                and a["labels"]["threshold"] == "90"
                and a["status"]["inhibitedBy"]
            ]

        (alert,) = _wait_for("the 90% alert to show as inhibited", inhibited, proc, log)
        assert alert["status"]["state"] == "suppressed"
        # it was never sent: its group (same route and timings as the control, which has
        # arrived) has flushed; allow one more group_interval for stragglers
        time.sleep(1.5)
        assert "Budget openai-monthly reached 90%" not in slack_text()
        assert all(a["labels"]["threshold"] == "100" for a in webhook_alerts())
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(timeout=10)
        sink.shutdown()
        sink.server_close()
