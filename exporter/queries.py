"""The read-side query layer: one set of parameters, filters and ledger reads for ``aispend usage``,
GET /v1/usage, /v1/calls, /v1/series, /v1/labels and the console that is built on them.

Parameters arrive as plain strings (CLI flags and query strings map 1:1) and are validated here:
an unknown, repeated, over-long or out-of-range parameter is a ``QueryError`` naming it, which the
HTTP API answers with 400. Sums over long ranges come from the ledger's ``daily`` totals: a range
is split into whole UTC days (read from ``daily``) and the partial days at its edges (read from
``calls``), so a month costs a few thousand aggregate rows instead of a scan of every call.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aispend.exporter.budgets import period_bounds
from aispend.exporter.ledger import (
    _LOG_COLUMNS,
    FILTER_COLUMNS,
    TOKEN_COLUMNS,
    Filters,
    Ledger,
    from_nano,
    utc_day,
)

MAX_LIMIT = 10_000  # rows any one request may ask for
DEFAULT_CALLS_LIMIT = 100
DEFAULT_GROUPS_LIMIT = 1_000
MAX_VALUE_LENGTH = 1_024  # longer than any stored label (label_max_length) can be
MAX_HOURLY_BUCKETS = 24 * 31
GROUP_COLUMNS = (*FILTER_COLUMNS, "day")
SORTS = ("cost", "calls", "name", "tokens")
BUCKETS = ("auto", "hour", "day")
_DAY_NS = 86_400 * 1_000_000_000
_HOUR_NS = 3_600 * 1_000_000_000
# the range a time may take: the ledger stores signed 64-bit nanoseconds since 1970
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2262, 1, 1, tzinfo=UTC)
_RELATIVE = re.compile(r"^(\d{1,9})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_CURSOR = re.compile(r"^(\d{1,19})\.(\d{1,19})$")
_SUMS = ("calls", *TOKEN_COLUMNS, "requests", "cost_nusd", "unpriced")
SIX_PLACES = Decimal("0.000001")

FILTER_PARAMS = frozenset({"since", "until", *FILTER_COLUMNS})
USAGE_PARAMS = FILTER_PARAMS | {"group_by", "limit", "sort", "compare", "totals"}
CALLS_PARAMS = FILTER_PARAMS | {"limit", "before"}
SERIES_PARAMS = FILTER_PARAMS | {"bucket"}
LABELS_PARAMS = frozenset({"limit"})
NO_PARAMS: frozenset[str] = frozenset()


class QueryError(ValueError):
    """A parameter that cannot be used; the message names it."""


# -- parameters ------------------------------------------------------------------------------------
def check_params(params: Mapping[str, str | list[str]], allowed: Iterable[str]) -> dict[str, str]:
    """The parameters as single strings; unknown, repeated or over-long ones are a QueryError."""
    allowed = frozenset(allowed)
    out: dict[str, str] = {}
    for name, value in params.items():
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise QueryError(f"unknown parameter {name!r} (this endpoint takes: {known})")
        if isinstance(value, list):
            if len(value) != 1:
                raise QueryError(f"{name}: given {len(value)} times; give it once")
            value = value[0]
        if len(value) > MAX_VALUE_LENGTH:
            raise QueryError(f"{name}: longer than {MAX_VALUE_LENGTH} characters")
        if "\x00" in value:
            raise QueryError(f"{name}: contains a NUL character")
        out[name] = value
    return out


def parse_limit(params: Mapping[str, str], default: int, name: str = "limit") -> int:
    text = params.get(name)
    if text is None or text == "":
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 6 or not 1 <= int(text) <= MAX_LIMIT:
        raise QueryError(f"{name}: a whole number from 1 to {MAX_LIMIT}, got {text!r}")
    return int(text)


def zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise QueryError(f"timezone: unknown timezone {tz!r} (e.g. UTC, Europe/Berlin)") from None


def parse_when(text: str, now: datetime, tz: ZoneInfo, name: str = "since") -> datetime:
    """``24h`` / ``7d`` (ago), ``today``, ``month`` (start of), or an ISO date / date-time (in tz)."""
    text = text.strip()
    match = _RELATIVE.match(text)
    try:
        if match:
            when = now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        elif text in ("today", "day"):
            when = period_bounds("day", now, tz)[0]
        elif text == "month":
            when = period_bounds("month", now, tz)[0]
        else:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                raise QueryError(f"{name}: not a time: {text!r} (use 24h, 7d, today, month or an ISO date)") from None
            when = parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)
        if not _EARLIEST <= when < _LATEST:
            raise OverflowError
    except OverflowError:
        raise QueryError(f"{name}: {text!r} is outside 1970-01-01 .. 2261-12-31") from None
    return when


def _ns(dt: datetime) -> int:
    return (dt - _EARLIEST) // timedelta(microseconds=1) * 1_000


@dataclass(frozen=True, slots=True)
class Range:
    """A query's time range and label filters, plus the clock and zone it was read in."""

    filters: Filters
    now: datetime
    tz: ZoneInfo


