"""``aispend reprice``: stored calls priced again with newer price data, exactly, on SQLite and on a
real PostgreSQL server; ``--dry-run`` changes nothing; ``aispend usage`` shows the new totals."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from aispend.cli import main
from aispend.exporter import reprice
from aispend.exporter.config import ExporterConfig
from aispend.exporter.ledger import Ledger, open_ledger
from aispend.exporter.metrics import UsageMetrics
from aispend.exporter.pipeline import Pipeline
from aispend.pricing import PriceEngine, load_book, pricedata
from tests.exporter.spans import llm, otlp_request
from tests.pricing import price_data

MILLION = Decimal(1_000_000)
EVENING = int(datetime(2025, 12, 1, 18, tzinfo=UTC).timestamp()) * 10**9  # off-peak in genai-prices 0.2.3
LATE = int(datetime(2025, 12, 1, 20, tzinfo=UTC).timestamp()) * 10**9
EARLIER = int(datetime(2025, 11, 20, 18, tzinfo=UTC).timestamp()) * 10**9
DEEPSEEK = [(1_000_000, 500_000), (123_457, 7_891), (10, 3)]
RANGE = ["--since", "2025-12-01", "--until", "2025-12-02"]
OVERRIDES = """
prices:
  - {provider: deepseek, models: [deepseek-chat], input_mtok: "1.00", output_mtok: "2.00",
     effective_from: "2025-12-01T19:00:00Z"}
  - {provider: serper, per_request: "%s", free_tier: {units: 4, period: lifetime}}
