"""Latency and CPU aispend adds to an OpenAI SDK call, against every peer, in the same run.

Compared: no instrumentation (baseline), aispend (spans made on the calling thread, the
default), aispend with AISPEND_RECORD_INLINE=false (spans made on its recording thread), the official
opentelemetry-instrumentation-openai-v2, OpenLLMetry's opentelemetry-instrumentation-openai
(traceloop), OpenLIT's OpenAI instrumentation, and aispend with the budget guard on (no budget
matching the call). The peers patch the openai SDK globally and cannot all be undone, so each
configuration lives in its own worker process, instrumented once; the parent drives them in
interleaved rounds (one worker runs at a time, each round starting with the next one) so drift
hits all alike. Added latency =
configuration minus the same round's baseline, at the median; p99 over all calls. The fake
provider runs in a process of its own. Spans go through a BatchSpanProcessor to an exporter that
drops them, as in production minus the network; every worker force-flushes its tracer provider
before its CPU of all threads is read, so deferred work (aispend's recording thread, the span
processor's thread) counts where it belongs.

Run: .venv/bin/python benchmarks/instrumentation_overhead.py [--calls 2000]
Peers: openai-v2 is in the dev extra; the other two are not (OpenLLMetry registers an
auto-instrumentor that ``opentelemetry-instrument`` would turn on in the end-to-end tests, and
OpenLIT pins openai<3 and anthropic<1), so install them into the venv for a run:
``pip install opentelemetry-instrumentation-openai && pip install --no-deps openlit schedule xmltodict``
(and uninstall them before running the tests). A peer that is not installed is reported as
missing and skipped.
Three kinds of call (``CALLS``): a chat completion, the fake's short stream (3 text pieces, 7
events) and a stream of realistic length (100 tokens, one a chunk as providers send them: 104
events; a tenth of ``--calls``, each taking ~7 times as long).
Targets: aispend lowest of all on median, p99 and CPU of all threads, streaming and
non-streaming; budget guard < 5 µs per call. Each peer's figures are also printed as a ratio to
aispend's (> 1: aispend adds less), and each figure with its noise (± one standard error:
median and CPU from the spread of the per-round differences, p99 by resampling rounds); a
verdict whose difference is within twice the combined error says "within noise".
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

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
MESSAGES = [{"role": "user", "content": "Say hello."}]
LONG_STREAM_TOKENS = 100


class Kind(NamedTuple):
    stream: bool
    headers: dict[str, str]  # to the fake provider
    share: float = 1.0  # of --calls, for the timing: a long stream takes ~7 times a short one


# The fake's own stream is short: 3 text pieces, 7 events. A provider streams about a token a
# chunk, so a 100-token answer arrives as 104 events.
CALLS: dict[str, Kind] = {
    "non-streaming": Kind(False, {}),
    "streaming": Kind(True, {}),
    f"streaming, {LONG_STREAM_TOKENS} tokens": Kind(True, {"x-fake-stream-chunks": str(LONG_STREAM_TOKENS)}, 0.1),
}
KINDS = tuple(CALLS)


def per_kind(per_round: int, kind: str) -> int:
    return max(round(per_round * CALLS[kind].share), 1)


BASELINE = "baseline (none)"
# name -> the module it needs (None: always available)
CONFIGS: dict[str, str | None] = {
    BASELINE: None,
    "aispend": None,
    "aispend background": None,
    "openai-v2": "opentelemetry.instrumentation.openai_v2",
    "OpenLLMetry": "opentelemetry.instrumentation.openai",
    "OpenLIT": "openlit",
    "aispend + budget guard": None,
}
PEERS = ("openai-v2", "OpenLLMetry", "OpenLIT")


class Drop(SpanExporter):
    def export(self, spans: Sequence[object]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median_error(values: list[float]) -> float:
    """Standard error of a median over rounds, from their interquartile range (robust to the odd
    round another process spoiled): 1.2533 σ / √n with σ = IQR / 1.349."""
    if len(values) < 4:
        return float("nan")
    q1, _, q3 = statistics.quantiles(values, n=4)
    return 1.2533 * (q3 - q1) / 1.349 / len(values) ** 0.5


def p99_error(rounds: list[list[float]], base_rounds: list[list[float]], draws: int = 200) -> float:
    """Standard deviation of the added p99 over bootstrap resamples of whole rounds (the same
    rounds for the configuration and the baseline)."""
    if len(rounds) < 4:
        return float("nan")
    rng = random.Random(1)
    estimates = []
    for _ in range(draws):
        picks = [rng.randrange(len(rounds)) for _ in rounds]
        ours = [v for i in picks for v in rounds[i]]
        base = [v for i in picks for v in base_rounds[i]]
        estimates.append(percentile(ours, 0.99) - percentile(base, 0.99))
    return statistics.stdev(estimates)


class BudgetsStub:
    """GET /v1/budgets with budgets that never match the benchmark's calls."""

    def __init__(self) -> None:
        budgets = [
            {
                "name": f"team-{i}",
                "period": "month",
                "scope": {"customer": [f"cust-{i}"]},
                "limit_usd": 10.0,
                "spend_usd": 20.0,
                "exhausted": True,
                "enforce": "true",
                "resets_at": "2099-01-01T00:00:00+00:00",
            }
            for i in range(20)
        ]
        body = json.dumps({"budgets": budgets}).encode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/budgets"


