"""Every parameter of /v1/usage, /v1/calls, /v1/series, /v1/labels, /v1/budgets and the admin POST is
validated (400 naming it, never a dropped connection), `limit` is bounded, and the query layer's
sums (whole days from the daily totals, edges from the calls) equal a scan of the calls."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from aispend.exporter import queries
from aispend.exporter.config import ExporterConfig
from aispend.exporter.ledger import Filters, open_ledger
from aispend.exporter.metrics import UsageMetrics
from aispend.exporter.pipeline import Pipeline
from aispend.pricing import PriceEngine
from tests.exporter.server import running
from tests.exporter.spans import llm, otlp_request
from tests.exporter.test_receivers import post

SPANS = [llm("openai", "gpt-4", 150, 75, **{"aispend.customer": f"c{i}", "aispend.feature": "chat"}) for i in range(5)]


@pytest.fixture(scope="module")
def api():
    budgets = "budgets:\n  - {name: all, period: month, amount_usd: 10}\n"
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/budgets.yaml"
        with open(path, "w") as f:
            f.write(budgets)
        with running(ledger=f"sqlite:///{tmp}/l.sqlite", budgets=path, admin_token="adm") as exporter:
            post(
                f"http://127.0.0.1:{exporter.ports['otlp_http']}/v1/traces",
                otlp_request(SPANS, service="shop").SerializeToString(),
                "application/x-protobuf",
            )
            yield f"http://127.0.0.1:{exporter.ports['metrics']}"


def get(url: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": "Bearer adm"})  # the admin token reads too
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def post_admin(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Authorization": "Bearer adm", "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


BAD = [
    ("/v1/usage?since=99999999d", "since"),
    ("/v1/calls?since=100000000000d", "since"),
    ("/v1/usage?until=0001-01-01", "until"),
    ("/v1/calls?until=0001-01-01", "until"),
    ("/v1/usage?since=9999-12-31", "since"),
    ("/v1/usage?since=2026-02-30", "since"),
    ("/v1/usage?since=2026-05-01&until=2026-04-01", "until"),
    ("/v1/calls?limit=100000000000000000000", "limit"),
    ("/v1/calls?limit=-1", "limit"),
    ("/v1/calls?limit=0", "limit"),
    ("/v1/calls?limit=10001", "limit"),
    ("/v1/calls?limit=1e3", "limit"),
    ("/v1/usage?group_by=customer&limit=-1", "limit"),
    ("/v1/usage?group-by=model", "group-by"),
    ("/v1/usage?bogus=1", "bogus"),
    ("/v1/calls?bogus=1", "bogus"),
    ("/v1/series?bogus=1", "bogus"),
    ("/v1/labels?bogus=1", "bogus"),
    ("/v1/budgets?bogus=1", "bogus"),
    ("/v1/usage?group_by=planet", "group_by"),
    ("/v1/usage?group_by=model,model", "group_by"),
    ("/v1/usage?sort=price", "sort"),
    ("/v1/usage?compare=maybe", "compare"),
    ("/v1/calls?limit=1&limit=2", "limit"),
    ("/v1/calls?model=a&model=b", "model"),
    ("/v1/calls?before=yesterday", "before"),
    ("/v1/calls?before=99999999999999999999.1", "before"),
    ("/v1/series?bucket=minute", "bucket"),
    ("/v1/series?bucket=hour&since=60d", "bucket"),
    ("/v1/calls?customer=" + "x" * 2000, "customer"),
    ("/v1/calls?customer=a%00b", "customer"),
    ("/v1/calls?customer=%ff", "utf-8"),
]


@pytest.mark.parametrize(("path", "named"), BAD)
def test_a_bad_parameter_is_a_400_naming_it(api, path, named):
    status, body = get(api + path)
    assert status == 400, body
    assert named in body["error"].lower(), body


def test_too_many_parameters_is_a_400(api):
    status, body = get(api + "/v1/calls?" + "&".join(f"p{i}=1" for i in range(60)))
    assert status == 400 and "fields" in body["error"]


def test_limit_bounds_group_rows_without_dropping_any(api):
    status, report = get(api + "/v1/usage?group_by=customer")
    assert status == 200 and report["rows_total"] == 5 and len(report["rows"]) == 5
    status, report = get(api + "/v1/usage?group_by=customer&limit=2")
    assert [r["cost_usd"] for r in report["rows"]] == ["0.009", "0.009"] and report["rows_total"] == 5
    status, report = get(api + "/v1/usage?group_by=customer&limit=5&sort=name")
    assert [r["customer"] for r in report["rows"]] == ["c0", "c1", "c2", "c3", "c4"]


def test_calls_page_on_with_the_cursor(api):
    seen = []
    before = None
    while True:
        status, page = get(api + "/v1/calls?limit=2" + (f"&before={before}" if before else ""))
        assert status == 200 and len(page) <= 2
        if not page:
            break
        seen += page
        before = page[-1]["cursor"]
    assert sorted(c["customer"] for c in seen) == ["c0", "c1", "c2", "c3", "c4"]
    assert len({c["cursor"] for c in seen}) == 5


def test_series_and_labels(api):
    status, series = get(api + "/v1/series?since=24h&bucket=hour")
    assert status == 200 and series["bucket"] == "hour" and len(series["points"]) in (24, 25)
    assert sum(p["calls"] for p in series["points"]) == 5
    assert sum(Decimal(p["cost_usd"]) for p in series["points"]) == Decimal("0.045")
    status, series = get(api + "/v1/series?since=30d&bucket=day")
    assert status == 200 and len(series["points"]) in (30, 31) and sum(p["calls"] for p in series["points"]) == 5
    status, labels = get(api + "/v1/labels")
    assert status == 200 and sorted(labels["customer"]) == ["c0", "c1", "c2", "c3", "c4"]
    assert labels["model"] == ["gpt-4"]


def test_budgets_report_has_forecast_and_enforcement(api):
    _, data = get(api + "/v1/budgets")
    (budget,) = data["budgets"]
    assert budget["spend_usd"] == pytest.approx(0.045)
    assert budget["thresholds_crossed"] == [] and budget["enforcement"] == "alert only"
    assert Decimal(budget["forecast_usd"]) >= Decimal("0.045")


ADMIN_BAD = [
    (b"[" * 100_000 + b"]" * 100_000, "body over"),
    (b"[" * 30_000 + b"]" * 30_000, "nested"),
    (b'{"amount_usd": ' + b"[" * 5_000 + b"]" * 5_000 + b"}", "nested"),
    (b'{"amount_usd": 1e999}', "amount_usd"),
    (b'{"amount_usd": "NaN"}', "amount_usd"),
    (b'{"amount_usd": -5}', "amount_usd"),
    (b'{"amount_usd": ' + b"9" * 5_000 + b"}", "json"),
    (b'{"amount_usd": true}', "amount_usd"),
    (b'{"amount_usd": 10, "colour": "red"}', "colour"),
    (b'{"reset": "yes"}', "reset"),
    (b"[1, 2]", "object"),
    (b"{not json", "json"),
    (b"{}", "amount_usd"),
]


@pytest.mark.parametrize(("body", "named"), ADMIN_BAD)
def test_a_bad_admin_body_is_a_400(api, body, named):
    status, answer = post_admin(api + "/v1/budgets/all", body)
    assert status == 400, answer
    assert named in answer["error"].lower(), answer


def test_a_good_admin_body_still_works(api):
    status, answer = post_admin(api + "/v1/budgets/all", b'{"amount_usd": "12.50"}')
    assert status == 200 and answer["limit_usd"] == 12.5


def test_cli_rejects_a_negative_limit(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "aispend.cli", "usage", "--ledger", f"sqlite:///{tmp_path}/l.sqlite", "--limit", "-5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "limit" in out.stderr


def test_the_read_token_guards_the_reports_but_not_the_page(tmp_path):
    with running(ledger=f"sqlite:///{tmp_path}/l.sqlite", auth_token="tok") as exporter:
        base = f"http://127.0.0.1:{exporter.ports['metrics']}"
        for path in ("/v1/usage", "/v1/calls", "/v1/series", "/v1/labels"):
            status, body = get(base + path)
            assert status == 401 and "bearer" in body["error"]
            request = urllib.request.Request(base + path, headers={"Authorization": "Bearer tok"})
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
        with urllib.request.urlopen(base + "/console/", timeout=10) as response:
            page = response.read().decode()
        assert "tok" not in page.replace("token", "") and "<main" in page
        with urllib.request.urlopen(base + "/console/vendor/plotly.min.js", timeout=30) as response:
            assert response.status == 200 and len(response.read()) > 1_000_000  # the installed plotly.js
        assert get(base + "/console/../../etc/passwd")[0] == 404


# -- the split into daily totals and call edges is exact ---------------------------------------------
def test_range_sums_equal_a_scan_of_the_calls(ledger_url):
    ledger = open_ledger(ledger_url)
    rng = random.Random(7)
    now = datetime.now(UTC)
    spans = []
    for i in range(300):
        start = now - timedelta(seconds=rng.randrange(0, 40 * 86_400))
        spans.append(
            {
                **llm(
                    "openai",
                    rng.choice(["gpt-4", "gpt-4o"]),
                    rng.randrange(1, 5000),
                    rng.randrange(1, 500),
                    **{"aispend.customer": f"c{i % 7}"},
                ),
                "start": int(start.timestamp() * 1e9),
            }
        )
    Pipeline(ExporterConfig(), PriceEngine(), ledger, UsageMetrics()).export(otlp_request(spans))
    try:
        for tz in ("UTC", "Europe/Berlin", "Asia/Kolkata", "America/Los_Angeles"):
            zone = ZoneInfo(tz)
            for since, until in (("month", None), ("7d", "1d"), ("2026-01-01", None), ("36h", "12h"), (None, "3d")):
                params = {k: v for k, v in (("since", since), ("until", until)) if v}
                filters = queries.build_filters(params, now, zone)
                for equals in (None, {"customer": "c3"}, {"model": "gpt-4o"}):
                    f = Filters(filters.since_ns, filters.until_ns, equals)
                    where, values = f.where()
                    want = ledger._read(f"SELECT COUNT(*), COALESCE(SUM(cost_nusd), 0) FROM calls{where}", values)[0]
                    got = queries.total(ledger, f)
                    assert (got["calls"], Decimal(got["cost_usd"])) == (want[0], Decimal(want[1]) / 10**9), (
                        tz,
                        since,
                        until,
                        equals,
                    )
    finally:
        ledger.close()


def test_cached_closed_days_see_a_late_call(ledger_url):
    """A call for a closed day that arrives after that day's sums were cached is counted."""
    ledger = open_ledger(ledger_url)
    pipeline = Pipeline(ExporterConfig(), PriceEngine(), ledger, UsageMetrics())
    old = int((datetime.now(UTC) - timedelta(days=10)).timestamp() * 1e9)
    try:
        pipeline.export(otlp_request([{**llm("openai", "gpt-4", 150, 75), "start": old}]))
        params = {"since": "30d", "group_by": "model", "totals": "0"}
        assert queries.usage(ledger, params)["selected"]["cost_usd"] == "0.009"
        assert queries.usage(ledger, params)["selected"]["cost_usd"] == "0.009"  # now from the cache
        pipeline.export(otlp_request([{**llm("openai", "gpt-4", 300, 150), "start": old + 1}]))
        assert queries.usage(ledger, params)["selected"]["cost_usd"] == "0.027"
        assert queries.usage(ledger, {"group_by": "model"})["totals"]["all_time"]["cost_usd"] == "0.027"
    finally:
        ledger.close()