def build_range(params: Mapping[str, str], now: datetime, tz: ZoneInfo) -> Range:
    equals = {c: params[c] for c in FILTER_COLUMNS if params.get(c) not in (None, "")}
    since = parse_when(params["since"], now, tz, "since") if params.get("since") else None
    until = parse_when(params["until"], now, tz, "until") if params.get("until") else None
    if since is not None and until is not None and since >= until:
        raise QueryError(f"until: {params['until']!r} is not after since {params['since']!r}")
    filters = Filters(
        since_ns=_ns(since) if since else None, until_ns=_ns(until) if until else None, equals=equals or None
    )
    return Range(filters, now, tz)


def build_filters(params: Mapping[str, str], now: datetime, tz: ZoneInfo) -> Filters:
    return build_range(params, now, tz).filters


def group_columns(text: str | None) -> list[str]:
    columns = [c.strip() for c in (text or "").split(",") if c.strip()]
    for column in columns:
        if column not in GROUP_COLUMNS:
            raise QueryError(f"group_by: cannot group by {column!r} (choose from {', '.join(GROUP_COLUMNS)})")
    if len(set(columns)) != len(columns):
        raise QueryError("group_by: a column is named twice")
    return columns


# -- money -----------------------------------------------------------------------------------------
def usd(nano: int | None) -> str:
    """Exact dollars from nano-dollars, as the seeds print them (``0.009``, ``0``)."""
    return format(from_nano(nano).normalize(), "f")


def usd6(value: Decimal) -> str:
    return str(value.quantize(SIX_PLACES, ROUND_HALF_EVEN))


# -- sums over a range: whole days from `daily`, the edges from `calls` ------------------------------
def _floor_day(ns: int) -> int:
    return ns - ns % _DAY_NS


def _ceil_day(ns: int) -> int:
    return ns if ns % _DAY_NS == 0 else _floor_day(ns) + _DAY_NS


def _pieces(filters: Filters) -> list[tuple[Filters, bool]]:
    """(filters, from_daily) pieces that together cover the range exactly once."""
    since, until = filters.since_ns, filters.until_ns
    start = _ceil_day(since) if since is not None else None
    end = _floor_day(until) if until is not None else None
    if start is not None and end is not None and start >= end:
        return [(filters, False)]  # under a day: the calls themselves
    pieces = [(replace(filters, since_ns=start, until_ns=end), True)]
    if since is not None and since != start:
        pieces.append((replace(filters, until_ns=start), False))
    if until is not None and until != end:
        pieces.append((replace(filters, since_ns=end), False))
    return pieces


