"""How far spend overshoots an enforced budget under concurrent calls, with 3 replicas on one PostgreSQL.

Set-up per configuration, all real: a PostgreSQL server (tests/support/postgres.py), 3 `aispend
serve` replicas on it with a budget (``enforce: true``, scoped to the benchmark's customer), the fake
provider server (tests/fakes) and 6 app processes, two per replica. Each app calls the real OpenAI
SDK instrumented by aispend, with the budget guard reading ``GET /v1/budgets`` of its own replica
and its spans sent by a BatchSpanProcessor over OTLP/gRPC to that replica. The apps call at a
steady rate that spends the budget in ``--seconds`` (default 40) until the guard blocks them; then
every span is flushed and the ledger's spend for the budget is the final figure.

Overshoot = (final spend - budget) / budget. The guard learns of spend only after it is recorded,
so the overshoot is the spend rate times the reaction time: the BatchSpanProcessor's delay (OTel
default 5 s) + the exporter's budget read-back (``budget_refresh_seconds``, default 1 s) + the
guard's refresh (``AISPEND_BUDGETS_REFRESH_SECONDS``, default 10 s). The reaction time (from the
call that crossed the budget to the last call let through) is printed beside the percentage; the
percentage shrinks as the budget lasts longer (a daily budget spent over hours overshoots by that
many seconds of spend). Peer: LiteLLM's best published figure is "within about 2.5 %" (a
third-party stress test of LiteLLM v1.106.6 as a proxy with Redis and fail-closed, $0.05 budgets;
github.com/BerriAI/litellm/discussions/50438); a proxy sees each call synchronously, aispend's guard
sees recorded spend.

Run: .venv/bin/python benchmarks/budget_overshoot.py [--seconds 40] [--apps 6] [--rate 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CUSTOMER = "overshoot-bench"
MESSAGES = [{"role": "user", "content": "Say hello."}]
LITELLM_PEER = 2.5  # %, see the docstring


@dataclass(frozen=True)
class Setting:
    name: str
    guard_refresh: float | None  # None: the guard's default (10 s)
    bsp_delay_ms: int | None  # None: the OpenTelemetry default (5000 ms)
    exporter_refresh: float | None  # None: the exporter's default (1 s)


SETTINGS = (
    Setting("defaults (guard 10 s, BSP 5 s, exporter 1 s)", None, None, None),
    Setting("guard refresh 1 s (BSP 5 s, exporter 1 s)", 1.0, None, None),
    Setting("guard 1 s, BSP 200 ms, exporter 1 s", 1.0, 200, None),
    Setting("guard 0.25 s, BSP 100 ms, exporter 1 s", 0.25, 100, None),
    Setting("guard 0.25 s, BSP 100 ms, exporter 0.25 s", 0.25, 100, 0.25),
    Setting("guard 0.1 s, BSP 50 ms, exporter 0.1 s", 0.1, 50, 0.1),
)


# -- an app process ---------------------------------------------------------------------------------
def app(grpc: str, budgets_url: str, fake_url: str, rate: float, max_seconds: float, refresh: str) -> None:
    import openai
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from aispend.errors import BudgetExceededError
    from aispend.instrumentation import AiSpendInstrumentor

    provider = TracerProvider(resource=Resource.create({"service.name": "overshoot-app"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=grpc, insecure=True)))
    kwargs: dict[str, object] = {
        "tracer_provider": provider,
        "provider_urls": f"openai={fake_url}/openai/v1",
        "budgets_url": budgets_url,
    }
    if refresh:
        kwargs["budgets_refresh_seconds"] = float(refresh)
    AiSpendInstrumentor().instrument(**kwargs)
    client = openai.OpenAI(base_url=f"{fake_url}/openai/v1", api_key="sk-bench-000000000000000000000000", max_retries=0)
    print("ready", flush=True)
    sys.stdin.readline()  # "go": every app starts at once
    start = time.monotonic()
    calls, blocked_at = 0, None
    while time.monotonic() - start < max_seconds:
        try:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        except BudgetExceededError:
            blocked_at = time.time()
            break
        calls += 1
        pause = start + calls / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    provider.force_flush()
    provider.shutdown()
    print(json.dumps({"calls": calls, "blocked_at": blocked_at, "last_call_at": time.time()}), flush=True)


# -- the parent -------------------------------------------------------------------------------------
def budgets_json(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/budgets", timeout=10) as response:
        return {b["name"]: b for b in json.load(response)["budgets"]}


def ledger_spend(url: str) -> tuple[Decimal, int, list[tuple[int, int]]]:
    from aispend.exporter.ledger import Filters, open_ledger

    ledger = open_ledger(url)
    try:
        rows = ledger.summary(Filters(equals={"customer": CUSTOMER}), [])
        calls = ledger.calls(Filters(equals={"customer": CUSTOMER}), limit=10_000_000)
    finally:
        ledger.close()
    total = Decimal(rows[0]["cost_nusd"]) / 10**9 if rows else Decimal(0)
    return total, rows[0]["calls"] if rows else 0, sorted((c["ts_ns"], c["cost_nusd"]) for c in calls)


def run_setting(
    setting: Setting, postgres, fake_url: str, tmp: Path, budget: Decimal, args: argparse.Namespace, n: int
) -> dict:
    from tests.exporter.server import ServeProcess

    url = postgres.create_database(f"overshoot{n}")
    budgets = tmp / f"budgets{n}.yaml"
    budgets.write_text(
        "budgets:\n"
        f"  - {{name: bench, period: day, amount_usd: {budget}, enforce: true, scope: {{customer: {CUSTOMER}}}}}\n"
    )
    extra = ["--budget-refresh-seconds", str(setting.exporter_refresh)] if setting.exporter_refresh else []
    replicas = [
        ServeProcess(tmp, "--ledger", url, "--budgets", str(budgets), "--instance-id", f"r{i}", *extra).start()
        for i in range(3)
    ]
    env = {**os.environ, "AISPEND_CUSTOMER": CUSTOMER, "PYTHONPATH": str(ROOT)}
    if setting.bsp_delay_ms is not None:
        env["OTEL_BSP_SCHEDULE_DELAY"] = str(setting.bsp_delay_ms)
    apps = []
    try:
        for i in range(args.apps):
            r = replicas[i % 3]
            cmd = [
                sys.executable,
                __file__,
                "--app",
                f"127.0.0.1:{r.ports['otlp_grpc']}",
                f"http://127.0.0.1:{r.ports['metrics']}/v1/budgets",
                fake_url,
                str(args.rate),
                str(args.seconds * 4),
                "" if setting.guard_refresh is None else str(setting.guard_refresh),
            ]
            apps.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env))
        for p in apps:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        time.sleep(0.5)  # the guards' first refresh
        for p in apps:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = [json.loads(p.communicate(timeout=args.seconds * 6)[0].strip().splitlines()[-1]) for p in apps]
        blocked = [r["blocked_at"] for r in results]
        if None in blocked:
            raise SystemExit(f"{setting.name}: an app was never blocked by the guard")
        time.sleep(0.5 + (setting.exporter_refresh or 1.0))  # the last spans are flushed; read-back
        spend, calls, rows = ledger_spend(url)
        shown = {budgets_json(r.ports["metrics"])["bench"]["spend_usd"] for r in replicas}
    finally:
        for p in apps:
            if p.poll() is None:
                p.kill()
        for r in replicas:
            r.stop()
    running, crossed_ns = 0, None
    for ts_ns, nano in rows:
        running += nano
        if running >= budget * 10**9:
            crossed_ns = ts_ns
            break
    reaction = (max(blocked) - crossed_ns / 1e9) if crossed_ns else float("nan")
    return {
        "name": setting.name,
        "spend": spend,
        "calls": calls,
        "shown": shown,
        "overshoot": float((spend - budget) / budget * 100),
        "reaction": reaction,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--app", nargs=6, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=40.0, help="seconds the steady calls take to spend the budget")
    parser.add_argument("--apps", type=int, default=6, help="app processes, spread over the 3 replicas")
    parser.add_argument("--rate", type=float, default=8.0, help="calls per second per app")
    parser.add_argument("--only", type=int, nargs="*", help="run only these settings (0-based)")
    args = parser.parse_args()
    if args.app:
        grpc, budgets_url, fake_url, rate, max_seconds, refresh = args.app
        app(grpc, budgets_url, fake_url, float(rate), float(max_seconds), refresh)
        return

    from aispend.exporter.ledger import from_nano, to_nano
    from tests.fakes.providers import FakeProviders
    from tests.support.postgres import PostgresServer

    fake = FakeProviders().start()
    fake.set_usage("openai", prompt_tokens=1000, completion_tokens=500, cached_tokens=0, reasoning_tokens=0)
    postgres = PostgresServer().start()
    tmp = Path(tempfile.mkdtemp(prefix="aispend-overshoot-"))
    try:
        per_call = _per_call_cost(postgres, fake.url, tmp)
        budget = from_nano(to_nano(per_call * int(args.apps * args.rate * args.seconds)))
        print(
            f"budget ${budget} (enforce: true) = {args.apps} apps x {args.rate:g} calls/s x {args.seconds:g} s "
            f"x ${per_call}/call; 3 replicas on one PostgreSQL, each app on its own replica's guard and OTLP\n"
        )
        print(f"{'setting':46} {'final spend':>12} {'/ budget':>9} {'overshoot':>10} {'reaction':>9}  replicas show")
        chosen = [s for i, s in enumerate(SETTINGS) if args.only is None or i in args.only]
        below = None
        for n, setting in enumerate(chosen):
            r = run_setting(setting, postgres, fake.url, tmp, budget, args, n)
            if below is None and r["overshoot"] < 1.0:
                below = r["name"]
            shown = ", ".join(f"${v:.6f}" for v in sorted(r["shown"]))
            print(
                f"{r['name']:46} ${r['spend']:>11.6f} {float(r['spend'] / budget):>9.4f} {r['overshoot']:>9.2f}% "
                f"{r['reaction']:>8.2f}s  {shown} ({r['calls']} calls)",
                flush=True,
            )
        print(f"{'LiteLLM, best published (Redis, fail-closed)':46} {'':>12} {'':>9} {LITELLM_PEER:>9.2f}%")
        print(f"\nfirst setting below 1 %: {below or 'none'} (overshoot = spend rate x reaction time)")
    finally:
        postgres.stop()
        fake.stop()


def _per_call_cost(postgres, fake_url: str, tmp: Path) -> Decimal:
    """What one benchmark call costs, as aispend records it: a few calls through one replica, no budget."""
    from tests.exporter.server import ServeProcess

    url = postgres.create_database("overshoot_calibration")
    replica = ServeProcess(tmp, "--ledger", url, "--instance-id", "calibration").start()
    try:
        cmd = [sys.executable, __file__, "--app", f"127.0.0.1:{replica.ports['otlp_grpc']}"]
        cmd += [f"http://127.0.0.1:{replica.ports['metrics']}/v1/budgets", fake_url, "20", "0.2", ""]
        env = {**os.environ, "AISPEND_CUSTOMER": CUSTOMER, "PYTHONPATH": str(ROOT)}
        subprocess.run(cmd, input="go\n", capture_output=True, text=True, env=env, check=True, timeout=120)
        time.sleep(0.5)
        spend, calls, _ = ledger_spend(url)
    finally:
        replica.stop()
    if not calls:
        raise SystemExit("calibration: no call reached the ledger")
    return spend / calls


if __name__ == "__main__":
    main()
