"""The console in real headless Chromium over a ledger filled through the real exporter: every page,
its filters, expanding rows, charts, exports and the date picker; a screenshot of each page."""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import UTC, datetime
from decimal import Decimal

from PIL import Image

from tests.console import seed
from tests.console.conftest import OUTPUT
from tests.exporter.server import running

SIX = Decimal("0.000001")
DOCS_SCREENSHOT = OUTPUT.parents[2] / "docs" / "console-overview.png"


# -- helpers ------------------------------------------------------------------------------------------
def ledger_cost(exporter, where: str = "", params: tuple = (), table: str = "calls") -> Decimal:
    nano = exporter.ledger._read(f"SELECT COALESCE(SUM(cost_nusd), 0) FROM {table} {where}", params)[0][0]
    return (Decimal(nano) / Decimal(10**9)).quantize(SIX)


def month_start_ns() -> int:
    now = datetime.now(UTC)
    return int(now.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()) * 10**9


def dollars(text: str) -> Decimal:
    return Decimal(text.strip().replace("$", "").replace(",", ""))


def goto(page, route: str) -> None:
    page.goto(f"{page.base}/console/#/{route}")
    page.wait_for_function("() => document.getElementById('main').dataset.render >= '1'")
    page.wait_for_timeout(200)  # plotly draws after the tables


def after(page, action) -> None:
    """Run ``action`` (a click that re-renders the page) and wait for the new render."""
    before = page.eval_on_selector("#main", "m => Number(m.dataset.render || 0)")
    action()
    page.wait_for_function("n => Number(document.getElementById('main').dataset.render) > n", arg=before)
    page.wait_for_timeout(150)


def rows(page, table: str) -> list[list[str]]:
    return page.eval_on_selector_all(
        f"#table-{table} tbody tr:not(.details)", "trs => trs.map(tr => [...tr.cells].map(td => td.textContent))"
    )


def headers(page, table: str) -> list[str]:
    return page.eval_on_selector_all(f"#table-{table} thead th", "ths => ths.map(th => th.textContent)")


def column(page, table: str, name: str) -> list[str]:
    index = headers(page, table).index(name)
    return [r[index] for r in rows(page, table)]


def card(page, card_id: str) -> str:
    return page.inner_text(f"#{card_id} .value")


def screenshot(page, name: str) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    image = Image.open(path).convert("L")
    histogram = image.histogram()
    background = max(histogram)
    ink = sum(histogram) - background
    assert ink > 0.02 * sum(histogram), f"{path} looks blank"
    assert len([n for n in histogram if n]) > 20, f"{path} has almost no tones: blank?"


def exported(page, table: str, kind: str) -> str:
    with page.expect_download() as info:
        page.click(f"#table-{table} .export-{kind}")
    return info.value.path().read_text(encoding="utf-8")


def normalise(cell: str) -> str:
    return cell.replace("$", "").replace(",", "").replace("(none)", "").strip()


def assert_csv_equals_table(page, table: str) -> None:
    text = exported(page, table, "csv")
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[0] == headers(page, table)
    shown = [[normalise(c) for c in row] for row in rows(page, table)]
    assert [[normalise(c) for c in row] for row in parsed[1:]] == shown
    as_json = json.loads(exported(page, table, "json"))
    assert [list(map(normalise, map(str, r.values()))) for r in as_json] == shown


# -- pages --------------------------------------------------------------------------------------------
def test_overview_totals_equal_the_ledger(page, seeded):
    goto(page, "overview")
    assert dollars(card(page, "card-all")) == ledger_cost(seeded, table="daily")
    assert dollars(card(page, "card-month")) == ledger_cost(seeded, "WHERE ts_ns >= ?", (month_start_ns(),))
    # the seeds: haiku $1.20, sonnet $0.06, gpt-4 $0.009 twice (one more last month), serper $0.003, unsplash $0
    assert dollars(card(page, "card-all")) == Decimal("1.290000")
    by_model = {(r[0], r[2]): dollars(r[-1]) for r in rows(page, "by-model")}
    assert by_model[("shop", "claude-3-5-haiku-20241022")] == Decimal("1.2")
    assert by_model[("shop", "claude-3-5-sonnet-20241022")] == Decimal("0.06")
    assert by_model[("shop", "gpt-4")] == Decimal("0.018")
    assert by_model[("research", "(none)")] == Decimal("0.003")
    assert by_model[("shop", "(none)")] == Decimal("0")
    assert page.locator("#chart-models g.slice").count() >= 3
    assert page.locator("#chart-cost g.point").count() >= 1
    assert len(rows(page, "recent")) == 20
    assert_csv_equals_table(page, "by-model")
    with page.expect_download() as info:
        page.click("#export-page")
    data = json.loads(info.value.path().read_text())
    assert data["cards"]["All time"]["cost_usd"] == "1.290000"
    assert len(data["tables"]["by-model"]) == len(rows(page, "by-model"))
    screenshot(page, "overview")
    if os.environ.get("AISPEND_UPDATE_DOCS_SCREENSHOT"):  # the README's picture, made by this test
        image = Image.open(OUTPUT / "overview.png").convert("RGB")
        image.thumbnail((1000, 1400))
        image.quantize(colors=48).save(DOCS_SCREENSHOT, optimize=True)


