"""The whole path with real processes: an app under `opentelemetry-instrument` calls OpenAI,
Anthropic, Serper and Unsplash fakes; spans go over OTLP to `aispend serve`; a real Prometheus
scrapes it and evaluates the shipped rules; a budget below the spend fires through a real
Alertmanager to a local webhook."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from aispend.devstack import Stack, StackConfig
from tests.fakes.providers import FakeProviders
from tests.grafana.queries import grafana_queries
from tests.support.binaries import require
from tests.support.polling import eventually
from tests.support.stack import point_alertmanager_at, shop_app_env

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
M = 1e6
# What the fakes answer, priced by hand from the vendors' list prices (per 1M tokens):
GPT4O = (7 * 2.5 + 4 * 1.25 + 7 * 10) / M  # 11 input of which 4 cached, 7 output
GPT4O_MINI = (7 * 0.15 + 4 * 0.075 + 7 * 0.6) / M
HAIKU45 = (9 * 1 + 3 * 0.1 + 5 * 1.25 + 6 * 5) / M  # input 9 + cache read 3 + cache write 5, output 6
BUDGETS = """
timezone: UTC
budgets:
  - {name: shop-daily, period: day, amount_usd: 0.0001, scope: {service: shop}, thresholds: [50, 100]}
  - {name: roomy, period: month, amount_usd: 100, scope: {customer: acme}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Webhook(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.received: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.received.append({"path": self.path, **json.loads(body)})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def query(port: int, promql: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as response:
        data = json.load(response)
    assert data["status"] == "success", data
    return data["data"]["result"]


def scalar(port: int, promql: str) -> float | None:
    result = query(port, promql)
    return float(result[0]["value"][1]) if result else None


def wait_for(what: str, check, timeout: float = 60.0, stack: Stack | None = None):
    value = eventually(check, timeout, interval=0.2)
    if value:
        return value
    logs = "\n".join(f"--- {n}\n{stack.log(n)}" for n in stack.procs) if stack else ""
    pytest.fail(f"timed out waiting for {what}\n{logs}")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    require("prometheus")
    require("prometheus-alertmanager")
    tmp = tmp_path_factory.mktemp("stack")
    (tmp / "budgets.yaml").write_text(BUDGETS)
    hook = Webhook()
    hook_url = f"http://127.0.0.1:{hook.server_address[1]}"

    def edit_alertmanager(config: dict) -> None:
        point_alertmanager_at(config, hook_url)

    stack = Stack(
        StackConfig(
            workdir=tmp,
            budgets=tmp / "budgets.yaml",
            otlp_grpc=free_port(),
            otlp_http=free_port(),
            metrics=free_port(),
            prometheus=free_port(),
            alertmanager=free_port(),
            # the shipped 5 s scrape of aispend (the latency is measured with it); rules every 1 s
            evaluation_interval="1s",
            alertmanager_edit=edit_alertmanager,
        )
    )
    fake = FakeProviders().start()
    try:
        stack.start_exporter()
        assert stack.start_prometheus() and stack.start_alertmanager()
        env = {**shop_app_env(fake.url, f"http://127.0.0.1:{stack.config.otlp_grpc}", "grpc"), "SHOP_MISHAPS": "1"}
        env.pop("OTEL_BSP_SCHEDULE_DELAY")  # the SDK's default batching, as users run it

        def run_app() -> float:
            app = subprocess.run(
                [str(BIN / "opentelemetry-instrument"), sys.executable, str(ROOT / "tests/apps/shop.py")],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert app.returncode == 0, app.stderr
            return float(app.stdout.split("shop: done at ")[1])

        # Twice: a counter's first sample carries no increase for PromQL, so the second run is
        # what increase()/rate() (recording rules, dashboards) see.
        run_app()
        wait_for(
            "the first run's series",
            lambda: scalar(stack.config.prometheus, "sum(aispend_cost_usd_total)"),
            stack=stack,
        )
        done_at = run_app()
        yield stack, hook, done_at
    finally:
        fake.stop()
        stack.stop()
        hook.shutdown()


def test_call_to_prometheus_latency_and_exact_costs(world):
    stack, _, done_at = world
    port = stack.config.prometheus
    expected_total = 2 * (GPT4O + GPT4O_MINI + HAIKU45)
    wait_for(
        "the cost in Prometheus",
        lambda: (v := scalar(port, "sum(aispend_cost_usd_total)")) is not None and abs(v - expected_total) < 1e-12,
        stack=stack,
    )
    latency = time.time() - done_at
    print(
        f"\ntime from the app's last call to its cost in Prometheus: {latency:.2f} s "
        f"(OTel batch export at app exit + the shipped 5 s scrape)"
    )
    assert latency < 10

    def by(label: str) -> dict[str, float]:
        return {
            r["metric"].get(label, ""): float(r["value"][1])
            for r in query(port, f"sum by ({label}) (aispend_cost_usd_total)")
        }

    def twice(d: dict[str, float]) -> dict[str, float]:
        return {k: 2 * v for k, v in d.items()}

    assert by("model") == pytest.approx(
        twice(
            {
                "gpt-4o": GPT4O,
                "gpt-4o-mini": GPT4O_MINI,
                "claude-haiku-4-5": HAIKU45,
                "search": 0,
                "search-photos": 0,
                "gpt-9-preview": 0,
            }
        ),
        abs=1e-12,
    )
    assert by("customer") == pytest.approx(twice({"acme": GPT4O + GPT4O_MINI, "globex": HAIKU45}), abs=1e-12)
    assert by("feature") == pytest.approx(
        twice({"summary": GPT4O + GPT4O_MINI, "chat": HAIKU45, "research": 0}), abs=1e-12
    )
    assert by("key") == pytest.approx(
        twice({"sk-proj-…a1b2": GPT4O + GPT4O_MINI, "sk-ant-…c3d4": HAIKU45, "…serp": 0, "…key1": 0}), abs=1e-12
    )
    assert scalar(port, 'sum(aispend_requests_total{status="rate_limited"})') == 2
    assert scalar(port, 'sum(aispend_unpriced_requests_total{model="gpt-9-preview"})') == 2
    tokens = {
        r["metric"]["type"]: float(r["value"][1])
        for r in query(port, 'sum by (type) (aispend_tokens_total{provider="anthropic"})')
    }
    assert tokens == {"input": 34, "output": 12, "cache_read": 6, "cache_write": 10}


def test_recording_rules_are_evaluated(world):
    stack, _, _ = world
    port = stack.config.prometheus
    value = wait_for(
        "the recording rule",
        lambda: scalar(port, 'sum(customer:aispend_cost_usd:increase1h{customer="globex"})'),
        stack=stack,
    )
    # globex spent HAIKU45 per run; increase() extrapolates the young series back towards zero,
    # so the recorded 1h increase lies between the one observed increment and the whole spend
    assert HAIKU45 * 0.99 <= value <= 2.5 * HAIKU45  # (and a little past the last sample too)


def test_budget_alert_reaches_the_webhook_through_alertmanager(world):
    stack, hook, _ = world
    port = stack.config.prometheus
    spend = wait_for(
        "the budget gauge", lambda: scalar(port, 'aispend_budget_spend_usd{budget="shop-daily"}'), stack=stack
    )
    assert spend == pytest.approx(2 * (GPT4O + GPT4O_MINI + HAIKU45), abs=1e-12)  # $0.00029 of $0.0001
    assert scalar(port, 'aispend_budget_limit_usd{budget="shop-daily"}') == 0.0001

    def exhausted():
        return [
            a
            for message in hook.received
            for a in message.get("alerts", [])
            if message["path"] == "/budget-webhook" and a["labels"]["alertname"] == "AispendBudgetExhausted"
        ]

    alerts = wait_for("AispendBudgetExhausted at the webhook", exhausted, timeout=90, stack=stack)
    labels = alerts[0]["labels"]
    assert (labels["budget"], labels["period"], labels["threshold"], labels["severity"]) == (
        "shop-daily",
        "day",
        "100",
        "critical",
    )
    assert "shop-daily" in alerts[0]["annotations"]["summary"]
    # the roomy budget covers acme's spend but is nowhere near its limit: no alert for it
    assert not [a for m in hook.received for a in m.get("alerts", []) if a["labels"].get("budget") == "roomy"]


def test_every_dashboard_query_returns_data(world):
    stack, _, _ = world
    port = stack.config.prometheus
    wait_for("rates over the second run", lambda: scalar(port, "sum(rate(aispend_cost_usd_total[1m]))"), stack=stack)
    queries = grafana_queries({"key": "sk-proj-…a1b2", "customer": "acme"})
    empty = [(uid, title, expr) for uid, title, expr in queries if not query(port, expr)]
    assert not empty, "panels without data:\n" + "\n".join(f"{u} / {t}: {e}" for u, t, e in empty)
    assert len(queries) >= 30