class ClosedDays:
    """Sums of whole UTC days that are over (before yesterday), kept per query shape, so a page
    over a long range reads the ledger's daily totals once and then only its live days.

    A closed day's totals change only when a call with an old timestamp arrives (a late retry, a
    backfill): every calls row the ledger writes gets a larger ``id``, so each use first looks at
    the calls written since the last look (``id > seen``, a primary-key range) and forgets the
    cached ranges that reach the oldest day among them."""

    MAX_ENTRIES = 256
    MAX_GROUPS = 50_000  # results with more groups than this are not kept

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[Any, ...], dict[tuple[Any, ...], tuple[int, ...]]] = OrderedDict()
        self._seen: int | None = None
        self._lock = threading.Lock()
        self._running: dict[tuple[Any, ...], threading.Event] = {}  # shapes being read now

    def _invalidate(self, ledger: Ledger) -> None:
        if self._seen is None:
            self._seen = int(ledger._read("SELECT COALESCE(MAX(id), 0) FROM calls")[0][0])
            return
        oldest, newest = ledger._read("SELECT MIN(day), MAX(id) FROM calls WHERE id > ?", (self._seen,))[0]
        if newest is None:
            return
        self._seen = int(newest)
        for key in [k for k in self._entries if k[1] > oldest]:  # k[1]: the range's end day
            del self._entries[key]

    def sums(
        self, ledger: Ledger, filters: Filters, group_by: Sequence[str], until_ns: int
    ) -> dict[tuple[Any, ...], tuple[int, ...]]:
        """The daily totals' sums over whole days from ``filters.since_ns`` to ``until_ns``."""
        since = utc_day(filters.since_ns) if filters.since_ns is not None else ""
        key = (since, utc_day(until_ns), tuple(group_by), tuple(sorted((filters.equals or {}).items())))
        while True:
            with self._lock:
                self._invalidate(ledger)
                found = self._entries.get(key)
                if found is not None:
                    self._entries.move_to_end(key)
                    return found
                running = self._running.get(key)
                if running is None:  # this thread reads it; others asking meanwhile wait for it
                    running = self._running[key] = threading.Event()
                    break
            running.wait()  # (the start-up warm-up reading the same shape: read once, not twice)
        try:
            piece = replace(filters, until_ns=until_ns)
            found = {
                tuple(row[c] for c in group_by): tuple(int(row[c] or 0) for c in _SUMS)
                for row in ledger.summary(piece, group_by, from_daily=True)
            }
            with self._lock:
                if len(found) <= self.MAX_GROUPS:
                    self._entries[key] = found
                    while len(self._entries) > self.MAX_ENTRIES:
                        self._entries.popitem(last=False)
        finally:
            with self._lock:
                del self._running[key]
            running.set()
        return found


_closed: weakref.WeakKeyDictionary[Ledger, ClosedDays] = weakref.WeakKeyDictionary()
_closed_lock = threading.Lock()


def closed_days(ledger: Ledger) -> ClosedDays:
    with _closed_lock:
        found = _closed.get(ledger)
        if found is None:
            found = _closed[ledger] = ClosedDays()
        return found


def _add(out: dict[tuple[Any, ...], dict[str, int]], key: tuple[Any, ...], values: Iterable[int]) -> None:
    slot = out.get(key)
    if slot is None:
        out[key] = dict(zip(_SUMS, values, strict=True))
    else:
        for c, v in zip(_SUMS, values, strict=True):
            slot[c] += v


def sums(
    ledger: Ledger, filters: Filters, group_by: Sequence[str], now_ns: int | None = None
) -> dict[tuple[Any, ...], dict[str, int]]:
    """{group values: summed columns} for the range, exact in nano-dollars."""
    out: dict[tuple[Any, ...], dict[str, int]] = {}
    closed_end = _floor_day(now_ns if now_ns is not None else time.time_ns()) - _DAY_NS  # yesterday 00:00 UTC
    for piece, from_daily in _pieces(filters):
        if from_daily and (piece.since_ns is None or piece.since_ns < closed_end):
            end = closed_end if piece.until_ns is None else min(piece.until_ns, closed_end)
            for key, values in closed_days(ledger).sums(ledger, piece, group_by, end).items():
                _add(out, key, values)
            if piece.until_ns is not None and piece.until_ns <= closed_end:
                continue
            piece = replace(piece, since_ns=closed_end)
        for row in ledger.summary(piece, group_by, from_daily=from_daily):
            _add(out, tuple(row[c] for c in group_by), (int(row[c] or 0) for c in _SUMS))
    return out


def _row(group_by: Sequence[str], key: tuple[Any, ...], s: Mapping[str, int]) -> dict[str, Any]:
    row: dict[str, Any] = dict(zip(group_by, key, strict=True))
    row.update({c: s[c] for c in _SUMS if c != "cost_nusd"})
    row["total_tokens"] = s["input_tokens"] + s["output_tokens"]
    row["cost_usd"] = usd(s["cost_nusd"])
    row["avg_cost_usd"] = usd6(from_nano(s["cost_nusd"]) / s["calls"]) if s["calls"] else "0"
    return row


def empty_total() -> dict[str, Any]:
    return _row((), (), dict.fromkeys(_SUMS, 0))


def total(ledger: Ledger, filters: Filters) -> dict[str, Any]:
    found = sums(ledger, filters, ())
    return _row((), (), found[()]) if found else empty_total()


def _sort_key(sort: str, group_by: Sequence[str]) -> Any:
    if sort == "calls":
        return lambda item: (-item[1]["calls"], item[0])
    if sort == "tokens":
        return lambda item: (-(item[1]["input_tokens"] + item[1]["output_tokens"]), item[0])
    if sort == "name":
        return lambda item: tuple(str(v) for v in item[0])
    return lambda item: (-item[1]["cost_nusd"], tuple(str(v) for v in item[0]))