def test_calls_filters_expand_and_load_more(page, seeded):
    goto(page, "calls")
    everything = rows(page, "calls")
    assert len(everything) == 50 and page.is_visible("#load-more")
    after(page, lambda: page.select_option("#filter-model", "gpt-4"))
    assert "model=gpt-4" in page.url
    models = column(page, "calls", "Model")
    assert models == ["gpt-4"] * 3  # this month's: the 40-day-old one is outside the range
    assert dollars(card(page, "card-selected")) == ledger_cost(
        seeded, "WHERE model = ? AND ts_ns >= ?", ("gpt-4", month_start_ns())
    )
    after(page, lambda: page.select_option("#filter-status", "rate_limited"))
    assert column(page, "calls", "Status") == ["rate_limited"]
    page.click("#table-calls tbody tr.expandable")
    details = page.inner_text("#table-calls tr.details")
    assert "rate_limit_exceeded" in details and "Customer (group)" in details and "globex" in details
    screenshot(page, "calls-expanded")
    after(page, lambda: page.click("text=Clear filters"))
    after(page, lambda: page.select_option("#filter-operation", "chat"))
    assert set(column(page, "calls", "Type")) == {"chat"} and len(rows(page, "calls")) == 5
    after(page, lambda: page.click("text=Clear filters"))
    page.click("#load-more")
    page.wait_for_function("() => document.querySelectorAll('#table-calls tbody tr').length > 50")
    total = seeded.ledger._read("SELECT COUNT(*) FROM calls WHERE ts_ns >= ?", (month_start_ns(),))[0][0]
    assert len(rows(page, "calls")) == total
    assert_csv_equals_table(page, "calls")
    screenshot(page, "calls")


def test_date_picker_changes_the_range(page, seeded):
    goto(page, "calls")
    assert "oldco" not in column(page, "calls", "Customer")
    day = datetime.fromtimestamp(seed.OLD_NS / 1e9, UTC).strftime("%Y-%m-%d")
    page.fill("#from", day)
    page.fill("#to", day)
    after(page, lambda: page.click("#apply"))
    assert column(page, "calls", "Customer") == ["oldco"]
    assert dollars(card(page, "card-selected")) == Decimal("0.009")
    assert page.input_value("#from") == day and page.input_value("#to") == day
    screenshot(page, "calls-date-range")
    after(page, lambda: page.click("[data-since=all]"))
    assert dollars(card(page, "card-selected")) == ledger_cost(seeded)
    assert page.inner_text("#card-selected .sub") == f"{len(seed.BATCH_SPANS) + 1} calls"
    after(page, lambda: page.click("[data-since=month]"))
    assert "oldco" not in column(page, "calls", "Customer")


def test_models_sort_and_pie(page, seeded):
    goto(page, "models")
    costs = [dollars(c) for c in column(page, "models", "Cost (US$)")]
    assert costs == sorted(costs, reverse=True) and costs[0] == Decimal("1.2")
    after(page, lambda: page.click("#table-models th:has-text('Calls')"))
    calls = [int(c.replace(",", "")) for c in column(page, "models", "Calls")]
    assert calls == sorted(calls, reverse=True) and calls[0] == 56  # unsplash: 1 + 55
    after(page, lambda: page.click("#table-models th:has-text('Model')"))
    names = column(page, "models", "Model")
    assert names == sorted(names, key=lambda n: "" if n == "(none)" else n)
    assert page.locator("#chart-models g.slice").count() == 4  # haiku, sonnet, gpt-4, serper (unsplash is $0)
    assert_csv_equals_table(page, "models")
    screenshot(page, "models")


def test_features_with_trend(page, seeded):
    goto(page, "features")
    by_feature = {r[0]: r for r in rows(page, "features")}
    assert dollars(by_feature["chat"][3]) == ledger_cost(
        seeded, "WHERE feature = ? AND ts_ns >= ?", ("chat", month_start_ns())
    )
    assert by_feature["summary"][1] == "2" and dollars(by_feature["summary"][2]) == Decimal("0.0345")
    assert "legacy" not in by_feature  # last month's feature is outside this month
    after(page, lambda: page.click("[data-since=all]"))
    assert "legacy" in {r[0] for r in rows(page, "features")}
    assert_csv_equals_table(page, "features")
    screenshot(page, "features")


