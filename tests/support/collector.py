"""The real OpenTelemetry Collector (bin/otelcol-aispend, built by `make collector`) for a test.

The config is the shipped otel-collector.yaml (plus collector/scale-out.yaml for several aispend
replicas), rewritten for a test only: every port is a free 127.0.0.1 port, the queue lives in the
test's directory, the aispend exporter points at the test's aispend(s), and retries back off to at
most 1 s instead of 30 s so a restarted aispend is used within a second. Everything else (filter,
queue, batching, retry forever, memory limiter) is exactly as shipped.
"""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.support.polling import eventually
from tests.support.processes import LoggedProcess
from tests.support.stack import ROOT

BINARY = ROOT / "bin" / "otelcol-aispend"
CONFIG = ROOT / "otel-collector.yaml"
SCALE_OUT = ROOT / "collector" / "scale-out.yaml"


def binary() -> Path:
    """bin/otelcol-aispend; fails the calling test (never skips) when it was not built."""
    if not (BINARY.is_file() and os.access(BINARY, os.X_OK)):
        pytest.fail(
            f"{BINARY} not found: build it with `make collector` (`make test` builds it; it needs Go, which "
            "collector/go.sh installs from Debian's golang-go + the Go module proxy when missing)",
            pytrace=False,
        )
    return BINARY


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def merge(base: dict, overlay: dict) -> dict:
    """Deep-merge maps like the collector does for repeated --config flags (lists replaced)."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load(*paths: Path) -> dict:
    config: dict = {}
    for path in paths:
        with path.open() as f:
            config = merge(config, yaml.safe_load(f))
    return config


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


class Collector(LoggedProcess):
    """One collector process; ``start()`` returns once its health check says every pipeline runs."""

    def __init__(
        self,
        tmp: Path,
        aispend: list[str],
        *,
        queue: Path | None = None,
        name: str = "collector",
        load_balancing: bool | None = None,
    ) -> None:
        self.binary = binary()
        self.tmp = tmp
        self.queue = queue or tmp / f"{name}-queue"
        self.ports = {k: free_port() for k in ("otlp_grpc", "otlp_http", "health", "metrics")}
        self.config_path = tmp / f"{name}.yaml"
        self.log_path = tmp / f"{name}.log"
        self.config = self.generate(aispend, len(aispend) > 1 if load_balancing is None else load_balancing)
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self.proc: subprocess.Popen[bytes] | None = None

    def generate(self, aispend: list[str], scale_out: bool) -> dict[str, Any]:
        """The shipped config (with the scale-out overlay when ``scale_out``) on this test's ports."""
        config = load(CONFIG, SCALE_OUT) if scale_out else load(CONFIG)
        protocols = config["receivers"]["otlp"]["protocols"]
        protocols["grpc"]["endpoint"] = f"127.0.0.1:{self.ports['otlp_grpc']}"
        protocols["http"]["endpoint"] = f"127.0.0.1:{self.ports['otlp_http']}"
        config["extensions"]["health_check"]["endpoint"] = f"127.0.0.1:{self.ports['health']}"
        storage = config["extensions"]["file_storage/queue"]
        storage["directory"] = storage["compaction"]["directory"] = str(self.queue)
        prometheus = config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]
        prometheus.update(host="127.0.0.1", port=self.ports["metrics"])
        (exporter_id,) = config["service"]["pipelines"]["traces/aispend"]["exporters"]
        exporter = config["exporters"][exporter_id]
        if exporter_id.startswith("load_balancing"):
            exporter["resolver"]["static"]["hostnames"] = list(aispend)
        else:
            exporter["endpoint"] = aispend[0]
        exporter["retry_on_failure"].update(initial_interval="200ms", max_interval="1s")
        self.exporter_id = exporter_id
        return config

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['otlp_grpc']}"

    def start(self, timeout: float = 30.0) -> Collector:
        self.queue.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(self.binary), "--config", str(self.config_path)], stdout=log, stderr=subprocess.STDOUT
            )
        if not eventually(self.healthy, timeout=timeout, interval=0.1):
            self.kill()
            raise AssertionError(f"the collector did not become healthy in {timeout}s:\n{self.log()[-4000:]}")
        return self

    def healthy(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"the collector exited:\n{self.log()[-4000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['health']}/", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def metrics(self) -> str:
        return scrape(self.ports["metrics"])


class GrpcSink:
    """An OTLP/gRPC trace receiver that keeps every span it is sent (what a collector forwards)."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

        def export(request: Any, context: Any) -> Any:
            self.requests.append(request)
            return ExportTraceServiceResponse()

        handler = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.trace.v1.TraceService",
            {
                "Export": grpc.unary_unary_rpc_method_handler(
                    export,
                    request_deserializer=ExportTraceServiceRequest.FromString,
                    response_serializer=ExportTraceServiceResponse.SerializeToString,
                )
            },
        )
        self.server = grpc.server(ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def span_names(self) -> list[str]:
        return [
            s.name for r in list(self.requests) for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans
        ]

    def close(self) -> None:
        self.server.stop(0)
