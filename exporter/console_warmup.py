"""Warm the query layer for the console's default pages, so their first load after a start is fast.

The first load of a page shape reads the daily totals of its closed days (``queries.ClosedDays``),
which at a million calls takes a second or more; later loads read only the live days. ``aispend
serve`` runs ``warm`` in a background thread once its receivers are open, and again after each
UTC midnight (when "closed" moves on a day and the cached shapes are read anew). It asks exactly
what exporter/console/app.js asks for its pages with their default ranges (this calendar month,
the presets Last 30 days and Last 7 days): the same functions the HTTP API calls, so the same
cache keys. A failure is logged and never stops the service.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from aispend.exporter import queries
from aispend.exporter.ledger import Ledger

logger = logging.getLogger("aispend.exporter")

Request = tuple[str, dict[str, str]]  # (endpoint, query parameters)


def days_back(n: int, now: datetime, tz: str) -> str:
    """The console's "Last n days": today (in tz) and the n - 1 days before, as an ISO date."""
    today = now.astimezone(queries.zone(tz)).date()
    return (today - timedelta(days=n - 1)).isoformat()


def page_requests(r: dict[str, str]) -> list[Request]:
    """What the console's list pages ask for a range ``r`` (app.js: overview, calls, models,
    features, customers, keys; detail pages depend on the name clicked and are left out)."""
    return [
        ("usage", {**r, "group_by": "service,provider,model", "limit": "50"}),
        ("usage", {**r, "group_by": "feature", "limit": "50", "totals": "0"}),
        ("series", dict(r)),
        ("calls", {**r, "limit": "20"}),
        ("usage", {**r, "totals": "0"}),
        ("calls", {**r, "limit": "50"}),
        ("usage", {**r, "group_by": "model,provider", "sort": "cost", "limit": "500", "totals": "0"}),
        ("usage", {**r, "group_by": "feature", "sort": "cost", "limit": "1000", "compare": "1", "totals": "0"}),
        ("usage", {**r, "group_by": "customer", "sort": "cost", "limit": "1000", "compare": "1", "totals": "0"}),
        ("usage", {**r, "group_by": "key", "sort": "cost", "limit": "1000", "totals": "0"}),
    ]


def console_requests(now: datetime, tz: str) -> Iterator[Request]:
    """The console's first request, then its pages for the default range (this month), then for
    the other presets: Last 30 days, Last 7 days, All time, Today."""
    yield "usage", {"since": "today", "totals": "0"}
    yield "labels", {"limit": "200"}
    presets: list[dict[str, str]] = [
        {"since": "month"},
        {"since": days_back(30, now, tz)},
        {"since": days_back(7, now, tz)},
        {},  # all time
        {"since": "today"},
    ]
    for r in presets:
        yield from page_requests(r)


def warm(ledger: Ledger, tz: str, budgets: Callable[[], Any] | None = None, stop: threading.Event | None = None) -> int:
    """Run the console's default requests once; how many ran. Stops early when ``stop`` is set."""
    endpoints: dict[str, Callable[..., Any]] = {
        "usage": queries.usage,
        "calls": queries.calls,
        "series": queries.series,
        # not queries.labels: it keeps its answer for 30 s, and a new ledger's values are yet to come
        "labels": lambda ledger, params, tz: queries.label_sums(ledger),
    }
    done = 0
    for endpoint, params in console_requests(datetime.now(UTC), tz):
        if stop is not None and stop.is_set():
            return done
        endpoints[endpoint](ledger, params, tz=tz)
        done += 1
    if budgets is not None:
        queries.budgets(budgets())
        done += 1
    return done


def _seconds_to_next_day(tz: str) -> float:
    """Until just after the next midnight, UTC or in tz (whichever is first): the cached ranges move then."""
    now = datetime.now(UTC)
    nexts = []
    for zone in (UTC, queries.zone(tz)):
        local = now.astimezone(zone)
        midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), zone)
        nexts.append((midnight - local).total_seconds())
    return min(nexts) + 5.0


def keep_warm(
    ledger: Ledger,
    tz: str,
    budgets: Callable[[], Any] | None,
    stop: threading.Event,
    warmed: threading.Event | None = None,
) -> None:
    """The background thread's loop: warm now, then after each midnight, until ``stop``;
    ``warmed`` is set when the first round is over (done or failed)."""
    while not stop.is_set():
        started = time.perf_counter()
        try:
            done = warm(ledger, tz, budgets, stop)
            logger.info("console queries warmed: %d requests in %.1f s", done, time.perf_counter() - started)
        except Exception as exc:  # the ledger is away or a query failed: the pages still work, only slower
            if not stop.is_set():  # (stopping closes the ledger under it)
                logger.warning("warming the console's queries failed: %s", exc)
        if warmed is not None:
            warmed.set()
        stop.wait(_seconds_to_next_day(tz))
