"""compose.yaml: mounted files exist, and ports agree with the Dockerfile and the configs.

No Docker on the test machine: this checks what `docker compose up` would trip over
(missing bind-mount sources, a Prometheus target or collector endpoint on the wrong port).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"


def _load(path: Path) -> dict:
    with path.open() as f:
        return yaml.safe_load(f)


def _services() -> dict:
    return _load(COMPOSE)["services"]


def _mounts(service: dict) -> list[tuple[str, str]]:
    """(source, target) of each volume entry (short syntax)."""
    out = []
    for entry in service.get("volumes", []):
        source, target = entry.split(":")[:2]
        out.append((source, target))
    return out


def _published(service: dict) -> set[int]:
    return {int(str(p).split(":")[-1].split("/")[0]) for p in service.get("ports", [])}


def _flag(args: list[str], name: str) -> str:
    for i, arg in enumerate(args):
        if arg == name:
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{name} not in {args}")


def _dockerfile_cmd() -> list[str]:
    match = re.search(r"^CMD\s+(\[.*\])\s*$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match, "Dockerfile needs an exec-form CMD"
    return json.loads(match.group(1))


def test_services_present():
    assert set(_services()) >= {"otel-collector", "aispend", "prometheus", "alertmanager", "grafana"}
    images = {name: svc.get("image", "") for name, svc in _services().items()}
    assert images["otel-collector"].startswith("otel/opentelemetry-collector-contrib")
    assert images["prometheus"].startswith("prom/prometheus")
    assert images["alertmanager"].startswith("prom/alertmanager")
    assert images["grafana"].startswith("grafana/grafana")


@pytest.mark.parametrize(
    ("service", "source"),
    [
        (name, source)
        for name, svc in _load(COMPOSE)["services"].items()
        for source, _ in _mounts(svc)
        if source.startswith((".", "/"))
    ],
)
def test_bind_mount_sources_exist(service, source):
    assert (ROOT / source).exists(), f"{service} mounts {source}, which is not in the repository"


def test_named_volumes_are_declared():
    declared = set(_load(COMPOSE).get("volumes") or {})
    for name, svc in _services().items():
        for source, _ in _mounts(svc):
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} not declared"


def test_dockerfile():
    assert DOCKERFILE.is_file()
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.MULTILINE)
    assert "pip install ." in text
    cmd = _dockerfile_cmd()
    assert cmd[:2] == ["aispend", "serve"]
    assert _flag(cmd, "--ledger") == "sqlite:////data/aispend.sqlite"
    assert _services()["aispend"]["build"] in (".", "./", {"context": "."})


def test_collector_ports_and_endpoint_match_aispend():
    svc = _services()["otel-collector"]
    collector = _load(ROOT / "otel-collector.yaml")
    protocols = collector["receivers"]["otlp"]["protocols"]
    receiver_ports = {int(protocols[p]["endpoint"].rsplit(":", 1)[1]) for p in ("grpc", "http")}
    health_port = int(collector["extensions"]["health_check"]["endpoint"].rsplit(":", 1)[1])
    metrics_port = collector["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]["port"]
    assert receiver_ports == {4317, 4318}
    assert _published(svc) == receiver_ports | {health_port, metrics_port}
    # the collector gets the one shipped config, the same file as on a host
    mounts = {target: source for source, target in _mounts(svc)}
    configs = [arg.split("=", 1)[1] for arg in svc["command"] if arg.startswith("--config=")]
    assert [mounts[c] for c in configs] == ["./otel-collector.yaml"]
    # its aispend endpoint, from the environment, is the aispend service on aispend's --otlp-grpc port
    assert collector["exporters"]["otlp_grpc/aispend"]["endpoint"] == "${env:AISPEND_OTLP_ENDPOINT:-127.0.0.1:14317}"
    host, port = svc["environment"]["AISPEND_OTLP_ENDPOINT"].rsplit(":", 1)
    assert host == "aispend"
    assert port == _flag(_dockerfile_cmd(), "--otlp-grpc").rsplit(":", 1)[1] == "14317"
    # the persistent queue directory is a volume
    directory = collector["extensions"]["file_storage/queue"]["directory"]
    assert directory == "${env:AISPEND_COLLECTOR_QUEUE:-/var/lib/otelcol/file_storage}"
    assert svc["environment"]["AISPEND_COLLECTOR_QUEUE"] in mounts


def test_collector_image_is_the_release_the_config_is_validated_against():
    """bin/otelcol-aispend (which validates the config in tests/ops) and the compose image are one release."""
    manifest = _load(ROOT / "collector" / "builder-config.yaml")
    versions = {
        entry["gomod"].split()[1] for kind in ("receivers", "processors", "exporters") for entry in manifest[kind]
    }
    (version,) = versions
    assert _services()["otel-collector"]["image"] == f"otel/opentelemetry-collector-contrib:{version.lstrip('v')}"


def test_prometheus_targets_match_services():
    services = _services()
    svc = services["prometheus"]
    mounts = {target: source for source, target in _mounts(svc)}
    config_path = _flag(svc["command"], "--config.file")
    assert mounts[config_path] == "./prometheus/prometheus.compose.yml"
    # rule_files are relative to the config file's directory
    config = _load(ROOT / "prometheus" / "prometheus.compose.yml")
    assert config["rule_files"] == ["rules/*.yml"]
    assert mounts[str(Path(config_path).parent / "rules")] == "./prometheus/rules"
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    metrics_port = _flag(_dockerfile_cmd(), "--metrics").rsplit(":", 1)[1]
    assert jobs["aispend"] == [f"aispend:{metrics_port}"]
    assert int(metrics_port) in _published(services["aispend"])
    (am_target,) = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    host, port = am_target.split(":")
    assert host in services
    assert int(port) in _published(services[host]) == {9093}
    assert 9090 in _published(svc)


def test_alertmanager_and_grafana_mounts():
    services = _services()
    am = services["alertmanager"]
    mounts = {target: source for source, target in _mounts(am)}
    assert mounts[_flag(am["command"], "--config.file")] == "./prometheus/alertmanager.yml"
    grafana = {target: source for source, target in _mounts(services["grafana"])}
    assert grafana["/etc/grafana/provisioning"] == "./grafana/provisioning"
    assert grafana["/var/lib/grafana/dashboards"] == "./grafana/dashboards"
    assert 3000 in _published(services["grafana"])
