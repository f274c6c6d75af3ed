"""The console's pages at 1,000,000 calls: the time of each page's API calls, SQLite and PostgreSQL.

Run: .venv/bin/python benchmarks/console.py [--calls 1000000] [--days 60] [--backends sqlite,postgresql]
The ledger is filled by bulk insert (the calls, then the daily totals computed from them in SQL, as
the exporter would have written them), over ``--days`` days ending now, with labels correlated the
way real traffic is (a customer uses one key, a feature or two and a model or two). Each page is
requested over real HTTP from `aispend serve`'s API server, in the order the page asks, after one
warm-up; the figure is the median of 5 loads of the whole page (its requests one after another, so
an upper bound on the page's wait); "first" is the first load (the daily totals of closed days not
yet cached: queries.ClosedDays), "vs scan" compares with one scan of every call measured in the same
run (the machine may be busy). Target: every page under 300 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from aispend.exporter.config import ExporterConfig
from aispend.exporter.ledger import CALL_COLUMNS, DAILY_KEY, SUM_COLUMNS, Ledger, open_ledger, utc_day
from aispend.exporter.service import Exporter

TARGET_MS = 300
MODELS = [
    ("openai", "gpt-4o", "chat"),
    ("openai", "gpt-4o-mini", "chat"),
    ("openai", "text-embedding-3-small", "embeddings"),
    ("anthropic", "claude-3-5-haiku-20241022", "chat"),
    ("anthropic", "claude-sonnet-4-0", "chat"),
    ("gcp.gemini", "gemini-2.0-flash", "chat"),
    ("openai", "gpt-image-1", "image"),
    ("serper", "", "search"),
    ("unsplash", "", "search"),
    ("openai", "o3-mini", "chat"),
]
CUSTOMERS, KEYS, FEATURES, SERVICES = 1000, 50, 20, 5
INSTANCE = "bench"  # the serve started on the ledger restores these calls as its own


def call_rows(n: int, days: int, now_ns: int, seed: int = 1):
    rng = random.Random(seed)
    span = days * 86_400 * 10**9
    for i in range(n):
        c = rng.randrange(CUSTOMERS)
        provider, model, operation = MODELS[(c + (rng.random() < 0.2)) % len(MODELS)]
        ts = now_ns - rng.randrange(span)
        status = "ok" if rng.random() < 0.97 else rng.choice(("error", "rate_limited"))
        inp, out = (rng.randrange(10, 4000), rng.randrange(0, 800)) if operation != "search" else (0, 0)
        cost = (inp * 2_500 + out * 10_000) if status == "ok" else 0
        values = {
            "ts_ns": ts,
            "day": utc_day(ts),
            "duration_s": rng.random() * 3,
            "service": f"service-{c % SERVICES}",
            "provider": provider,
            "model": model,
            "operation": operation,
            "feature": f"feature-{(c + (rng.random() < 0.3)) % FEATURES}",
            "customer": f"customer-{c}",
            "key": f"key-{c % KEYS}",
            "response_model": model,
            "kind": "search" if operation == "search" else "llm",
            "status": status,
            "error_type": "" if status == "ok" else "429" if status == "rate_limited" else "500",
            "input_tokens": inp,
            "output_tokens": out,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "reasoning_tokens": 0,
            "requests": 1 if status == "ok" else 0,
            "images": 0,
            "cost_nusd": cost,
            "priced": 1,
            "estimated": 0,
            "free_units": 0,
            "trace_id": f"{i:032x}",
            "span_id": f"{i:016x}",
            "parent_span_id": "",
            "response_id": "",
            "book_cost_nusd": cost,
            "cost_source": "price_book",
            "instance": INSTANCE,
            "rank": 0,
        }
        yield tuple(values[c] for c in CALL_COLUMNS)


def fill(ledger: Ledger, n: int, days: int) -> None:
    now_ns = time.time_ns()
    rows = call_rows(n, days, now_ns)
    columns = ", ".join(CALL_COLUMNS)
    if ledger.dialect.begin == "BEGIN":  # PostgreSQL: COPY
        with ledger._lock, ledger._conn.cursor() as cur, cur.copy(f"COPY calls ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        with ledger.transaction() as tx:
            tx.many(ledger._insert_call, list(rows))
    computed = {"calls": "COUNT(*)", "unpriced": "SUM(1 - priced)"}
    zero = ("unpriced_no_usage", "cost_mismatch", "repriced_nusd", "repriced_unpriced")
    sums = [computed.get(c, "0" if c in zero else f"SUM({c})") for c in SUM_COLUMNS]
    ledger._execute(
        f"INSERT INTO daily ({', '.join(DAILY_KEY)}, {', '.join(SUM_COLUMNS)}) "
        f"SELECT {', '.join(DAILY_KEY)}, {', '.join(sums)} FROM calls GROUP BY {', '.join(DAILY_KEY)}"
    )
    ledger._execute("ANALYZE")


def pages(top_customer: str, top_key: str) -> dict[str, list[tuple[str, dict[str, str]]]]:
    # the console's "Last 30 days": today and the 29 days before, whole days
    r = {"since": (datetime.now(UTC).date() - timedelta(days=29)).isoformat()}
    month = {"since": "month"}
    return {
        "overview (rolling 30d, to the ns)": [
            ("/v1/usage", {"since": "30d", "group_by": "service,provider,model", "limit": "50"}),
            ("/v1/usage", {"since": "30d", "group_by": "feature", "limit": "50", "totals": "0"}),
        ],
        "overview (this month)": [
            ("/v1/usage", {**month, "group_by": "service,provider,model", "limit": "50"}),
            ("/v1/usage", {**month, "group_by": "feature", "limit": "50", "totals": "0"}),
            ("/v1/series", month),
            ("/v1/calls", {**month, "limit": "20"}),
        ],
        "overview (30 days)": [
            ("/v1/usage", {**r, "group_by": "service,provider,model", "limit": "50"}),
            ("/v1/usage", {**r, "group_by": "feature", "limit": "50", "totals": "0"}),
            ("/v1/series", r),
            ("/v1/calls", {**r, "limit": "20"}),
        ],
        "calls": [
            ("/v1/labels", {"limit": "200"}),
            ("/v1/usage", {**r, "totals": "0"}),
            ("/v1/calls", {**r, "limit": "50"}),
        ],
        "calls filtered: model + status": [
            ("/v1/usage", {**r, "model": "gpt-4o", "status": "rate_limited", "totals": "0"}),
            ("/v1/calls", {**r, "model": "gpt-4o", "status": "rate_limited", "limit": "50"}),
        ],
        "models": [("/v1/usage", {**r, "group_by": "model,provider", "limit": "500", "totals": "0"})],
        "features": [("/v1/usage", {**r, "group_by": "feature", "compare": "1", "limit": "1000", "totals": "0"})],
        "customers": [("/v1/usage", {**r, "group_by": "customer", "compare": "1", "limit": "1000", "totals": "0"})],
        "customer detail": [
            (
                "/v1/usage",
                {**r, "customer": top_customer, "group_by": "provider,model", "sort": "calls", "totals": "0"},
            ),
            ("/v1/series", {**r, "customer": top_customer, "bucket": "day"}),
            ("/v1/calls", {**r, "customer": top_customer, "limit": "50"}),
        ],
        "keys": [("/v1/usage", {**r, "group_by": "key", "limit": "1000", "totals": "0"})],
        "key detail": [
            ("/v1/usage", {**r, "key": top_key, "group_by": "provider,model", "totals": "0"}),
            ("/v1/series", {**r, "key": top_key}),
            ("/v1/series", {**r, "key": top_key, "bucket": "hour"}),
        ],
        "all time overview": [
            ("/v1/usage", {"group_by": "service,provider,model", "limit": "50"}),
            ("/v1/usage", {"group_by": "feature", "limit": "50", "totals": "0"}),
            ("/v1/series", {}),
            ("/v1/calls", {"limit": "20"}),
        ],
        "budgets": [("/v1/budgets", {})],
    }


def load(port: int, requests: list[tuple[str, dict[str, str]]]) -> list[float]:
    """One load of a page: its requests one after another; each one's time in ms."""
    part = []
    for path, params in requests:
        t0 = time.perf_counter()
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}?{query}", timeout=120) as response:
            response.read()
        part.append((time.perf_counter() - t0) * 1000)
    return part


