"""otel-collector.yaml (and its compose overlay): components wired, port contract kept.

There is no collector binary on the test machine, so this checks what the collector would
reject at start (a pipeline naming an undefined component) and aispend's port contract.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "otel-collector.yaml"
OVERLAY = ROOT / "otel-collector.compose.yaml"


def _load(path: Path) -> dict:
    with path.open() as f:
        return yaml.safe_load(f)


def _merge(base: dict, overlay: dict) -> dict:
    """Deep-merge maps like the collector does for repeated --config flags (lists replaced)."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def _check_wiring(config: dict) -> None:
    service = config["service"]
    assert service["pipelines"], "no pipelines"
    for pipeline_name, pipeline in service["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in (config.get(kind) or {}), (
                    f"pipeline {pipeline_name} uses {kind[:-1]} {component!r}, not defined under {kind}:"
                )
        assert pipeline.get("receivers") and pipeline.get("exporters"), pipeline_name
    for extension in service.get("extensions", []):
        assert extension in (config.get("extensions") or {}), f"extension {extension!r} not defined"


def test_every_component_used_is_defined():
    _check_wiring(_load(CONFIG))


def test_otlp_receiver_ports():
    protocols = _load(CONFIG)["receivers"]["otlp"]["protocols"]
    assert _port(protocols["grpc"]["endpoint"]) == 4317
    assert _port(protocols["http"]["endpoint"]) == 4318


def test_aispend_exporter_and_pipeline():
    config = _load(CONFIG)
    exporter = config["exporters"]["otlp/aispend"]
    assert exporter["endpoint"] == "127.0.0.1:14317"
    assert exporter["retry_on_failure"]["enabled"] is True
    pipelines = [p for p in config["service"]["pipelines"].values() if "otlp/aispend" in p["exporters"]]
    assert len(pipelines) == 1
    (pipeline,) = pipelines
    assert "otlp" in pipeline["receivers"]
    assert pipeline["processors"][0] == "memory_limiter", "memory_limiter must come first"
    assert "batch" in pipeline["processors"]
    # every span is a billed call: nothing may sample the cost pipeline
    assert not [p for p in pipeline["processors"] if "sampl" in p or p.startswith("filter")]


def test_sending_queue_is_persistent_in_file_storage():
    config = _load(CONFIG)
    queue = config["exporters"]["otlp/aispend"]["sending_queue"]
    assert queue["enabled"] is True
    storage = queue["storage"]
    assert storage.split("/")[0] == "file_storage"
    assert storage in config["extensions"]
    assert storage in config["service"]["extensions"], "the storage extension must be enabled in service"
    assert config["extensions"][storage]["directory"]


def test_port_contract_is_written_down():
    text = CONFIG.read_text()
    assert "--otlp-grpc 127.0.0.1:14317 --otlp-http 127.0.0.1:14318" in text
    assert "4317" in text and "4318" in text and "9464" in text


def test_compose_overlay_only_moves_the_aispend_endpoint():
    overlay = _load(OVERLAY)
    assert overlay == {"exporters": {"otlp/aispend": {"endpoint": "aispend:14317"}}}
    merged = _merge(_load(CONFIG), overlay)
    _check_wiring(merged)
    assert merged["exporters"]["otlp/aispend"]["sending_queue"]["storage"] == "file_storage/queue"