"""


def old_price(inp: int, out: int) -> Decimal:
    return (inp * Decimal("0.135") + out * Decimal("0.55")) / MILLION


def new_price(inp: int, out: int) -> Decimal:
    return (inp * Decimal("0.28") + out * Decimal("0.42")) / MILLION


def nano(usd: Decimal) -> int:
    return int(usd * 1_000_000_000)


def search(requests: int) -> dict:
    return {
        "start": EVENING,
        "gen_ai.provider.name": "serper",
        "gen_ai.operation.name": "search",
        "aispend.service.kind": "search",
        "aispend.key": "serper-key",
        "aispend.usage.requests": requests,
    }


@pytest.fixture
def recorded(ledger_url, tmp_path, monkeypatch):
    """A ledger with calls priced by genai-prices' bundled data, and a price cache with DeepSeek's
    September 2025 price ($0.28 / $0.42), as after ``aispend prices update``."""
    cache = tmp_path / "prices.json"
    monkeypatch.setenv("AISPEND_PRICE_CACHE", str(cache))
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(OVERRIDES % "0.002")
    ledger = open_ledger(ledger_url)
    assert ledger is not None
    engine = PriceEngine(overrides=load_book(overrides))
    pipeline = Pipeline(ExporterConfig(), engine, ledger, UsageMetrics())
    no_usage = llm("deepseek", "deepseek-chat", 0, 0, start=EVENING)
    del no_usage["gen_ai.usage.input_tokens"], no_usage["gen_ai.usage.output_tokens"]
    spans = [{**llm("deepseek", "deepseek-chat", i, o), "start": EVENING} for i, o in DEEPSEEK]
    spans += [
        {**llm("deepseek", "deepseek-chat", 1_000, 1_000), "start": LATE},  # the override's price from 19:00
        {**llm("deepseek", "deepseek-chat", 1_000_000, 0), "start": EARLIER},  # outside the range
        {**llm("openai", "gpt-4", 150, 75), "start": EVENING},
        {
            **llm("deepseek", "deepseek-chat", 1_000_000, 0),
            "start": EVENING,
            "gen_ai.usage.cost.amount": 0.3,
            "gen_ai.usage.cost.currency": "USD",
            "gen_ai.usage.cost.source": "provider",
        },
        {**llm("deepseek", "deepseek-v9", 10, 10), "start": EVENING},  # no price anywhere
        no_usage,
    ]
    pipeline.export(otlp_request(spans))
    pipeline.export(otlp_request([search(3)]))  # 3 of the 4 free queries
    pipeline.export(otlp_request([search(3)]))  # 1 free, 2 at $0.002
    overrides.write_text(OVERRIDES % "0.003")
    source = price_data.write(tmp_path / "data.json", price_data.document("0.28", "0.42"))
    pricedata.update(str(source), path=cache)
    yield ledger_url, ledger, overrides
    ledger.close()


def tables(ledger: Ledger) -> tuple[list, list]:
    return (
        ledger._read("SELECT id, cost_nusd, book_cost_nusd, priced, cost_source FROM calls ORDER BY id"),
        ledger._read(
            "SELECT day, provider, model, status, cost_nusd, unpriced FROM daily ORDER BY day, provider, model"
        ),
    )


def daily_cost(ledger: Ledger, day: str, provider: str, model: str) -> int:
    return ledger._read(
        "SELECT SUM(cost_nusd) FROM daily WHERE day = ? AND provider = ? AND model = ?", (day, provider, model)
    )[0][0]


def calls_cost(ledger: Ledger, model: str, since: int, until: int) -> list[int]:
    rows = ledger._read(
        "SELECT cost_nusd FROM calls WHERE model = ? AND ts_ns >= ? AND ts_ns < ? ORDER BY id", (model, since, until)
    )
    return [r[0] for r in rows]


def run(capsys, *args: str) -> str:
    capsys.readouterr()
    assert main(list(args)) == 0
    return capsys.readouterr().out


def test_dry_run_prints_the_difference_and_changes_nothing(recorded, capsys):
    url, ledger, overrides = recorded
    before = tables(ledger)
    out = run(capsys, "reprice", *RANGE, "--ledger", url, "--prices", str(overrides), "--dry-run")
    assert "dry run: nothing changed" in out
    deepseek = sum((new_price(i, o) - old_price(i, o) for i, o in DEEPSEEK), Decimal(0))
    search = 2 * (Decimal("0.003") - Decimal("0.002"))  # 2 paid queries; the free ones stay free
    rows = {tuple(line.split()[:2]): line.split() for line in out.splitlines()}
    assert rows[("deepseek", "deepseek-chat")][2:4] == ["6", "4"]  # 3 repriced, 1 book figure
    assert rows[("deepseek", "deepseek-chat")][-1] == f"{deepseek:.9f}"
    assert rows[("serper", "-")][-1] == f"{search:.9f}"
    assert rows[("openai", "gpt-4")][-1] == "0.000000000"
    assert f"difference: {deepseek + search:+.9f} USD over 5 call(s)" in out
    assert "left as recorded: 1 call(s): no usage reported" in out
    assert tables(ledger) == before


def test_reprice_changes_calls_and_daily_totals_exactly_and_usage_shows_them(recorded, capsys):
    url, ledger, overrides = recorded
    day_start = int(datetime(2025, 12, 1, tzinfo=UTC).timestamp()) * 10**9
    day_end = day_start + 86_400 * 10**9
    before_gpt4 = daily_cost(ledger, "2025-12-01", "openai", "gpt-4")
    before_earlier = daily_cost(ledger, "2025-11-20", "deepseek", "deepseek-chat")
    out = run(capsys, "reprice", *RANGE, "--ledger", url, "--prices", str(overrides))
    assert "updated 5 call(s) and their daily totals in one transaction" in out  # 4 deepseek, 1 search

    new = [nano(new_price(i, o)) for i, o in DEEPSEEK]
    late = nano(Decimal(1_000) * (Decimal("1.00") + Decimal("2.00")) / MILLION)  # the override, as before
    assert calls_cost(ledger, "deepseek-chat", day_start, day_end) == [*new, late, 300_000_000, 0]
    # the provider's figure stays; its price-book figure follows the new data
    [(book, source)] = ledger._read("SELECT book_cost_nusd, cost_source FROM calls WHERE cost_source = 'provider'")
    assert (book, source) == (nano(new_price(1_000_000, 0)), "provider")
    assert calls_cost(ledger, "deepseek-chat", EARLIER, EARLIER + 1) == [nano(old_price(1_000_000, 0))]
    serper = ledger._read("SELECT cost_nusd, free_units FROM calls WHERE provider = 'serper' ORDER BY id")
    assert serper == [(0, 3), (6_000_000, 1)]  # the same free units as when recorded: 2 paid x $0.003

    assert daily_cost(ledger, "2025-12-01", "deepseek", "deepseek-chat") == sum(new) + late + 300_000_000
    assert daily_cost(ledger, "2025-12-01", "openai", "gpt-4") == before_gpt4
    assert daily_cost(ledger, "2025-11-20", "deepseek", "deepseek-chat") == before_earlier
    assert daily_cost(ledger, "2025-12-01", "serper", "") == 6_000_000
    for day, provider, model, status, cost, _ in tables(ledger)[1]:  # every daily total = its calls
        [(from_calls,)] = ledger._read(
            "SELECT SUM(cost_nusd) FROM calls WHERE day = ? AND provider = ? AND model = ? AND status = ?",
            (day, provider, model, status),
        )
        assert cost == from_calls, (day, provider, model)

    report = json.loads(run(capsys, "usage", "--ledger", url, *RANGE, "--group-by", "model", "--format", "json"))
    by_model = {r["model"]: Decimal(r["cost_usd"]) for r in report["rows"]}
    expected = (sum(new) + late + 300_000_000) / Decimal(10**9)
    assert abs(by_model["deepseek-chat"] - expected) <= Decimal("1e-9")
    everything = sum(r[1] for r in tables(ledger)[0]) / Decimal(10**9)
    assert abs(Decimal(report["totals"]["all_time"]["cost_usd"]) - everything) <= Decimal("1e-9")  # daily totals

    version = pricedata.load().version
    sources = ledger._read("SELECT DISTINCT cost_source FROM calls WHERE model = 'deepseek-chat' AND free_units = 0")
    assert {r[0] for r in sources} == {f"genai-prices@{version}", "override", "provider", "no_usage", "genai-prices"}
    assert "(repriced)" not in out and version in run(capsys, "prices", "--ledger", url)

    again = run(capsys, "reprice", *RANGE, "--ledger", url, "--prices", str(overrides))
    assert "difference: +0.000000000 USD over 0 call(s)" in again


def test_a_call_no_price_matched_then_is_priced_now(recorded, capsys, tmp_path):
    url, ledger, overrides = recorded
    overrides.write_text(
        (OVERRIDES % "0.003") + '  - {provider: deepseek, models: [deepseek-v9], input_mtok: "1", output_mtok: "1"}\n'
    )
    run(capsys, "reprice", *RANGE, "--ledger", url, "--prices", str(overrides), "--model", "deepseek-v9")
    [(cost, priced, source)] = ledger._read(
        "SELECT cost_nusd, priced, cost_source FROM calls WHERE model = 'deepseek-v9'"
    )
    assert (cost, priced, source) == (20_000, 1, "override")
    [(unpriced,)] = ledger._read("SELECT unpriced FROM daily WHERE model = 'deepseek-v9'")
    assert unpriced == 0


def test_a_stale_plan_and_a_replica_writing_meanwhile_keep_the_daily_totals_right(recorded):
    _, ledger, overrides = recorded
    engine = PriceEngine(overrides=load_book(overrides), price_data=pricedata.load())
    since = int(datetime(2025, 12, 1, tzinfo=UTC).timestamp()) * 10**9
    first, stale = reprice.plan(ledger, engine, since), reprice.plan(ledger, engine, since)
    replica = Pipeline(ExporterConfig(), PriceEngine(), ledger, UsageMetrics())
    replica.export(otlp_request([{**llm("deepseek", "deepseek-chat", 500, 500), "start": EVENING}]))
    assert reprice.apply(ledger, first) == 5
    reprice.apply(ledger, stale)  # computed before the first was applied: must not count twice
    for day, provider, model, status, cost, unpriced in tables(ledger)[1]:
        [(from_calls, unpriced_calls)] = ledger._read(
            "SELECT SUM(cost_nusd), SUM(1 - priced) FROM calls WHERE day = ? AND provider = ? AND model = ? "
            "AND status = ?",
            (day, provider, model, status),
        )
        assert (cost, unpriced) == (from_calls, unpriced_calls), (day, provider, model)


def test_counters_restored_after_a_reprice_continue_from_what_they_counted(recorded, capsys):
    """Prometheus keeps the history it scraped: a restart after a reprice must not move the counters
    (a drop would read as a counter reset), while the reports show the corrected figures."""
    url, ledger, overrides = recorded
    counted = UsageMetrics()
    Pipeline(ExporterConfig(), PriceEngine(), ledger, counted).restore()
    run(capsys, "reprice", *RANGE, "--ledger", url, "--prices", str(overrides))
    restored = UsageMetrics()
    Pipeline(ExporterConfig(), PriceEngine(), ledger, restored).restore()
    assert restored.cost == counted.cost and restored.unpriced == counted.unpriced
    report = json.loads(run(capsys, "usage", "--ledger", url, "--format", "json"))
    assert Decimal(report["totals"]["all_time"]["cost_usd"]) != sum(counted.cost.values())


def test_two_reprices_at_once_on_their_own_connections_count_each_change_once(recorded):
    url, ledger, overrides = recorded
    engine = PriceEngine(overrides=load_book(overrides), price_data=pricedata.load())
    since = int(datetime(2025, 12, 1, tzinfo=UTC).timestamp()) * 10**9
    ledgers = [open_ledger(url), open_ledger(url)]
    plans = [reprice.plan(one, engine, since) for one in ledgers]  # both before either applies
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run_one(one: Ledger, changes: reprice.Plan) -> None:
        start.wait()
        try:
            reprice.apply(one, changes)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run_one, args=pair) for pair in zip(ledgers, plans, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for one in ledgers:
        one.close()
    assert errors == []
    for day, provider, model, status, cost, unpriced in tables(ledger)[1]:
        [(from_calls, unpriced_calls)] = ledger._read(
            "SELECT SUM(cost_nusd), SUM(1 - priced) FROM calls WHERE day = ? AND provider = ? AND model = ? "
            "AND status = ?",
            (day, provider, model, status),
        )
        assert (cost, unpriced) == (from_calls, unpriced_calls), (day, provider, model)
    [(repriced,)] = ledger._read("SELECT SUM(repriced_nusd) FROM daily")
    assert repriced == plans[0].difference_nusd  # once, not twice
