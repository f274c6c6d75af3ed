"""``aispend reprice``: recompute stored costs from the stored usage with the prices now known.

Each call in the range is priced again with the prices in force at its own time (the price data in
use, the overrides file and their ``effective_from`` dates, discounts), with the free-tier units it
used then (``free_units``). A call priced at the provider's own figure keeps it; only its price-book
figure is recomputed. A call no price matches now keeps what it has (a price update that drops a
model does not zero its history); one that reported no usage has nothing to price; image calls are
left alone (their size and quality are not stored).

The call rows and the daily totals change in one transaction, on top of the ledger's primitives
(``_read``, ``transaction``). New figures are staged in a temporary table (with each call's daily
key, which never changes), the calls are locked by an UPDATE in id order (PostgreSQL row locks, so
two reprices cannot interleave), the daily totals are moved by the difference between the staged
and the current figures (computed in SQL inside the transaction, so a reprice that ran meanwhile is
not counted twice, and replicas' additions commute), and then the calls take the staged figures.

The Prometheus counters are not changed: a counter only goes up, so the correction shows in the
ledger-based reports (``aispend usage``, /v1/usage, the console) and not in
``aispend_cost_usd_total``. The daily rows keep the corrections apart too (``repriced_nusd``,
``repriced_unpriced``), so counters restored at a restart continue from what they counted instead
of jumping (a drop would read as a reset).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aispend.exporter.costing import source_name
from aispend.exporter.ledger import DAILY_KEY, TOKEN_COLUMNS, Ledger, from_nano, to_nano
from aispend.pricing import FreeTier, PriceEngine

PAGE = 5_000
_READ = (
    "id",
    "ts_ns",
    "provider",
    "model",
    "response_model",
    *TOKEN_COLUMNS,
    "requests",
    "images",
    "free_units",
    "kind",
)
_FIGURES = ("cost_nusd", "book_cost_nusd", "priced", "cost_source")
STAGING = "reprice_staging"


@dataclass(slots=True)
class _Usage:
    """What pricing reads of a stored call (``aispend.pricing.records.Usage``)."""

    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    requests: int
    images: int
    image_size: str | None = None
    image_quality: str | None = None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class ModelChange:
    provider: str
    model: str
    calls: int = 0
    changed: int = 0
    before_nusd: int = 0
    after_nusd: int = 0
    newly_priced: int = 0

    def row(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "calls": self.calls,
            "repriced": self.changed,
            "newly_priced": self.newly_priced,
            "before_usd": _usd(self.before_nusd),
            "after_usd": _usd(self.after_nusd),
            "difference_usd": _usd(self.after_nusd - self.before_nusd),
        }


@dataclass
class Plan:
    """What a reprice changes: per model, and the new figures of each changed call (by id)."""

    models: dict[tuple[str, str], ModelChange] = field(default_factory=dict)
    # id, cost, book cost, priced, source, then the call's DAILY_KEY values
    staged: list[tuple[Any, ...]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def difference_nusd(self) -> int:
        return sum(m.after_nusd - m.before_nusd for m in self.models.values())

    def rows(self) -> list[dict[str, Any]]:
        return [m.row() for _, m in sorted(self.models.items())]


def _usd(nusd: int) -> str:
    return f"{from_nano(nusd):.9f}"


def _skip(plan: Plan, reason: str) -> None:
    plan.skipped[reason] = plan.skipped.get(reason, 0) + 1


def _rows(ledger: Ledger, since_ns: int, until_ns: int | None, equals: dict[str, str]) -> Iterator[tuple[Any, ...]]:
    """The calls in the range, in id order, a page at a time."""
    where = ["id > ?", "ts_ns >= ?"]
    params: list[Any] = [since_ns]
    if until_ns is not None:
        where.append("ts_ns < ?")
        params.append(until_ns)
    for column, value in equals.items():
        where.append(f"{column} = ?")
        params.append(value)
    columns = ", ".join((*_READ, *_FIGURES, *DAILY_KEY))
    sql = f"SELECT {columns} FROM calls WHERE {' AND '.join(where)} ORDER BY id LIMIT {PAGE}"
    last = -1
    while True:
        page = ledger._read(sql, [last, *params])
        yield from page
        if len(page) < PAGE:
            return
        last = page[-1][0]


def plan(
    ledger: Ledger,
    engine: PriceEngine,
    since_ns: int,
    until_ns: int | None = None,
    provider: str | None = None,
    model: str | None = None,
) -> Plan:
    """The new figures of every call in [since, until) (optionally one provider / model label)."""
    equals = {k: v for k, v in (("provider", provider), ("model", model)) if v}
    out = Plan()
    n = len(_READ)
    for row in _rows(ledger, since_ns, until_ns, equals):
        call_id, ts_ns, prov, label, response_model = row[:5]
        usage = _Usage(*row[5:12])
        free_units, kind = row[12:14]
        cost, book, priced, source = row[n : n + len(_FIGURES)]
        change = out.models.get((prov, label))
        if change is None:
            change = out.models[(prov, label)] = ModelChange(prov, label)
        change.calls += 1
        change.before_nusd += cost
        if source == "no_usage" or (not source and not priced and kind in ("llm", "embedding") and not usage.tokens):
            _skip(out, "no usage reported (nothing to price)")
            new = None
        elif source == "none":  # nothing billable
            new = None
        else:
            new = _reprice(engine, prov, label, response_model, usage, free_units, ts_ns, cost, priced, source, out)
        if new is None or new[:3] == (cost, book, priced):  # the same figures: the row stays as it is
            change.after_nusd += cost
            continue
        change.changed += 1
        change.after_nusd += new[0]
        change.newly_priced += int(new[2] and not priced)
        out.staged.append((call_id, *new, *row[n + len(_FIGURES) :]))
    return out


def _reprice(
    engine: PriceEngine,
    provider: str,
    label: str,
    response_model: str,
    usage: _Usage,
    free_units: int,
    ts_ns: int,
    cost: int,
    priced: int,
    source: str,
    plan: Plan,
) -> tuple[int, int, int, str] | None:
    """(cost, book cost, priced, source) as the prices now say, or None to leave the call as it is."""
    if usage.images:
        _skip(plan, "image calls (size and quality are not stored)")
        return None
    when = datetime.fromtimestamp(ts_ns // 1_000 / 1e6, UTC)

    def used(tier: FreeTier) -> int:  # the same free units the call had then
        return max(tier.units - free_units, 0)

    result = engine.price_usage(provider, response_model or label, usage, when, used)
    if not result.matched and label and label != response_model:
        result = engine.price_usage(provider, label, usage, when, used)
    if not result.matched:
        if priced and source not in ("provider",):
            _skip(plan, "no price in the price data now (kept as recorded)")
            return None
        return (cost, 0, priced, source) if source == "provider" else None
    new_book = to_nano(result.cost)
    if source == "provider":  # the provider's figure stays what the call cost
        return cost, new_book, priced, source
    return new_book, new_book, 1, source_name(engine, result.source)


def apply(ledger: Ledger, changes: Plan) -> int:
    """Write the plan in one transaction: the calls and the daily totals. Returns calls changed."""
    if not changes.staged:
        return 0
    staged = sorted(changes.staged)  # a stable order: locks are taken by id
    key = ", ".join(DAILY_KEY)
    columns = ("call_id", *_FIGURES, *DAILY_KEY)
    integer = ledger.dialect.integer
    kinds = {"call_id": f"{integer} PRIMARY KEY", "cost_nusd": integer, "book_cost_nusd": integer, "priced": integer}
    # a temporary table: this connection's own, so concurrent reprices cannot see each other's rows
    create = (
        f"CREATE TEMP TABLE IF NOT EXISTS {STAGING} ("
        + ", ".join(f"{c} {kinds.get(c, 'TEXT')} NOT NULL" for c in columns)
        + ")"
    )
    index = f"CREATE INDEX IF NOT EXISTS {STAGING}_daily ON {STAGING} ({key})"
    by_key = " AND ".join(f"s.{k} = daily.{k}" for k in DAILY_KEY)
    joined = f"FROM {STAGING} s JOIN calls c ON c.id = s.call_id WHERE {by_key}"
    cost = f"(SELECT CAST(COALESCE(SUM(s.cost_nusd - c.cost_nusd), 0) AS BIGINT) {joined})"
    unpriced = f"(SELECT CAST(COALESCE(SUM(c.priced - s.priced), 0) AS BIGINT) {joined})"
    days = sorted({row[len(_FIGURES) + 1 + DAILY_KEY.index("day")] for row in staged})
    # the corrections are also kept apart (repriced_*), so counters restored at start stay as counted
    daily = (
        f"UPDATE daily SET cost_nusd = cost_nusd + {cost}, repriced_nusd = repriced_nusd + {cost}, "
        f"unpriced = unpriced + {unpriced}, repriced_unpriced = repriced_unpriced + {unpriced} "
        f"WHERE day >= ? AND day <= ? AND EXISTS (SELECT 1 FROM {STAGING} s WHERE {by_key})"
    )
    calls = "UPDATE calls SET " + ", ".join(
        f"{column} = (SELECT s.{column} FROM {STAGING} s WHERE s.call_id = calls.id)" for column in _FIGURES
    )
    calls += f" WHERE id IN (SELECT call_id FROM {STAGING})"
    insert = f"INSERT INTO {STAGING} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    with ledger.transaction() as tx:
        tx.run(create)
        tx.run(index)
        tx.run(f"DELETE FROM {STAGING}")
        tx.many(insert, staged)
        tx.many("UPDATE calls SET cost_nusd = cost_nusd WHERE id = ?", [(s[0],) for s in staged])  # row locks
        tx.run(daily, (days[0], days[-1]))
        tx.run(calls)
        tx.run(f"DELETE FROM {STAGING}")
    return len(staged)


def total(plan: Plan) -> Decimal:
    return from_nano(plan.difference_nusd)
