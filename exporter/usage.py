"""Usage reports for ``aispend usage``: the reports of the query layer (exporter/queries.py, which
GET /v1/usage, /v1/calls and the console use too) and their table, CSV and JSON output."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from aispend.exporter import queries
from aispend.exporter.ledger import Ledger
from aispend.exporter.queries import QueryError

UsageQueryError = QueryError  # the name the CLI and callers know


def usage_report(
    ledger: Ledger, params: Mapping[str, str], now: datetime | None = None, tz: str = "UTC"
) -> dict[str, Any]:
    return queries.usage(ledger, params, tz=tz, now=now)


def calls_report(
    ledger: Ledger, params: Mapping[str, str], now: datetime | None = None, tz: str = "UTC"
) -> list[dict[str, Any]]:
    return queries.calls(ledger, params, tz=tz, now=now)


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