# -- worker: one configuration, instrumented once -------------------------------------------------


def instrument(name: str, provider: TracerProvider, fake_url: str, budgets_url: str) -> None:
    urls = f"openai={fake_url}/openai/v1"
    if name.startswith("aispend"):
        from aispend.instrumentation import AiSpendInstrumentor

        kwargs: dict[str, object] = {"tracer_provider": provider, "provider_urls": urls}
        if name == "aispend background":
            kwargs["record_inline"] = False
        if name == "aispend + budget guard":
            kwargs.update(budgets_url=budgets_url, budgets_refresh_seconds=1)
        AiSpendInstrumentor().instrument(**kwargs)
    elif name == "openai-v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=provider)
    elif name == "OpenLLMetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as TraceloopInstrumentor

        os.environ.setdefault("TRACELOOP_TRACE_CONTENT", "false")  # no prompt text, like the others
        TraceloopInstrumentor().instrument(tracer_provider=provider)
    elif name == "OpenLIT":
        import openlit
        from openlit._instrumentors import MODULE_NAME_MAP

        prices = Path(tempfile.mkdtemp()) / "pricing.json"
        prices.write_text("{}")  # its default fetches a price list from GitHub at start
        openlit.init(  # reuses the global tracer provider set below
            disable_metrics=True,
            disable_events=True,
            capture_message_content=False,
            pricing_json=str(prices),
            disabled_instrumentors=[k for k in MODULE_NAME_MAP if k != "openai"],
        )


def request_body(kind: str) -> dict[str, Any]:
    """The chat completion request of ``kind``: the SDK's arguments, and the JSON body it sends."""
    body: dict[str, Any] = {"model": "gpt-4o", "messages": MESSAGES}
    if CALLS[kind].stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return body


def call_makers(client: Any) -> dict[str, Callable[[], None]]:
    """One function per kind, each making that kind of call with the openai SDK ``client``."""

    def make(kind: str) -> Callable[[], None]:
        arguments = {**request_body(kind), "extra_headers": CALLS[kind].headers or None}

        def plain() -> None:
            client.chat.completions.create(**arguments)

        def streaming() -> None:
            chunks = 0
            for _ in client.chat.completions.create(**arguments):
                chunks += 1
            if chunks < 2:
                raise SystemExit(f"{kind}: the stream gave {chunks} chunks")

        return streaming if CALLS[kind].stream else plain

    return {kind: make(kind) for kind in CALLS}


def worker(name: str, fake_url: str, budgets_url: str, per_round: int) -> None:
    import openai
    from opentelemetry import trace

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop(), max_queue_size=100_000))
    trace.set_tracer_provider(provider)
    instrument(name, provider, fake_url, budgets_url)
    client = openai.OpenAI(base_url=f"{fake_url}/openai/v1", api_key="sk-bench-000000000000000000000000", max_retries=0)

    calls = call_makers(client)
    time.sleep(0.05)  # let the guard's first refresh land
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "round":
            break
        result: dict[str, dict[str, object]] = {}
        for kind, fn in calls.items():
            fn()  # warm-up
            provider.force_flush()
            wall, cpu = [], []
            proc_start = time.process_time_ns()
            n = per_kind(per_round, kind)
            for _ in range(n):
                start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
                fn()
                cpu.append((time.thread_time_ns() - start_cpu) / 1000)
                wall.append((time.perf_counter_ns() - start) / 1000)
            provider.force_flush()  # aispend's wrapper drains its recording thread first
            result[kind] = {"wall": wall, "cpu": cpu, "proc": (time.process_time_ns() - proc_start) / 1000 / n}
        print(json.dumps(result), flush=True)
    provider.shutdown()