def _previous(filters: Filters, now: datetime) -> Filters | None:
    """The range of the same length just before this one (for trends); None if it is open."""
    if filters.since_ns is None:
        return None
    until = filters.until_ns if filters.until_ns is not None else _ns(now)
    length = until - filters.since_ns
    if length <= 0 or filters.since_ns - length < 0:
        return None
    return replace(filters, since_ns=filters.since_ns - length, until_ns=filters.since_ns)


def grouped(
    ledger: Ledger,
    rng: Range,
    group_by: Sequence[str],
    sort: str = "cost",
    limit: int = DEFAULT_GROUPS_LIMIT,
    compare: bool = False,
) -> tuple[list[dict[str, Any]], int, dict[str, Any]]:
    """The groups' rows (sorted, at most ``limit``), how many groups there are in all, and the
    total over every group (the selection's total, without a second pass over the ledger)."""
    found = sums(ledger, rng.filters, group_by)
    everything = dict.fromkeys(_SUMS, 0)
    for s in found.values():
        for c in _SUMS:
            everything[c] += s[c]
    items = sorted(found.items(), key=_sort_key(sort, group_by))
    rows = [_row(group_by, key, s) for key, s in items[:limit]]
    if compare:
        previous_range = _previous(rng.filters, rng.now)
        before = sums(ledger, previous_range, group_by) if previous_range else {}
        for row, (key, _) in zip(rows, items, strict=False):
            prev = before.get(key)
            row["previous_cost_usd"] = usd(prev["cost_nusd"]) if prev else "0"
            row["previous_calls"] = prev["calls"] if prev else 0
    return rows, len(items), _row((), (), everything)


