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
from aispend.exporter import queries
from aispend.exporter.budgets import BudgetTracker, parse_budgets
from aispend.exporter.http_server import Api, serve_api
from aispend.exporter.ledger import CALL_COLUMNS, DAILY_KEY, SUM_COLUMNS, Ledger, open_ledger, utc_day

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
        ledger._transaction([(ledger._insert_call, list(rows))])
    sums = [
        "COUNT(*)",
        *(f"SUM({c})" for c in SUM_COLUMNS[1:-2]),
        "SUM(1 - priced)",
        "SUM(duration_s)",
    ]
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
            ("/v1/series", {}),
        ],
        "budgets": [("/v1/budgets", {})],
    }


def bench(url: str, n: int, days: int, label: str) -> list[tuple[str, float, float, list[float]]]:
    ledger = open_ledger(url)
    assert ledger is not None
    started = time.perf_counter()
    fill(ledger, n, days)
    print(f"{label}: filled {n:,} calls in {time.perf_counter() - started:.1f} s", flush=True)
    budgets = BudgetTracker(
        parse_budgets({"budgets": [{"name": "all", "period": "month", "amount_usd": 1000}]}),
        spend_since=ledger.spend_since,
    )
    api = Api(
        registry=None,
        budgets=lambda: queries.budgets(budgets.as_json()),
        change_budget=None,
        usage=lambda p: queries.usage(ledger, p),
        calls=lambda p: queries.calls(ledger, p),
        series=lambda p: queries.series(ledger, p),
        labels=lambda p: queries.labels(ledger, p),
        admin_token=None,
    )
    server, port = serve_api(api, "127.0.0.1", 0)
    t0 = time.perf_counter()
    ledger._read("SELECT SUM(cost_nusd) FROM calls")
    baseline = (time.perf_counter() - t0) * 1000
    results = [("(baseline: one scan of all calls)", baseline, baseline, [baseline])]
    try:
        for name, requests in pages("customer-7", "key-7").items():
            times: list[float] = []
            parts: list[list[float]] = []
            for attempt in range(6):
                part = []
                for path, params in requests:
                    t0 = time.perf_counter()
                    query = urllib.parse.urlencode(params)
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}?{query}", timeout=60) as response:
                        response.read()
                    part.append((time.perf_counter() - t0) * 1000)
                if attempt:  # the first load warms the caches
                    times.append(sum(part))
                    parts.append(part)
                else:
                    cold = sum(part)
            median = statistics.median(times)
            results.append((name, median, cold, [statistics.median(p[i] for p in parts) for i in range(len(requests))]))
    finally:
        server.shutdown()
        ledger.close()
    return results


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
                results = bench(url, args.calls, args.days, backend)
            finally:
                if postgres is not None:
                    postgres.stop()
            print(f"\n{backend}, {args.calls:,} calls over {args.days} days: page load, median of 5 after the first")
            print(f"  {'page':<34} {'median':>9}  {'of target':>9}  {'vs scan':>7}  {'first':>8}  requests (ms)")
            scan = results[0][1]
            for name, total, cold, parts in results:
                flag = "" if name.startswith("(") else "ok" if total < TARGET_MS else "SLOW"
                failed |= flag == "SLOW"
                detail = " + ".join(f"{p:.0f}" for p in parts)
                print(
                    f"  {name:<34} {total:7.1f}ms  {total / TARGET_MS:8.2f}x  {total / scan:6.2f}x  {cold:6.0f}ms"
                    f"  [{detail}] {flag}"
                )
            print(flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
