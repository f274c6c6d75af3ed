"""``aispend serve`` warms the console's default pages in the background once its receivers are
open: afterwards their closed days are cached (the first load reads only live days), the answers
are the same, and a warm-up that fails never stops the service."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime

from aispend.exporter import console_warmup, queries
from aispend.exporter.ledger import Accounting, open_ledger
from tests.exporter.server import running
from tests.exporter.test_ledger_reads import _call

DAY_NS = 86_400 * 1_000_000_000


def _fill(url: str, instance: str) -> None:
    ledger = open_ledger(url)
    now = time.time_ns()
    calls = []
    for days_ago in (2, 5, 12, 40):  # closed days in this month, the last 7 / 30 days and before
        for customer in ("acme", "globex"):
            c = _call()
            c.start_ns, c.customer, c.key = now - days_ago * DAY_NS, customer, f"key-{customer}"
            calls.append(c)
    ledger.record(calls, Accounting(instance=instance))
    ledger.close()


def _get(port: int, path: str, params: dict[str, str]) -> dict:
    url = f"http://127.0.0.1:{port}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def test_serve_warms_the_console_default_pages_after_the_receivers_open(tmp_path):
    url = f"sqlite:///{tmp_path}/ledger.sqlite"
    _fill(url, "a")
    with running(ledger=url, instance_id="a") as exporter:
        assert exporter.ports["otlp_grpc"] and exporter.ports["otlp_http"]  # open before the warm-up ends
        assert exporter.warmed.wait(60), "the warm-up did not finish"
        entries = queries.closed_days(exporter.ledger)._entries
        shapes = {key[2] for key in entries}  # (since day, until day, group_by, filters)
        pages = [("service", "provider", "model"), ("feature",), ("customer",), ("key",), ("model", "provider")]
        for group_by in pages:
            assert group_by in shapes, (group_by, shapes)
        last_30 = console_warmup.days_back(30, datetime.now(UTC), "UTC")
        cached = len(entries)
        page = _get(exporter.ports["metrics"], "/v1/usage", {"since": last_30, "group_by": "customer", "compare": "1"})
        assert len(entries) == cached  # the console's Customers page (Last 30 days) was read already
        assert [(r["customer"], r["calls"]) for r in page["rows"]] == [("acme", 3), ("globex", 3)]
    with running(ledger=url, instance_id="a") as cold:  # the same page without a warm-up: the same answer
        cold.warmed.wait(60)
        queries.closed_days(cold.ledger)._entries.clear()
        again = _get(cold.ports["metrics"], "/v1/usage", {"since": last_30, "group_by": "customer", "compare": "1"})
        assert again["rows"] == page["rows"] and again["selected"] == page["selected"]


def test_a_warm_up_that_fails_is_logged_and_the_loop_goes_on(tmp_path, caplog):
    ledger = open_ledger(f"sqlite:///{tmp_path}/ledger.sqlite")
    ledger.close()  # every read fails now
    stop, warmed = threading.Event(), threading.Event()
    thread = threading.Thread(target=console_warmup.keep_warm, args=(ledger, "UTC", None, stop, warmed), daemon=True)
    with caplog.at_level(logging.WARNING, logger="aispend.exporter"):
        thread.start()
        assert warmed.wait(30)
        assert thread.is_alive()  # waits for the next midnight, not crashed
    stop.set()
    thread.join(30)
    assert not thread.is_alive()
    assert any("warming the console's queries failed" in r.getMessage() for r in caplog.records)


def test_the_warm_up_asks_what_the_console_asks():
    requests = list(console_warmup.console_requests(datetime(2026, 3, 15, 12, tzinfo=UTC), "Europe/Berlin"))
    ranges = {params.get("since") for _, params in requests}
    assert {"today", "month", "2026-02-14", "2026-03-09", None} <= ranges  # the presets (app.js daysBack)
    pages = {(endpoint, params.get("group_by")) for endpoint, params in requests}
    for group_by in ("service,provider,model", "feature", "model,provider", "customer", "key"):
        assert ("usage", group_by) in pages
    assert ("labels", None) in pages and ("series", None) in pages and ("calls", None) in pages