class Serve:
    """A fresh `aispend serve` (the Exporter the CLI runs) on the filled ledger, its ports on 127.0.0.1."""

    def __init__(self, url: str, budgets_file: str, warm: bool) -> None:
        config = ExporterConfig(
            otlp_grpc="127.0.0.1:0",
            otlp_http="127.0.0.1:0",
            metrics="127.0.0.1:0",
            ledger=url,
            budgets=budgets_file,
            instance_id=INSTANCE,
        )
        t0 = time.perf_counter()
        self.exporter = Exporter(config, warm_console=warm)
        self.exporter.start()
        self.started_s = time.perf_counter() - t0
        self.port = self.exporter.ports["metrics"]

    def __enter__(self) -> Serve:
        return self

    def __exit__(self, *exc: object) -> None:
        self.exporter.stop(grace=0)


def bench(url: str, n: int, days: int, label: str, tmp: str) -> list[tuple[str, ...]]:
    ledger = open_ledger(url)
    started = time.perf_counter()
    fill(ledger, n, days)
    print(f"{label}: filled {n:,} calls in {time.perf_counter() - started:.1f} s", flush=True)
    t0 = time.perf_counter()
    ledger._read("SELECT SUM(cost_nusd) FROM calls")
    baseline = (time.perf_counter() - t0) * 1000
    ledger.close()
    budgets_file = f"{tmp}/budgets.yaml"
    Path(budgets_file).write_text("budgets:\n  - {name: all, period: month, amount_usd: 1000}\n")
    results: list[tuple[str, ...]] = []
    page_list = pages("customer-7", "key-7")
    cold: dict[str, float] = {}
    early: dict[str, float] = {}
    # each page's first load after a fresh start: without the warm-up, and right after the start
    # (the warm-up still running: the page and it share the machine)
    for name, requests in page_list.items():
        with Serve(url, budgets_file, warm=False) as serve:
            cold[name] = sum(load(serve.port, requests))
        with Serve(url, budgets_file, warm=True) as serve:
            early[name] = sum(load(serve.port, requests))
            warming = not serve.exporter.warmed.is_set()
        print(
            f"  {name}: first {cold[name]:.0f} ms, during warm-up {early[name]:.0f} ms"
            f"{'' if warming else ' (the warm-up had finished)'}; start {serve.started_s:.1f} s",
            flush=True,
        )
    with Serve(url, budgets_file, warm=True) as serve:
        t0 = time.perf_counter()
        serve.exporter.warmed.wait(600)
        warm_s = time.perf_counter() - t0
        print(f"{label}: start {serve.started_s:.1f} s, then the warm-up took {warm_s:.1f} s", flush=True)
        for name, requests in page_list.items():
            after = sum(load(serve.port, requests))
            parts = [load(serve.port, requests) for _ in range(5)]
            times = [sum(p) for p in parts]
            median = statistics.median(times)
            per_request = [statistics.median(p[i] for p in parts) for i in range(len(requests))]
            results.append((name, median, cold[name], early[name], after, per_request))
    return [("(baseline: one scan of all calls)", baseline, baseline, baseline, baseline, [baseline]), *results]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            postgres = None
            if backend == "sqlite":
                url = f"sqlite:///{tmp}/bench.sqlite"
            else:
                from tests.support.postgres import PostgresServer

                postgres = PostgresServer().start()
                url = postgres.create_database("console_bench")
            try:
                results = bench(url, args.calls, args.days, backend, tmp)
            finally:
                if postgres is not None:
                    postgres.stop()
            print(f"\n{backend}, {args.calls:,} calls over {args.days} days: page load (ms) after a fresh serve start")
            print("  first: without the warm-up; early: right after the start, the warm-up still running;")
            print("  warmed: first load once the warm-up is over; warm: median of the 5 loads after that")
            print(
                f"  {'page':<34} {'first':>7} {'early':>7} {'warmed':>7} {'warm':>7}  {'of target':>9}  {'vs scan':>7}"
                "  warm requests (ms)"
            )
            scan = results[0][1]
            for name, total, cold, early, after, parts in results:
                worst = max(after, total)
                flag = "" if name.startswith("(") else "ok" if worst < TARGET_MS else "SLOW"
                failed |= flag == "SLOW"
                detail = " + ".join(f"{p:.0f}" for p in parts)
                print(
                    f"  {name:<34} {cold:7.0f} {early:7.0f} {after:7.0f} {total:7.1f}  {worst / TARGET_MS:8.2f}x"
                    f"  {worst / scan:6.2f}x  [{detail}] {flag}"
                )
            print(flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
