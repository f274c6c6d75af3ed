"""Usage reports from the ledger: one implementation for ``aispend usage``, GET /v1/usage and
GET /v1/calls. Parameters are plain strings so the CLI flags and the query string map 1:1."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aispend.exporter.budgets import period_bounds
from aispend.exporter.ledger import FILTER_COLUMNS, Filters, Ledger, from_nano

_RELATIVE = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class UsageQueryError(ValueError):
    """A filter or option that cannot be used; the message says which."""


def parse_when(text: str, now: datetime, tz: ZoneInfo) -> datetime:
    """``24h`` / ``7d`` (ago), ``today``, ``month`` (start of), or an ISO date / date-time (in tz)."""
    text = text.strip()
    match = _RELATIVE.match(text)
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if text in ("today", "day"):
        return period_bounds("day", now, tz)[0]
    if text == "month":
        return period_bounds("month", now, tz)[0]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise UsageQueryError(f"not a time: {text!r} (use 24h, 7d, today, month or an ISO date)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def _ns(dt: datetime) -> int:
    return int(dt.timestamp() * 1e9)


def build_filters(params: Mapping[str, str], now: datetime, tz: ZoneInfo) -> Filters:
    equals = {c: params[c] for c in FILTER_COLUMNS if params.get(c) not in (None, "")}
    since = parse_when(params["since"], now, tz) if params.get("since") else None
    until = parse_when(params["until"], now, tz) if params.get("until") else None
    return Filters(
        since_ns=_ns(since) if since else None, until_ns=_ns(until) if until else None, equals=equals or None
    )


def _money_row(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    if "cost_nusd" in out:
        out["cost_usd"] = str(from_nano(out.pop("cost_nusd")).normalize())
    if "book_cost_nusd" in out:
        out["book_cost_usd"] = str(from_nano(out.pop("book_cost_nusd")).normalize())
    return out


def group_columns(text: str | None) -> list[str]:
    columns = [c.strip() for c in (text or "").split(",") if c.strip()]
    for column in columns:
        if column not in (*FILTER_COLUMNS, "day"):
            raise UsageQueryError(f"cannot group by {column!r} (choose from {', '.join((*FILTER_COLUMNS, 'day'))})")
    return columns


def totals(ledger: Ledger, params: Mapping[str, str], now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """Spend and calls today, this calendar month (in tz) and all time, under the label filters."""
    equals = {c: params[c] for c in FILTER_COLUMNS if params.get(c) not in (None, "")} or None
    out = {}
    for name, period in (("today", "day"), ("this_month", "month")):
        start = period_bounds(period, now, tz)[0]
        rows = ledger.summary(Filters(since_ns=_ns(start), equals=equals), [])
        out[name] = _money_row(rows[0]) if rows else _empty()
    rows = ledger.summary(Filters(equals=equals), [], from_daily=True)
    out["all_time"] = _money_row(rows[0]) if rows else _empty()
    return out


def _empty() -> dict[str, Any]:
    return {"calls": 0, "cost_usd": "0", "input_tokens": 0, "output_tokens": 0, "requests": 0, "unpriced": 0}


def usage_report(
    ledger: Ledger, params: Mapping[str, str], now: datetime | None = None, tz: str = "UTC"
) -> dict[str, Any]:
    zone = ZoneInfo(tz)
    now = now or datetime.now(UTC)
    filters = build_filters(params, now, zone)
    group_by = group_columns(params.get("group_by"))
    rows = ledger.summary(filters, group_by) if group_by else []
    limit = int(params.get("limit") or 0)
    if limit:
        rows = rows[:limit]
    selected = ledger.summary(filters, [])
    return {
        "group_by": group_by,
        "rows": [_money_row(r) for r in rows],
        "selected": _money_row(selected[0]) if selected else _empty(),
        "totals": totals(ledger, params, now, zone),
        "timezone": tz,
    }


def calls_report(
    ledger: Ledger, params: Mapping[str, str], now: datetime | None = None, tz: str = "UTC"
) -> list[dict[str, Any]]:
    zone = ZoneInfo(tz)
    now = now or datetime.now(UTC)
    rows = ledger.calls(build_filters(params, now, zone), limit=int(params.get("limit") or 100))
    out = []
    for row in rows:
        row = _money_row(row)
        row["time"] = datetime.fromtimestamp(row.pop("ts_ns") / 1e9, zone).isoformat(timespec="milliseconds")
        row["priced"] = bool(row["priced"])
        row["estimated"] = bool(row["estimated"])
        out.append(row)
    return out


# -- output formats ----------------------------------------------------------------------------
def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def to_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return "(no calls)"
    columns = list(columns or rows[0])
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    numeric = [all(_is_number(r.get(c)) for r in rows) for c in columns]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append(
            "  ".join(
                v.rjust(w) if num else v.ljust(w) for v, w, num in zip(row, widths, numeric, strict=True)
            ).rstrip()
        )
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    return str(value)


def _is_number(value: Any) -> bool:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return True
    return isinstance(value, str) and bool(re.fullmatch(r"-?\d+(\.\d+)?", value))


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)
