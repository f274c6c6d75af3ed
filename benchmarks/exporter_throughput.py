"""Spans per second through `aispend serve`'s gRPC receiver (batches of 512), ledger on and off,
next to bare protobuf decoding of the same batches; and resident memory at 100,000 label sets.

Run: .venv/bin/python benchmarks/exporter_throughput.py [--batches 200] [--series 100000] [--peer-spanmetrics]
Each configuration runs with payloads read in-process and in decode worker processes (--decode-workers).
Targets: >= 50,000 spans/s with the ledger, >= 100,000 without, < 300 MB at 100,000 series.
The server runs as its own process (as deployed); this process only sends pre-built bytes.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from aispend.exporter.grpc_receiver import EXPORT_METHOD
from tests.exporter.spans import otlp_request

BATCH = 512
MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-3-5-haiku-20241022"),
    ("anthropic", "claude-sonnet-4-0"),
    ("gcp.gemini", "gemini-2.0-flash"),
    ("serper", "search"),
]


def span_attrs(i: int, customers: int) -> dict:
    provider, model = MODELS[i % len(MODELS)]
    return {
        "gen_ai.operation.name": "search" if provider == "serper" else "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.response.id": f"resp-{i}",
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 1000 + i % 500,
        "gen_ai.usage.output_tokens": 200 + i % 100,
        "gen_ai.usage.cache_read.input_tokens": i % 300,
        "server.address": "api.example.com",
        "server.port": 443,
        "http.response.status_code": 200,
        "aispend.service.kind": "search" if provider == "serper" else "llm",
        "aispend.feature": f"feature-{i % 20}",
        "aispend.customer": f"customer-{i % customers}",
        "aispend.key": f"sk-…{i % 10:04d}",
    }


def batches(n: int, customers: int, offset: int = 0) -> list[bytes]:
    out = []
    for b in range(n):
        base = offset + b * BATCH
        out.append(
            otlp_request([span_attrs(base + i, customers) for i in range(BATCH)], service="bench").SerializeToString()
        )
    return out


class Server:
    def __init__(self, tmp: Path, ledger: str, extra: list[str]) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aispend.cli",
                "serve",
                "--otlp-grpc",
                "127.0.0.1:0",
                "--otlp-http",
                "",
                "--metrics",
                "127.0.0.1:0",
                "--ledger",
                ledger,
                "--log-level",
                "warning",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=tmp,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"OTLP/gRPC on [^,]*:(\d+)", line)
        if not match:
            raise RuntimeError(f"server did not start: {line}{self.proc.stdout.read()}")
        self.port = int(match.group(1))

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server and its decode workers (user + system)."""
        pids = [self.proc.pid]
        for children in Path(f"/proc/{self.proc.pid}/task").glob("*/children"):
            pids += [int(p) for p in children.read_text().split()]
        total = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def send_all(port: int, payloads: list[bytes], senders: int = 4) -> float:
    """Seconds to export every payload over ``senders`` concurrent streams, as a collector's
    sending queue does (its default is 10 consumers)."""
    channels = [grpc.insecure_channel(f"127.0.0.1:{port}") for _ in range(senders)]
    calls = [c.unary_unary(EXPORT_METHOD) for c in channels]
    calls[0](payloads[0], timeout=60)  # warm-up: connection, first-use imports and caches
    work = list(enumerate(payloads[1:]))
    lock = threading.Lock()

    def run(call: grpc.UnaryUnaryMultiCallable) -> None:
        while True:
            with lock:
                if not work:
                    return
                _, body = work.pop()
            call(body, timeout=60)

    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    for c in channels:
        c.close()
    return elapsed


def decode_rate(payloads: list[bytes]) -> float:
    start = time.perf_counter()
    spans = 0
    for body in payloads:
        request = ExportTraceServiceRequest.FromString(body)
        spans += sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    return spans / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--decode-workers", type=int, default=1, help="for the decode-worker configurations")
    parser.add_argument(
        "--peer-spanmetrics", action="store_true", help="also run the collector's spanmetrics connector (a peer)"
    )
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; batches of {BATCH} spans, {args.batches} batches per run")
    payloads = batches(args.batches + 1, customers=1000)
    bare = decode_rate(payloads)
    print(f"bare protobuf decode (this process):      {bare:>10,.0f} spans/s")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        workers = str(args.decode_workers)
        configurations = (
            ("ledger on (SQLite)", f"sqlite:///{tmp}/bench.sqlite", []),
            ("ledger off", "none", []),
            (f"ledger on, {workers} decode worker(s)", f"sqlite:///{tmp}/bench2.sqlite", ["--decode-workers", workers]),
            (f"ledger off, {workers} decode worker(s)", "none", ["--decode-workers", workers]),
        )
        for name, ledger, extra in configurations:
            server = Server(Path(tmp), ledger, extra)
            try:
                server_cpu, sender_cpu = server.cpu_seconds(), time.process_time()
                elapsed = send_all(server.port, payloads)
                server_cpu, sender_cpu = server.cpu_seconds() - server_cpu, time.process_time() - sender_cpu
            finally:
                server.stop()
            spans = args.batches * BATCH
            rate = spans / elapsed
            results[name] = rate
            print(
                f"aispend serve, gRPC, {name:<31} {rate:>8,.0f} spans/s  (ratio to bare decode: {rate / bare:.2f});"
                f" CPU per span: server {server_cpu / spans * 1e6:.1f} µs, sender {sender_cpu / spans * 1e6:.1f} µs"
            )
        if args.peer_spanmetrics:  # the peer, on the same batches: benchmarks/spanmetrics_peer.py
            from spanmetrics_peer import run as run_spanmetrics

            peer = run_spanmetrics(payloads, Path(tmp), send_all)
            best = max(results.values())
            print(
                f"peer: collector spanmetrics connector, gRPC   {peer:>8,.0f} spans/s; aispend serve (best "
                f"configuration) {best:,.0f} spans/s; ratio aispend / spanmetrics: {best / peer:.2f}"
            )
        # memory: distinct label sets (one customer per span), ledger on
        series_batches = batches(args.series // BATCH + 1, customers=args.series, offset=10**9)
        server = Server(Path(tmp), f"sqlite:///{tmp}/mem.sqlite", ["--label-limits", f"customer={args.series * 2}"])
        try:
            idle = server.rss_mb()
            send_all(server.port, series_batches)
            loaded = server.rss_mb()
        finally:
            server.stop()
    distinct = min(args.series, len(series_batches) * BATCH)
    print(f"resident memory: {idle:.0f} MB at start, {loaded:.0f} MB with {distinct:,} distinct label sets")
    ledger_on = max(rate for name, rate in results.items() if name.startswith("ledger on"))
    ledger_off = max(rate for name, rate in results.items() if name.startswith("ledger off"))
    cores = os.cpu_count() or 1
    print(
        f"CPU budget: on {cores} cores, 50,000 spans/s leaves {cores / 50_000 * 1e6:.0f} µs of CPU per span"
        f" and 100,000 leaves {cores / 100_000 * 1e6:.0f} µs, for the server and the sender together"
    )
    print(
        f"targets (best configuration): ledger on >= 50,000: {'met' if ledger_on >= 50_000 else 'NOT met'}; "
        f"ledger off >= 100,000: {'met' if ledger_off >= 100_000 else 'NOT met'}; "
        f"memory < 300 MB: {'met' if loaded < 300 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