# -- parent: interleaved rounds over the workers --------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000, help="calls per configuration and kind")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument(
        "--only", help="comma-separated configurations to run, e.g. aispend,OpenLIT (baseline always runs)"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--fake", help=argparse.SUPPRESS)
    parser.add_argument("--budgets", help=argparse.SUPPRESS)
    args = parser.parse_args()
    per_round = max(args.calls // args.rounds, 1)
    if args.worker:
        worker(args.worker, args.fake, args.budgets, per_round)
        return

    server = subprocess.Popen([sys.executable, "-c", SERVER.format(root=str(ROOT))], stdout=subprocess.PIPE, text=True)
    fake_url = server.stdout.readline().strip()
    budgets = BudgetsStub()
    try:
        run(fake_url, budgets.url, args, per_round)
    finally:
        server.terminate()
        server.wait()


def run(fake_url: str, budgets_url: str, args: argparse.Namespace, per_round: int) -> None:
    wanted = set(args.only.split(",")) | {BASELINE} if args.only else set(CONFIGS)
    names = []
    for name, module in CONFIGS.items():
        if name not in wanted:
            continue
        if module is not None and importlib.util.find_spec(module.split(".")[0]) is None:
            print(f"{name}: not installed ({module}), skipped; see this file's docstring")
            continue
        if module is not None and importlib.util.find_spec(module) is None:
            print(f"{name}: not installed ({module}), skipped; see this file's docstring")
            continue
        names.append(name)
    workers = {}
    for name in names:
        cmd = [sys.executable, __file__, "--worker", name, "--fake", fake_url, "--budgets", budgets_url]
        cmd += ["--calls", str(args.calls), "--rounds", str(args.rounds)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        workers[name] = proc
    for name, proc in workers.items():
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"{name}: the worker did not start")

    samples = {(c, k): [] for c in names for k in KINDS}
    rounds: dict[tuple[str, str], list[list[float]]] = {key: [] for key in samples}  # wall times, per round
    paired = {key: [] for key in samples}  # round median minus the same round's baseline median
    cpu_paired = {key: [] for key in samples}
    proc_paired = {key: [] for key in samples}  # CPU of all threads of the worker, per call
    for number in range(args.rounds + 1):  # round 0 warms every worker up and is not counted
        results = {}
        shift = number % len(names)  # each round starts with another worker: no configuration always goes first
        for name in names[shift:] + names[:shift]:
            proc = workers[name]
            proc.stdin.write("round\n")
            proc.stdin.flush()
            results[name] = json.loads(proc.stdout.readline())
        if number == 0:
            continue
        for name in names:
            for kind in KINDS:
                got, base = results[name][kind], results[BASELINE][kind]
                samples[(name, kind)] += got["wall"]
                rounds[(name, kind)].append(got["wall"])
                paired[(name, kind)].append(statistics.median(got["wall"]) - statistics.median(base["wall"]))
                cpu_paired[(name, kind)].append(statistics.median(got["cpu"]) - statistics.median(base["cpu"]))
                proc_paired[(name, kind)].append(got["proc"] - base["proc"])
    for proc in workers.values():
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        proc.wait()

    print(f"{args.rounds} interleaved rounds; µs per call")
    for kind in KINDS:
        base = samples[(BASELINE, kind)]
        b50, b99 = statistics.median(base), percentile(base, 0.99)
        calls = per_kind(per_round, kind) * args.rounds
        print(f"\n{kind}, {calls} calls per configuration: baseline median {b50:,.0f} µs, p99 {b99:,.0f} µs")
        figures, noise = {}, {}
        for name in names:
            if name == BASELINE:
                continue
            added = statistics.median(paired[(name, kind)])
            p99 = percentile(samples[(name, kind)], 0.99) - b99
            cpu = statistics.median(cpu_paired[(name, kind)])
            total = statistics.median(proc_paired[(name, kind)])
            figures[name] = (added, p99, total)
            noise[name] = (
                median_error(paired[(name, kind)]),
                p99_error(rounds[(name, kind)], rounds[(BASELINE, kind)]),
                median_error(proc_paired[(name, kind)]),
            )
            e50, e99, ecpu = noise[name]
            print(
                f"  {name:<24} added: wall median {added:>5,.0f} ±{e50:<4,.0f} µs,"
                f" CPU of the calling thread {cpu:>5,.0f} µs, CPU of all threads {total:>5,.0f} ±{ecpu:<4,.0f} µs;"
                f"  p99 +{p99:>6,.0f} ±{e99:,.0f}"
            )
        peers = [n for n in PEERS if n in figures]
        if "aispend" in figures and peers:
            ours = figures["aispend"]
            print("  peer / aispend (added cost; > 1: aispend adds less):")
            for name in peers:
                ratios = ", ".join(
                    f"{measure} {_ratio(figures[name][i], ours[i])}" for i, measure in enumerate(MEASURES)
                )
                print(f"    {name:<22} {ratios}")
            for i, measure in enumerate(MEASURES):
                best = min(peers, key=lambda n: figures[n][i])
                gap = figures[best][i] - ours[i]
                spread = 2 * (noise["aispend"][i] ** 2 + noise[best][i] ** 2) ** 0.5
                if abs(gap) <= spread:
                    verdict = f"within noise, {'met' if gap > 0 else 'NOT met'} as measured"
                else:
                    verdict = "met" if gap > 0 else "NOT met"
                print(
                    f"  {measure}: aispend +{ours[i]:.0f} µs vs the best peer ({best}) +{figures[best][i]:.0f} µs,"
                    f" difference {gap:+.0f} ±{spread:.0f} µs (aispend lowest: {verdict})"
                )

    span_floor(provider_factory=TracerProvider)
    guard_cost()


MEASURES = ("median", "p99", "CPU of all threads")


def _ratio(peer: float, ours: float) -> str:
    """peer / aispend; meaningless when either figure is zero or below (noise around nothing)."""
    if ours <= 1 or peer <= 1:
        return f"n/a ({'aispend' if ours <= 1 else 'peer'} +0 or less)"
    return f"{peer / ours:.2f}x"


def span_floor(provider_factory: Callable[[], TracerProvider]) -> None:
    """What one OTel SDK span with aispend's attributes costs here: the floor for any span-based
    instrumentation (aispend and openai-v2 alike) on this machine."""
    from opentelemetry.trace import SpanKind

    provider = provider_factory()
    provider.add_span_processor(BatchSpanProcessor(Drop(), max_queue_size=100_000))
    tracer = provider.get_tracer("floor")
    start_attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "aispend.service.kind": "llm",
        "server.address": "api.openai.com",
        "server.port": 443,
        "gen_ai.request.model": "gpt-4o",
        "aispend.key": "sk-…a1b2",
    }
    end_attrs = {
        "http.response.status_code": 200,
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.response.id": "c1",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 11,
        "gen_ai.usage.output_tokens": 7,
    }
    n = 20_000
    start = time.perf_counter()
    for _ in range(n):
        span = tracer.start_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=start_attrs)
        span.set_attributes(end_attrs)
        span.end()
    per = (time.perf_counter() - start) / n * 1e6
    provider.shutdown()
    print(f"\nfloor: one OTel SDK span with these 13 attributes costs {per:.0f} µs on this machine")


def guard_cost() -> None:
    """The guard's own check, in isolation: µs per call when no budget matches."""
    from aispend.instrumentation.attribution import Attribution
    from aispend.instrumentation.budgets import BudgetGuard, BudgetRule

    guard = BudgetGuard(url="http://127.0.0.1:9/unused", refresh_seconds=3600)
    guard.load_rules(
        [
            BudgetRule.from_json(
                {
                    "name": f"team-{i}",
                    "period": "month",
                    "scope": {"customer": [f"cust-{i}"]},
                    "limit_usd": 1,
                    "spend_usd": 2,
                    "exhausted": True,
                    "enforce": "true",
                    "resets_at": "2099-01-01T00:00:00+00:00",
                }
            )
            for i in range(20)
        ]
    )
    who = Attribution(feature="summary", customer="acme", key="sk-…0000")
    n = 200_000
    start = time.perf_counter()
    for _ in range(n):
        guard.check("openai", "gpt-4o", who)
    per = (time.perf_counter() - start) / n * 1e6
    print(
        f"\nbudget guard check, 20 enforced budgets, none matching: {per:.2f} µs per call "
        f"(target < 5 µs: {'met' if per < 5 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