def test_customers_and_customer_detail(page, seeded):
    goto(page, "customers")
    names = column(page, "customers", "Customer")
    assert names[0] == "globex" and set(names) >= {"acme", "initech", "bulkco"}
    screenshot(page, "customers")
    after(page, lambda: page.click("#table-customers a:text-is('globex')"))
    assert "#/customers/globex" in page.url
    assert dollars(card(page, "card-selected")) == ledger_cost(
        seeded, "WHERE customer = ? AND ts_ns >= ?", ("globex", month_start_ns())
    )
    assert set(column(page, "customer-calls", "Customer")) == {"globex"}
    assert column(page, "customer-models", "Model")[0] in ("claude-3-5-haiku-20241022", "gpt-4", "(none)")
    assert page.locator("#chart-trend g.point").count() >= 1
    assert_csv_equals_table(page, "customer-models")
    screenshot(page, "customer-detail")


def test_keys_and_key_detail_charts(page, seeded):
    goto(page, "keys")
    keys = column(page, "keys", "Key")
    assert "prod-backend" in keys and not any(k.startswith("sk-") and len(k) > 20 for k in keys)
    screenshot(page, "keys")
    after(page, lambda: page.click("#table-keys a:text-is('prod-backend')"))
    tokens = seeded.ledger._read(
        "SELECT SUM(input_tokens), SUM(output_tokens), SUM(requests) FROM calls WHERE key = ? AND ts_ns >= ?",
        ("prod-backend", month_start_ns()),
    )[0]
    assert page.inner_text("#card-input .value").replace(",", "") == str(tokens[0])
    assert page.inner_text("#card-output .value").replace(",", "") == str(tokens[1])
    assert page.inner_text("#card-tokens .value").replace(",", "") == str(tokens[0] + tokens[1])
    assert page.inner_text("#card-requests .value").replace(",", "") == str(tokens[2])
    for chart in ("chart-tokens", "chart-inout", "chart-requests"):
        page.wait_for_selector(f"#{chart} .plot-container")
        assert page.locator(f"#{chart} g.point path").count() >= 1, chart
    plotted = page.evaluate(
        "() => ['chart-tokens', 'chart-inout', 'chart-requests'].map("
        "id => document.getElementById(id).data.map(t => t.y.reduce((a, b) => a + b, 0)))"
    )
    assert plotted == [[tokens[0] + tokens[1]], [tokens[0], tokens[1]], [tokens[2]]]
    assert_csv_equals_table(page, "key-models")
    screenshot(page, "key-detail")


def test_budgets_page(page, seeded):
    goto(page, "budgets")
    table = {r[0]: r for r in rows(page, "budgets")}
    assert set(table) == {"all-monthly", "acme-daily"}
    acme = table["acme-daily"]
    assert dollars(acme[3]) == ledger_cost(
        seeded,
        "WHERE customer = ? AND ts_ns >= ?",
        ("acme", int(datetime.now(UTC).timestamp()) // 86400 * 86400 * 10**9),
    )
    assert acme[6] == "50% 75% 90% 100%" and acme[7] == "warning (calls go through)"
    assert table["all-monthly"][7] == "armed: blocks at 100%"
    assert page.locator("#budget-acme-daily .tick").count() == 4
    assert_csv_equals_table(page, "budgets")
    screenshot(page, "budgets")


def test_token_is_asked_for_kept_in_the_session_and_never_shown(browser, tmp_path):
    token = "console-s3cret-token"
    with running(ledger=f"sqlite:///{tmp_path}/l.sqlite", auth_token=token) as exporter:
        seed.send(exporter.ports["otlp_http"], token)
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{exporter.ports['metrics']}/console/#/overview")
        page.wait_for_selector("#tokendialog[open]")
        page.fill("#tokeninput", "wrong")
        page.click("#tokenform button")
        page.wait_for_selector("#tokendialog[open]")
        page.wait_for_function("() => document.getElementById('tokenerror').textContent.includes('not accepted')")
        page.fill("#tokeninput", token)
        page.click("#tokenform button")
        page.wait_for_function("() => document.getElementById('main').dataset.render >= '1'")
        assert dollars(page.inner_text("#card-all .value")) == Decimal("1.290000")
        assert page.evaluate("sessionStorage.getItem('aispend.token')") == token
        assert token not in page.content()
        page.goto(f"http://127.0.0.1:{exporter.ports['metrics']}/console/#/keys")
        page.wait_for_function("() => document.getElementById('main').dataset.render >= '1'")
        assert not page.is_visible("#tokendialog")  # the session keeps it
        context.close()
