"""The peer in the exporter throughput benchmark: the OpenTelemetry Collector's spanmetrics connector
(bin/otelcol-aispend, `make collector`) over the same OTLP span batches `aispend serve` is sent.

spanmetrics is the closest thing the collector has to aispend: it turns spans into request counts and
duration histograms per label set, but knows no prices, tokens or ledger. Here it aggregates by the
labels aispend keys its cost series on (provider, model, feature, customer, key).

Used by `benchmarks/exporter_throughput.py --peer-spanmetrics`; alone:
    .venv/bin/python benchmarks/spanmetrics_peer.py [--batches 200]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.exporter.server import value
from tests.support.collector import binary, free_port, scrape
from tests.support.polling import eventually

BATCH = 512


def config(grpc_port: int, health_port: int, metrics_port: int) -> dict:
    """OTLP in -> spanmetrics -> metrics out to the debug exporter (one line per flush)."""
    return {
        "receivers": {
            "otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{grpc_port}", "max_recv_msg_size_mib": 64}}}
        },
        "connectors": {
            "span_metrics": {
                "dimensions": [
                    {"name": "gen_ai.provider.name"},
                    {"name": "gen_ai.request.model"},
                    {"name": "aispend.feature"},
                    {"name": "aispend.customer"},
                    {"name": "aispend.key"},
                ],
                "metrics_flush_interval": "1s",
                "aggregation_cardinality_limit": 200_000,
            }
        },
        "exporters": {"debug": {"verbosity": "basic"}},
        "extensions": {"health_check": {"endpoint": f"127.0.0.1:{health_port}"}},
        "service": {
            "extensions": ["health_check"],
            "pipelines": {
                "traces": {"receivers": ["otlp"], "exporters": ["span_metrics"]},
                "metrics": {"receivers": ["span_metrics"], "exporters": ["debug"]},
            },
            "telemetry": {
                "logs": {"level": "warn"},
                # its own counters, to check that every span was taken and turned into metrics
                "metrics": {
                    "level": "normal",
                    "readers": [{"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": metrics_port}}}}],
                },
            },
        },
    }


def run(payloads: list[bytes], tmp: Path, send: Callable[[int, list[bytes]], float]) -> float:
    """Spans per second the spanmetrics connector takes, ``payloads[0]`` being the warm-up that
    ``send`` (exporter_throughput.send_all: same senders, same streams) excludes from its time.
    spanmetrics aggregates inside the export call, so an export's answer means its spans are counted."""
    grpc_port, health_port, metrics_port = free_port(), free_port(), free_port()
    path = tmp / "spanmetrics.yaml"
    path.write_text(yaml.safe_dump(config(grpc_port, health_port, metrics_port)))
    with (tmp / "spanmetrics.log").open("ab") as log:
        proc = subprocess.Popen([str(binary()), "--config", str(path)], stdout=log, stderr=subprocess.STDOUT)

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    try:
        if not eventually(healthy, timeout=30, interval=0.1):
            raise RuntimeError(f"the collector did not start: {(tmp / 'spanmetrics.log').read_text()[-2000:]}")
        elapsed = send(grpc_port, payloads)
        # the peer did the work: every span accepted, and metrics came out of the connector
        accepted = value(scrape(metrics_port), "otelcol_receiver_accepted_spans")
        if accepted != len(payloads) * BATCH:
            raise RuntimeError(f"the collector accepted {accepted:.0f} of {len(payloads) * BATCH} spans")
        points = "otelcol_exporter_sent_metric_points"
        if not eventually(lambda: value(scrape(metrics_port), points, exporter="debug") > 0, timeout=10):
            raise RuntimeError("the span_metrics connector produced no metrics")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return (len(payloads) - 1) * BATCH / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args()
    from benchmarks.exporter_throughput import batches, send_all

    payloads = batches(args.batches + 1, customers=1000)
    with tempfile.TemporaryDirectory() as tmp:
        rate = run(payloads, Path(tmp), send_all)
    print(f"collector spanmetrics connector, gRPC: {rate:>10,.0f} spans/s ({args.batches} batches of {BATCH})")


if __name__ == "__main__":
    main()
