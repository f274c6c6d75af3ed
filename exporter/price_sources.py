"""The price data a ledger's figures were priced with: one row per price data version it saw.

A call's ``cost_source`` names ``genai-prices@<version>``; this table (``price_data``) says where
that version came from (the bundled copy of genai-prices X.Y.Z, or the URL or file
``aispend prices update`` fetched) and when, so every figure can be traced to a price, its source
and its date. ``serve`` records the data it loads (at start and on SIGHUP), ``reprice`` the data it
prices with.
"""

from __future__ import annotations

import logging
from typing import Any

from aispend.exporter.ledger import Ledger, LedgerError
from aispend.pricing.pricedata import PriceData

logger = logging.getLogger("aispend.exporter")
COLUMNS = ("version", "origin", "source", "date", "sha256", "first_used_ns")


def record(ledger: Ledger, data: PriceData, now_ns: int) -> None:
    """Note ``data`` in the ledger (once per version); a ledger that cannot be written is logged."""
    try:
        ledger._execute(
            f"CREATE TABLE IF NOT EXISTS price_data (version TEXT PRIMARY KEY, origin TEXT NOT NULL, source TEXT "
            f"NOT NULL, date TEXT NOT NULL, sha256 TEXT NOT NULL, first_used_ns {ledger.dialect.integer} NOT NULL)"
        )
        ledger._execute(
            f"INSERT INTO price_data ({', '.join(COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (version) DO NOTHING",
            (data.version, data.origin, data.source, data.date, data.sha256, now_ns),
        )
    except LedgerError as exc:
        logger.warning("could not note the price data in use in the ledger: %s", exc)


def history(ledger: Ledger) -> list[dict[str, Any]]:
    """Every price data version the ledger saw, oldest first ([] before the first)."""
    if "price_data" not in {row[0] for row in ledger._read(ledger._tables_sql())}:
        return []
    rows = ledger._read(f"SELECT {', '.join(COLUMNS)} FROM price_data ORDER BY first_used_ns")
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows]