# -- reports ---------------------------------------------------------------------------------------
def period_totals(ledger: Ledger, params: Mapping[str, str], now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """Spend and calls today, this calendar month (in tz) and all time, under the label filters."""
    equals = {c: params[c] for c in FILTER_COLUMNS if params.get(c) not in (None, "")} or None
    out = {}
    for name, period in (("today", "day"), ("this_month", "month")):
        start = period_bounds(period, now, tz)[0]
        out[name] = total(ledger, Filters(since_ns=_ns(start), equals=equals))
    out["all_time"] = total(ledger, Filters(equals=equals))
    return out


def usage(ledger: Ledger, raw: Mapping[str, Any], tz: str = "UTC", now: datetime | None = None) -> dict[str, Any]:
    """GET /v1/usage and ``aispend usage``: grouped sums, the selection's total and period totals."""
    params = check_params(raw, USAGE_PARAMS)
    zone_ = zone(tz)
    now = now or datetime.now(UTC)
    rng = build_range(params, now, zone_)
    group_by = group_columns(params.get("group_by"))
    limit = parse_limit(params, DEFAULT_GROUPS_LIMIT)
    sort = params.get("sort") or "cost"
    if sort not in SORTS:
        raise QueryError(f"sort: one of {', '.join(SORTS)}, got {sort!r}")
    compare, with_totals = _flag(params, "compare", False), _flag(params, "totals", True)
    if group_by:
        rows, count, selected = grouped(ledger, rng, group_by, sort, limit, compare)
    else:
        rows, count, selected = [], 0, total(ledger, rng.filters)
    out = {"group_by": group_by, "rows": rows, "rows_total": count, "selected": selected}
    if with_totals:  # today, this month, all time: the console's overview and the CLI show them
        out["totals"] = period_totals(ledger, params, now, zone_)
    return {**out, "range": _range_json(rng), "timezone": tz}


def _flag(params: Mapping[str, str], name: str, default: bool) -> bool:
    text = params.get(name)
    if text is None or text == "":
        return default
    if text not in ("0", "1", "false", "true"):
        raise QueryError(f"{name}: 1 or 0, got {text!r}")
    return text in ("1", "true")


def _range_json(rng: Range) -> dict[str, Any]:
    def iso(ns: int | None) -> str | None:
        return None if ns is None else datetime.fromtimestamp(ns / 1e9, rng.tz).isoformat(timespec="seconds")

    return {"since": iso(rng.filters.since_ns), "until": iso(rng.filters.until_ns)}


_CALL_SELECT = ("id", *_LOG_COLUMNS)


def calls(ledger: Ledger, raw: Mapping[str, Any], tz: str = "UTC", now: datetime | None = None) -> list[dict[str, Any]]:
    """GET /v1/calls and ``aispend usage --calls``: the newest calls first, ``limit`` at a time; each
    row's ``cursor`` passed as ``before`` gives the calls after it (for "load more")."""
    params = check_params(raw, CALLS_PARAMS)
    zone_ = zone(tz)
    rng = build_range(params, now or datetime.now(UTC), zone_)
    limit = parse_limit(params, DEFAULT_CALLS_LIMIT)
    where, values = rng.filters.where()
    if (rng.filters.equals or {}).get("status", "ok") != "ok":
        where += " AND status <> 'ok'"  # the very term of the calls_failed_ts index, so it is used
    before = params.get("before")
    if before:
        match = _CURSOR.match(before)
        if not match or int(match.group(1)) >= 2**63 or int(match.group(2)) >= 2**63:
            raise QueryError(f"before: not a cursor from a previous page: {before!r}")
        clause = "(ts_ns < ? OR (ts_ns = ? AND id < ?))"
        where = f"{where} AND {clause}" if where else f" WHERE {clause}"
        ts, ident = int(match.group(1)), int(match.group(2))
        values += [ts, ts, ident]
    rows = ledger._read(
        f"SELECT {', '.join(_CALL_SELECT)} FROM calls{where} ORDER BY ts_ns DESC, id DESC LIMIT ?", [*values, limit]
    )
    out = []
    for values_ in rows:
        row = dict(zip(_CALL_SELECT, values_, strict=True))
        ident = row.pop("id")
        ts_ns = row.pop("ts_ns")
        row["cost_usd"] = usd(row.pop("cost_nusd"))
        row["time"] = datetime.fromtimestamp(ts_ns / 1e9, zone_).isoformat(timespec="milliseconds")
        row["priced"] = bool(row["priced"])
        row["estimated"] = bool(row["estimated"])
        row["total_tokens"] = row["input_tokens"] + row["output_tokens"]
        row["cursor"] = f"{ts_ns}.{ident}"
        out.append(row)
    return out


def series(ledger: Ledger, raw: Mapping[str, Any], tz: str = "UTC", now: datetime | None = None) -> dict[str, Any]:
    """GET /v1/series: sums per hour (from the calls, at most 31 days) or per UTC day (from the daily
    totals), every bucket in the range present (empty ones as zeros) so charts show gaps."""
    params = check_params(raw, SERIES_PARAMS)
    zone_ = zone(tz)
    now = now or datetime.now(UTC)
    rng = build_range(params, now, zone_)
    bucket = params.get("bucket") or "auto"
    if bucket not in BUCKETS:
        raise QueryError(f"bucket: one of {', '.join(BUCKETS)}, got {bucket!r}")
    f = rng.filters
    start_ns = f.since_ns
    end_ns = f.until_ns if f.until_ns is not None else _ns(now)
    if start_ns is None:
        first = ledger._read("SELECT MIN(day) FROM daily")[0][0]
        start_ns = _ns(datetime.fromisoformat(first).replace(tzinfo=UTC)) if first else _floor_day(end_ns)
    if bucket == "auto":
        bucket = "hour" if end_ns - start_ns <= 3 * _DAY_NS else "day"
    if bucket == "hour":
        if (end_ns - start_ns) // _HOUR_NS > MAX_HOURLY_BUCKETS:
            raise QueryError(f"bucket: hour covers at most {MAX_HOURLY_BUCKETS // 24} days; use bucket=day")
        found = _hourly(ledger, replace(f, since_ns=start_ns))
        step, first_bucket = _HOUR_NS, start_ns - start_ns % _HOUR_NS
    else:
        found = {
            _ns(datetime.fromisoformat(day).replace(tzinfo=UTC)): s
            for (day,), s in sums(ledger, replace(f, since_ns=start_ns), ["day"]).items()
        }
        step, first_bucket = _DAY_NS, _floor_day(start_ns)
    points = []
    zero = dict.fromkeys(_SUMS, 0)
    for at in range(first_bucket, end_ns, step):
        s = found.get(at, zero)
        point = _row((), (), s)
        point["start"] = datetime.fromtimestamp(at / 1e9, zone_ if bucket == "hour" else UTC).isoformat(
            timespec="minutes"
        )
        points.append(point)
    return {"bucket": bucket, "timezone": tz if bucket == "hour" else "UTC", "points": points, **_range_json(rng)}


def _hourly(ledger: Ledger, filters: Filters) -> dict[int, dict[str, int]]:
    where, values = filters.where()
    sums_sql = ", ".join(f"CAST(SUM({c}) AS BIGINT)" for c in (*TOKEN_COLUMNS, "requests", "cost_nusd"))
    sql = (
        f"SELECT ts_ns / {_HOUR_NS} AS hour, COUNT(*), {sums_sql}, CAST(SUM(1 - priced) AS BIGINT) "
        f"FROM calls{where} GROUP BY ts_ns / {_HOUR_NS}"
    )
    out = {}
    for hour, *rest in ledger._read(sql, values):
        out[int(hour) * _HOUR_NS] = dict(zip(_SUMS, (int(v or 0) for v in rest), strict=True))
    return out


_FEW_VALUES = tuple(c for c in FILTER_COLUMNS if c not in ("customer", "key"))


def label_sums(ledger: Ledger) -> dict[tuple[Any, ...], dict[str, int]]:
    """The label combinations of the filters with few values (closed days from the ClosedDays
    cache, the rest live); the console's warm-up reads it without filling the labels cache."""
    return sums(ledger, Filters(), _FEW_VALUES)


_labels_cache: weakref.WeakKeyDictionary[Ledger, tuple[float, int, dict[str, list[str]]]] = weakref.WeakKeyDictionary()
LABELS_TTL_S = 30.0


def labels(ledger: Ledger, raw: Mapping[str, Any]) -> dict[str, list[str]]:
    """GET /v1/labels: the values each filter can take, in name order, from the daily totals (all
    time). For the console's drop-downs, so kept for LABELS_TTL_S seconds: a new value shows up
    within half a minute."""
    params = check_params(raw, LABELS_PARAMS)
    limit = parse_limit(params, 500)
    cached = _labels_cache.get(ledger)
    if cached is not None and cached[0] > time.monotonic() and cached[1] == limit:
        return cached[2]
    combos = label_sums(ledger)
    out = {c: sorted({key[i] for key in combos})[:limit] for i, c in enumerate(_FEW_VALUES)}
    for column in ("customer", "key"):  # many values: the daily_customer / daily_key indexes, in order
        rows = ledger._read(f"SELECT DISTINCT {column} FROM daily ORDER BY {column} LIMIT ?", (limit,))
        out[column] = [r[0] for r in rows]
    out = {c: out[c] for c in FILTER_COLUMNS}
    _labels_cache[ledger] = (time.monotonic() + LABELS_TTL_S, limit, out)
    return out


# -- budgets ---------------------------------------------------------------------------------------
# (enforce mode, spent) -> what enforcement does now, in the console's words
_ENFORCEMENT = {
    ("true", False): "armed: blocks at 100%",
    ("true", True): "blocking calls",
    ("warn", False): "armed: warns at 100%",
    ("warn", True): "warning (calls go through)",
    ("false", False): "alert only",
    ("false", True): "alert only",
}


def budgets(states: list[dict[str, Any]], now: datetime | None = None) -> list[dict[str, Any]]:
    """The budgets' JSON with what the console shows: a straight-line forecast of the spend at the
    period's end, the thresholds crossed, and what enforcement is doing now."""
    now = now or datetime.now(UTC)
    out = []
    for b in states:
        b = dict(b)
        start = datetime.fromisoformat(b["period_start"])
        end = datetime.fromisoformat(b["resets_at"])
        elapsed = max((now - start).total_seconds(), 0.0)
        length = max((end - start).total_seconds(), 1.0)
        spend = Decimal(str(b["spend_usd"]))
        limit = Decimal(str(b["limit_usd"]))
        forecast = spend * Decimal(length) / Decimal(max(elapsed, 60.0)) if elapsed > 0 else spend
        pct = float(spend / limit * 100) if limit else 0.0
        b["spend_pct"] = round(pct, 2)
        b["forecast_usd"] = usd6(forecast)
        b["forecast_pct"] = round(float(forecast / limit * 100), 2) if limit else 0.0
        b["thresholds_crossed"] = [t for t in b["thresholds"] if pct >= t]
        b["period_elapsed_pct"] = round(min(elapsed / length, 1.0) * 100, 2)
        b["enforcement"] = _ENFORCEMENT[(b["enforce"], bool(b["exhausted"]))]
        out.append(b)
    return out
