"""Latency aispend adds to a boto3 Bedrock call (botocore's urllib3 session hook), against the
local fake Bedrock runtime in its own process.

Compared in the same run, in interleaved rounds so drift hits all alike: no instrumentation
(baseline), aispend (spans made on its recording thread, the default) and aispend with
AISPEND_RECORD_INLINE; for Converse (JSON) and ConverseStream (AWS event stream, read to the end).
Added latency = configuration minus baseline, at the median and p99; CPU = process CPU time per
call (all threads). Spans go through a BatchSpanProcessor to an exporter that drops them.

Run: .venv/bin/python benchmarks/bedrock_overhead.py [--calls 600]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import boto3
from botocore.config import Config
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SERVER = """
import sys, time
sys.path.insert(0, {root!r})
from tests.fakes.providers import FakeProviders
fake = FakeProviders().start()
print(fake.url, flush=True)
while True:
    time.sleep(3600)
"""
MODEL = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "Say hello."}]}]


class Drop(SpanExporter):
    def export(self, spans: Sequence[object]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=600, help="calls per configuration and operation")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()

    server = subprocess.Popen([sys.executable, "-c", SERVER.format(root=str(ROOT))], stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()  # type: ignore[union-attr]
        run(url + "/bedrock", args.calls, args.rounds)
    finally:
        server.terminate()
        server.wait(5)


def run(base: str, calls: int, rounds: int) -> None:
    from aispend.instrumentation import AiSpendInstrumentor

    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=base,
        aws_access_key_id="AKIAFAKEEXAMPLE0K3Y9",
        aws_secret_access_key="fake-secret",
        config=Config(retries={"total_max_attempts": 1}),
    )
    operations: dict[str, Callable[[], object]] = {
        "converse": lambda: client.converse(modelId=MODEL, messages=MESSAGES),
        "converse_stream": lambda: list(client.converse_stream(modelId=MODEL, messages=MESSAGES)["stream"]),
    }
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    instrumentor = AiSpendInstrumentor()
    urls = f"aws.bedrock={base}"

    def setup(name: str) -> None:
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
        if name != "baseline":
            instrumentor.instrument(tracer_provider=provider, provider_urls=urls, record_inline=name == "inline")

    configs = ("baseline", "aispend", "inline")
    wall: dict[tuple[str, str], list[float]] = {(c, o): [] for c in configs for o in operations}
    cpu: dict[tuple[str, str], float] = dict.fromkeys(wall, 0.0)
    for op in operations.values():  # warm up connections, botocore's loaders and caches
        for _ in range(50):
            op()
    per_round = max(1, calls // rounds)
    for _ in range(rounds):
        for config in configs:
            setup(config)
            for name, op in operations.items():
                cpu_start = time.process_time()
                for _ in range(per_round):
                    start = time.perf_counter()
                    op()
                    wall[config, name].append(time.perf_counter() - start)
                instrumentor.flush()
                provider.force_flush()
                cpu[config, name] += time.process_time() - cpu_start
    setup("baseline")

    print(f"boto3 Bedrock calls against the local fake, {per_round * rounds} calls per cell, {rounds} rounds")
    print(
        f"{'operation':<16}{'config':<10}{'median µs':>11}{'p99 µs':>10}{'added median':>14}{'added p99':>11}"
        f"{'CPU µs/call':>13}{'added CPU':>11}"
    )
    for name in operations:
        base_med = statistics.median(wall["baseline", name]) * 1e6
        base_p99 = percentile(wall["baseline", name], 0.99) * 1e6
        base_cpu = cpu["baseline", name] / len(wall["baseline", name]) * 1e6
        for config in configs:
            values = wall[config, name]
            med, p99 = statistics.median(values) * 1e6, percentile(values, 0.99) * 1e6
            per_call_cpu = cpu[config, name] / len(values) * 1e6
            print(
                f"{name:<16}{config:<10}{med:>11.0f}{p99:>10.0f}{med - base_med:>+14.0f}{p99 - base_p99:>+11.0f}"
                f"{per_call_cpu:>13.0f}{per_call_cpu - base_cpu:>+11.0f}"
            )


if __name__ == "__main__":
    main()
