"""Who may read spend: with any token configured, GET /metrics and /v1/* need a bearer token (the
read token or the admin token; without a read token, the OTLP token too); /healthz stays open.
Tokens are compared in constant time everywhere; the shipped configs show how to scrape with one."""

from __future__ import annotations

import ast
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
import yaml

from aispend.exporter.config import ExporterConfig
from aispend.exporter.grpc_receiver import EXPORT_METHOD
from aispend.exporter.tokens import bearer_matches, read_tokens
from tests.exporter.server import running
from tests.exporter.spans import llm, otlp_request

ROOT = Path(__file__).resolve().parents[2]
READS = ("/metrics", "/v1/budgets", "/v1/usage", "/v1/calls")


def get(port: int, path: str, token: str | None = None) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


@pytest.mark.parametrize(
    ("config", "allowed", "refused"),
    [
        ({"auth_token": "otlp", "admin_token": "adm"}, ["adm", "otlp"], [None, "wrong", "Bearer adm"]),
        ({"auth_token": "otlp", "admin_token": "adm", "read_token": "rd"}, ["rd", "adm"], [None, "otlp", "rd2"]),
        ({"read_token": "rd"}, ["rd"], [None, ""]),
        ({"auth_token": "otlp"}, ["otlp"], [None, "x"]),
    ],
)
def test_spend_is_readable_only_with_a_token(tmp_path, config, allowed, refused):
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("budgets: [{name: a, amount_usd: 1}]")
    with running(budgets=str(budgets), ledger=f"sqlite:///{tmp_path}/l.sqlite", **config) as exporter:
        port = exporter.ports["metrics"]
        for path in READS:
            for token in allowed:
                assert get(port, path, token) == 200, (path, token)
            for token in refused:
                assert get(port, path, token) == 401, (path, token)
        assert get(port, "/healthz") == 200


def test_reads_are_open_without_any_token():
    with running() as exporter:
        assert all(get(exporter.ports["metrics"], path) == 200 for path in READS)


def test_the_read_tokens_rule():
    assert read_tokens(ExporterConfig()) == ()
    assert read_tokens(ExporterConfig(auth_token="o", admin_token="a")) == ("a", "o")
    assert read_tokens(ExporterConfig(auth_token="o", admin_token="a", read_token="r")) == ("r", "a")


def test_bearer_tokens_compare_in_constant_time():
    assert bearer_matches("Bearer s3cret", ["other", "s3cret"])
    assert not bearer_matches("Bearer s3cre", ["s3cret"]) and not bearer_matches(None, ["s3cret"])
    assert not bearer_matches("Bearer ", ["", None])  # an empty token never matches
    # every comparison of a token in the exporter goes through the one constant-time helper
    for path in (ROOT / "exporter").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                names = {n.id if isinstance(n, ast.Name) else getattr(n, "attr", "") for n in ast.walk(node)}
                assert not any("token" in name.lower() for name in names if name), (path.name, ast.unparse(node))


def test_grpc_token_is_checked():
    with running(auth_token="s3cret") as exporter:
        body = otlp_request([llm("openai", "gpt-4", 1, 1)]).SerializeToString()
        with grpc.insecure_channel(f"127.0.0.1:{exporter.ports['otlp_grpc']}") as channel:
            export = channel.unary_unary(EXPORT_METHOD)
            for metadata in ((), (("authorization", "Bearer s3cre"),), (("authorization", "s3cret"),)):
                with pytest.raises(grpc.RpcError) as err:
                    export(body, metadata=metadata, timeout=10)
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            export(body, metadata=(("authorization", "Bearer s3cret"),), timeout=10)


def test_prometheus_scrapes_a_protected_exporter_with_the_token_file(tmp_path):
    """The shipped prometheus.yml with its `authorization` block filled in, as `make run` does."""
    import json
    import socket
    import time

    from aispend.devstack import Stack, StackConfig
    from tests.support.binaries import require

    require("prometheus")

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    config = StackConfig(
        workdir=tmp_path,
        otlp_grpc=free_port(),
        otlp_http=free_port(),
        metrics=free_port(),
        prometheus=free_port(),
        scrape_interval="1s",
        read_token="scrape-me",
    )
    stack = Stack(config)
    try:
        stack.start_exporter()
        assert get(config.metrics, "/metrics") == 401
        assert stack.start_prometheus()
        query = f"http://127.0.0.1:{config.prometheus}/api/v1/query?query=up%7Bjob%3D%22aispend%22%7D"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            result = json.load(urllib.request.urlopen(query, timeout=5))["data"]["result"]
            if result and result[0]["value"][1] == "1":
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"Prometheus did not scrape the exporter with the token: {result}")
        assert "scrape-me" not in (tmp_path / "prometheus.yml").read_text()  # a file, not inline
    finally:
        stack.stop()


def test_shipped_configs_are_safe_by_default():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    ports = compose["services"]["aispend"]["ports"]
    assert ports and all(str(p).startswith("127.0.0.1:") for p in ports)  # spend is not published
    for name in ("prometheus.yml", "prometheus.compose.yml"):
        text = (ROOT / "prometheus" / name).read_text()
        assert "authorization:" in text and "credentials_file:" in text, name
