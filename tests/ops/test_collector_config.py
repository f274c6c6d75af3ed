"""otel-collector.yaml and its overlays, checked by the real collector (bin/otelcol-aispend from
`make collector`): `validate` accepts them, the GenAI filter run in the collector keeps exactly the
spans aispend's own reader prices, and the settings the production path relies on are in place
(persistent queue, retries that never give up, memory limiter first, health check, self-telemetry,
the port contract).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import grpc
import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from aispend.exporter.grpc_receiver import EXPORT_METHOD
from aispend.exporter.normalise import is_genai
from aispend.exporter.otlp import spans
from tests.exporter.server import value
from tests.exporter.spans import otlp_request
from tests.support.collector import CONFIG, SCALE_OUT, Collector, GrpcSink, binary, load
from tests.support.polling import eventually

ROOT = Path(__file__).resolve().parents[2]
TRACE_BACKEND = ROOT / "collector" / "trace-backend.yaml"
PEER_FIXTURES = ROOT / "tests" / "fixtures" / "peer_spans"


def validate(*configs: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    args = [str(binary()), "validate"]
    for config in configs:
        args += ["--config", str(config)]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})


@pytest.mark.parametrize(
    "overlays",
    [(), (SCALE_OUT,), (TRACE_BACKEND,), (SCALE_OUT, TRACE_BACKEND)],
    ids=["shipped", "scale-out", "trace-backend", "both"],
)
def test_the_real_collector_validates_the_config(overlays):
    result = validate(CONFIG, *overlays)
    assert result.returncode == 0, result.stdout + result.stderr


def test_validate_rejects_a_broken_config(tmp_path):
    """validate really checks: an unknown component setting, a pipeline naming an undefined component."""
    config = load(CONFIG)
    config["exporters"]["otlp_grpc/aispend"]["retry_on_failure"]["give_up_after"] = "1m"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = validate(bad)
    assert result.returncode != 0 and "give_up_after" in result.stdout + result.stderr
    config = load(CONFIG)
    config["service"]["pipelines"]["traces/aispend"]["processors"].append("probabilistic_sampler")
    bad.write_text(yaml.safe_dump(config))
    assert validate(bad).returncode != 0


def test_compose_environment_validates():
    """compose.yaml mounts the same file and only sets its two environment variables."""
    compose = load(ROOT / "compose.yaml")["services"]["otel-collector"]
    assert [v for v in compose["volumes"] if v.startswith("./")] == [
        "./otel-collector.yaml:/etc/otelcol-contrib/config.yaml:ro"
    ]
    env = compose["environment"]
    assert set(env) == {"AISPEND_OTLP_ENDPOINT", "AISPEND_COLLECTOR_QUEUE"}
    result = validate(CONFIG, env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def _peer_spans() -> list[dict]:
    """Every span the real peer instrumentations made (tests/fixtures/peer_spans), as otlp_request specs."""
    out = []
    for path in sorted(PEER_FIXTURES.glob("*.json")):
        for i, entry in enumerate(json.loads(path.read_text())):
            out.append({"name": f"{path.stem}/{i}/{entry['name']}", "attributes": entry["attributes"]})
    return out


# (name, attributes): aispend's own spans, each peer convention, near misses and the spans apps also make
CASES = [
    ("own chat", {"aispend.service.kind": "llm", "gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat"}),
    (
        "own search",
        {"aispend.service.kind": "search", "gen_ai.provider.name": "serper", "gen_ai.operation.name": "search"},
    ),
    (
        "own image",
        {
            "aispend.service.kind": "image",
            "gen_ai.provider.name": "openai",
            "gen_ai.operation.name": "generate_content",
        },
    ),
    ("new provider name", {"gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-haiku-4-5"}),
    ("old system name", {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o"}),
    ("operation only", {"gen_ai.operation.name": "embeddings", "server.address": "api.openai.com"}),
    ("openllmetry llm.request.type", {"llm.request.type": "chat", "llm.request.model": "gpt-4o"}),
    ("llm.provider", {"llm.provider": "openai"}),
    ("llm.system", {"llm.system": "anthropic"}),
    ("openinference LLM", {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o"}),
    ("provider given as a number", {"gen_ai.system": 5}),
    ("openinference CHAIN", {"openinference.span.kind": "CHAIN"}),
    ("empty provider", {"gen_ai.provider.name": "", "gen_ai.request.model": "gpt-4o"}),
    ("model only", {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 10}),
    ("kind only", {"aispend.service.kind": "llm"}),
    ("http client", {"http.request.method": "POST", "url.full": "https://api.openai.com/v1/chat/completions"}),
    ("http server", {"http.request.method": "GET", "http.route": "/checkout", "http.response.status_code": 200}),
    ("database", {"db.system.name": "postgresql", "db.query.text": "SELECT 1"}),
    ("no attributes", {}),
]


def test_filter_forwards_exactly_the_spans_aispend_prices(tmp_path):
    specs = [{"name": name, "attributes": attrs} for name, attrs in CASES] + _peer_spans()
    request = otlp_request(specs, service="filter-test")
    wanted = sorted(s["name"] for s in specs if is_genai(_attributes(request, s["name"])))
    assert {"own chat", "own search", "openinference LLM"} <= set(wanted)
    assert "http server" not in wanted and len(wanted) < len(specs)
    sink = GrpcSink()
    collector = Collector(tmp_path, [sink.address]).start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{collector.ports['otlp_grpc']}") as channel:
            channel.unary_unary(EXPORT_METHOD)(request.SerializeToString(), timeout=10)
        assert eventually(lambda: len(sink.span_names()) >= len(wanted), timeout=15), sink.span_names()
        # nothing else trails in: the collector counted the rest as filtered
        metrics = eventually(lambda: _filtered(collector.metrics()) == len(specs) - len(wanted) and collector.metrics())
        assert metrics, collector.metrics()
    finally:
        collector.stop()
        sink.close()
    assert sorted(sink.span_names()) == wanted


def _attributes(request: ExportTraceServiceRequest, name: str) -> dict:
    """A span's attributes as aispend's reader sees them (decoded from the same protobuf)."""
    for span in spans(request):
        if span.name == name:
            return dict(span.attributes)
    raise KeyError(name)


def _filtered(text: str) -> int:
    return int(value(text, "otelcol_processor_filter_spans_filtered"))


# --- the settings the production path relies on ----------------------------------------------


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def test_otlp_receiver_ports_and_port_contract():
    config = load(CONFIG)
    protocols = config["receivers"]["otlp"]["protocols"]
    assert _port(protocols["grpc"]["endpoint"]) == 4317
    assert _port(protocols["http"]["endpoint"]) == 4318
    assert config["exporters"]["otlp_grpc/aispend"]["endpoint"] == "${env:AISPEND_OTLP_ENDPOINT:-127.0.0.1:14317}"
    text = CONFIG.read_text()
    assert "--otlp-grpc 127.0.0.1:14317 --otlp-http 127.0.0.1:14318" in text
    assert "9464" in text and "13133" in text and "8888" in text


def test_cost_pipeline_filters_and_never_samples_or_holds_spans_in_memory():
    config = load(CONFIG)
    pipelines = [p for p in config["service"]["pipelines"].values() if "otlp_grpc/aispend" in p["exporters"]]
    assert len(pipelines) == 1
    (pipeline,) = pipelines
    assert pipeline["receivers"] == ["otlp"]
    assert pipeline["processors"][0] == "memory_limiter", "memory_limiter must come first"
    assert "filter/genai" in pipeline["processors"]
    # every priced span is a billed call: nothing may sample it, and the batch processor would hold
    # received spans in memory (lost if the collector dies): the exporter's queue batches instead
    assert not [p for p in pipeline["processors"] if "sampl" in p or p.startswith("batch")]
    assert config["exporters"]["otlp_grpc/aispend"]["sending_queue"]["batch"]["sizer"] == "items"


@pytest.mark.parametrize(("overlay", "exporter"), [(None, "otlp_grpc/aispend"), (SCALE_OUT, "load_balancing/aispend")])
def test_queue_is_persistent_and_retries_never_give_up(overlay, exporter):
    config = load(CONFIG, overlay) if overlay else load(CONFIG)
    assert config["service"]["pipelines"]["traces/aispend"]["exporters"] == [exporter]
    settings = config["exporters"][exporter]
    retry = settings["retry_on_failure"]
    assert retry["enabled"] is True and retry["max_elapsed_time"] in ("0s", 0, "0")
    queue = settings["sending_queue"]
    assert queue["enabled"] is True
    storage = queue["storage"]
    assert storage.split("/")[0] == "file_storage"
    assert storage in config["service"]["extensions"], "the storage extension must be enabled in service"
    assert config["extensions"][storage]["directory"]
    if exporter.startswith("load_balancing"):
        # per-replica exporters keep nothing in memory: the queue on disk covers them all
        assert config["exporters"][exporter]["routing_key"] == "traceID"
        assert settings["protocol"]["otlp"]["sending_queue"]["enabled"] is False
        assert settings["protocol"]["otlp"]["retry_on_failure"]["enabled"] is False


def test_health_check_and_self_telemetry():
    config = load(CONFIG)
    assert _port(config["extensions"]["health_check"]["endpoint"]) == 13133
    assert "health_check" in config["service"]["extensions"]
    reader = config["service"]["telemetry"]["metrics"]["readers"][0]
    assert reader["pull"]["exporter"]["prometheus"]["port"] == 8888
    assert config["processors"]["memory_limiter"]["limit_percentage"] > 0


def test_trace_backend_overlay_keeps_every_span():
    config = load(CONFIG, TRACE_BACKEND)
    backend = config["service"]["pipelines"]["traces/backend"]
    assert backend["receivers"] == ["otlp"]
    assert not [p for p in backend["processors"] if p.startswith(("filter", "transform"))]
    assert config["service"]["pipelines"]["traces/aispend"]["processors"] == ["memory_limiter", "filter/genai"]
