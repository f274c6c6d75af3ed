"""``aispend prices update`` from a local file (no network): a changed DeepSeek price changes new
calls' prices in ``prices`` and ``serve`` (after SIGHUP); an invalid file changes nothing."""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from aispend.cli import main
from aispend.pricing import PriceEngine, UsageRecord, pricedata
from tests.exporter.server import ServeProcess, running, samples, scrape, value
from tests.exporter.spans import llm, otlp_request
from tests.exporter.test_restart import grpc_export
from tests.pricing import price_data
from tests.support.polling import eventually

MILLION = {"input_tokens": 1_000_000, "output_tokens": 1_000_000}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache" / "prices.json"
    monkeypatch.setenv("AISPEND_PRICE_CACHE", str(path))
    return path


def deepseek_cost(engine: PriceEngine) -> Decimal:
    evening = datetime(2026, 12, 1, 18, tzinfo=UTC)  # off-peak in genai-prices' DeepSeek prices
    return engine.price(UsageRecord(provider="deepseek", model="deepseek-chat", timestamp=evening, **MILLION)).cost


def cli_cost(capsys) -> Decimal:
    capsys.readouterr()
    assert main(["prices", "deepseek-chat", "--provider", "deepseek", "--input", "1000000", "--output", "1000000",
                 "--at", "2026-12-01T18:00:00Z", "--json"]) == 0  # fmt: skip
    return Decimal(json.loads(capsys.readouterr().out)["cost_usd"])


def test_update_from_a_file_changes_new_prices(tmp_path, cache, capsys):
    bundled = cli_cost(capsys)
    assert bundled == Decimal("0.685")  # genai-prices 0.2.3's off-peak price, $0.135 + $0.55
    source = price_data.write(tmp_path / "data.json", price_data.document("0.28", "0.42"))
    assert main(["prices", "update", "--from", str(source)]) == 0
    out = capsys.readouterr().out
    assert f"price data: {source}, fetched " in out and "4 providers, 4 models" in out
    assert cli_cost(capsys) == Decimal("0.70")
    stored = json.loads(cache.read_text())
    assert stored["source"] == str(source) and stored["format"] == "aispend-price-data/1"
    assert len(stored["sha256"]) == 64 and stored["fetched_at"].endswith("Z")
    assert main(["prices"]) == 0
    assert "fetched" in capsys.readouterr().out
    data = pricedata.load()
    assert (data.origin, data.source, data.version) == ("cache", str(source), stored["sha256"][:12])
    assert deepseek_cost(PriceEngine(price_data=data)) == Decimal("0.70")
    assert deepseek_cost(PriceEngine()) == bundled  # the bundled copy itself is untouched


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{not json", "is not JSON"),
        ({"providers": []}, "expected a non-empty list of providers"),
        ([{"id": "openai"}], "does not match genai-prices' schema"),
        (price_data.document("-0.28", "0.42"), "is not a plausible price"),
        (price_data.document()[3:], "no models for openai, anthropic, google"),
    ],
)
def test_an_invalid_file_changes_nothing(tmp_path, cache, capsys, content, says):
    good = price_data.write(tmp_path / "good.json", price_data.document("0.28", "0.42"))
    assert main(["prices", "update", "--from", str(good)]) == 0
    before = cache.read_bytes()
    bad = price_data.write(tmp_path / "bad.json", content)
    capsys.readouterr()
    assert main(["prices", "update", "--from", str(bad)]) == 1
    err = capsys.readouterr().err
    assert says in err and "nothing changed; still in use: price data: " + str(good) in err
    assert cache.read_bytes() == before
    assert cli_cost(capsys) == Decimal("0.70")


def test_an_unreachable_url_changes_nothing(cache, capsys):
    assert main(["prices", "update", "--from", "http://127.0.0.1:9/data.json"]) == 1
    assert "could not fetch http://127.0.0.1:9/data.json" in capsys.readouterr().err
    assert not cache.exists()
    assert pricedata.load().origin == "bundled"


def test_a_damaged_cache_falls_back_to_the_bundled_copy_and_says_why(cache):
    cache.parent.mkdir(parents=True)
    cache.write_text('{"format": "aispend-price-data/1", "data": [')
    data = pricedata.load()
    assert data.origin == "bundled" and "is not JSON" in data.warning
    with running() as exporter:
        text = scrape(exporter.ports["metrics"])
        assert value(text, "aispend_config_errors_total", file="price_data") == 1
        assert value(text, "aispend_price_data_info", origin="bundled", version=pricedata.GENAI_PRICES_VERSION) == 1


def test_serve_prices_with_the_cache_and_reloads_it_on_sighup(tmp_path, cache):
    proc = ServeProcess(tmp_path, "--ledger", "none", env={"AISPEND_PRICE_CACHE": str(cache)}).start()
    try:
        port, metrics = proc.ports["otlp_grpc"], proc.ports["metrics"]
        call = llm("deepseek", "deepseek-chat", 1_000_000, 1_000_000)
        evening = 1_764_612_000 * 10**9  # 2025-12-01T18:00:00Z: off-peak in genai-prices' data
        grpc_export(port, otlp_request([{**call, "start": evening}]))
        text = scrape(metrics)
        assert value(text, "aispend_cost_usd_total", model="deepseek-chat") == pytest.approx(0.685, abs=1e-12)
        [info] = samples(text, "aispend_price_data_info")
        assert dict(info)["origin"] == "bundled"

        source = price_data.write(tmp_path / "data.json", price_data.document("0.28", "0.42"))
        assert main(["prices", "update", "--from", str(source)]) == 0
        proc.signal(signal.SIGHUP)

        def reloaded() -> bool:
            labels = dict(next(iter(samples(scrape(metrics), "aispend_price_data_info"))))
            return labels["origin"] == "cache" and labels["source"] == str(source) and bool(labels["date"])

        assert eventually(reloaded)
        grpc_export(port, otlp_request([{**call, "start": evening}]))
        # the first call keeps its price, the new one has DeepSeek's new price: 0.685 + 0.70
        assert value(scrape(metrics), "aispend_cost_usd_total", model="deepseek-chat") == pytest.approx(
            1.385, abs=1e-12
        )
    finally:
        assert proc.stop() == 0


def test_every_figure_names_its_price_data_and_the_ledger_says_where_and_when(tmp_path, cache, capsys):
    source = price_data.write(tmp_path / "data.json", price_data.document("0.28", "0.42"))
    assert main(["prices", "update", "--from", str(source)]) == 0
    data = pricedata.load()
    url = f"sqlite:///{tmp_path}/ledger.sqlite"
    with running(ledger=url) as exporter:
        grpc_export(exporter.ports["otlp_grpc"], otlp_request([llm("deepseek", "deepseek-chat", 1_000, 1_000)]))
        [(source_name,)] = exporter.ledger._read("SELECT cost_source FROM calls")
    assert source_name == f"genai-prices@{data.version}"
    capsys.readouterr()
    assert main(["prices", "--ledger", url]) == 0
    out = capsys.readouterr().out
    assert f"  {data.version}: {source} (fetched {data.date}), first used " in out
