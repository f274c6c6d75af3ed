"""The per-call usage ledger: every recorded call, plus daily aggregates that outlive retention.

SQLite (WAL) is the embedded default; PostgreSQL (psycopg 3) is the option for teams that share
one ledger or already run a database. Both take the same SQL, written once here from the column
lists; only connecting, the placeholder style and transaction start differ. Costs are stored as
integer nano-dollars so SQL sums are exact; the in-memory counters keep full Decimal precision. A
batch of calls is one transaction: the exporter acknowledges an OTLP export only after it commits.
A third table keeps the duration histogram's buckets per day, so it survives a restart like the
counters do (keyed by the histogram's own labels, it takes a few rows per batch, not one per call).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aispend.exporter.metrics import BUCKETS
from aispend.exporter.normalise import Call

NANO = Decimal(1_000_000_000)
LABEL_COLUMNS = ("service", "provider", "model", "operation", "feature", "customer", "key")
FILTER_COLUMNS = (*LABEL_COLUMNS, "status")
TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
CALL_COLUMNS = (
    "ts_ns",
    "day",
    "duration_s",
    *LABEL_COLUMNS,
    "response_model",
    "kind",
    "status",
    "error_type",
    *TOKEN_COLUMNS,
    "requests",
    "images",
    "cost_nusd",
    "book_cost_nusd",
    "cost_source",
    "priced",
    "estimated",
    "free_units",
    "trace_id",
    "span_id",
    "parent_span_id",
    "response_id",
)
_TEXT_CALL_COLUMNS = frozenset(
    {"day", *LABEL_COLUMNS, "response_model", "kind", "status", "error_type", "trace_id", "span_id", "cost_source"}
    | {"parent_span_id", "response_id"}
)
# what the per-call log shows (the ledger's bookkeeping columns left out)
_LOG_COLUMNS = tuple(c for c in CALL_COLUMNS if c not in ("day", "kind", "free_units", "parent_span_id", "response_id"))
SUM_COLUMNS = (
    "calls",
    *TOKEN_COLUMNS,
    "requests",
    "images",
    "cost_nusd",
    "unpriced",
    "unpriced_no_usage",  # of unpriced: the span reported no usage (the rest: no price matched)
    "cost_mismatch",  # provider-reported cost over 1 % away from the price book's
    "repriced_nusd",  # what `aispend reprice` added to cost_nusd (counters restore without it)
    "repriced_unpriced",  # what it added to unpriced (negative: calls it could price)
    "duration_s",
)
# Columns added since the first release: (table, column, SQL type and default, backfill or None).
# A ledger made before them gains them at start; book_cost_nusd of older rows is their cost (they
# were all priced from the price book), unpriced_no_usage of older daily rows 0 (not told apart).
ADDED_COLUMNS = (
    ("calls", "book_cost_nusd", "{integer} NOT NULL DEFAULT 0", "UPDATE calls SET book_cost_nusd = cost_nusd"),
    ("calls", "cost_source", "TEXT NOT NULL DEFAULT ''", None),
    ("daily", "unpriced_no_usage", "{integer} NOT NULL DEFAULT 0", None),
    ("daily", "cost_mismatch", "{integer} NOT NULL DEFAULT 0", None),
    ("daily", "repriced_nusd", "{integer} NOT NULL DEFAULT 0", None),
    ("daily", "repriced_unpriced", "{integer} NOT NULL DEFAULT 0", None),
)
DAILY_KEY = ("day", *LABEL_COLUMNS, "status")
# calls per duration bucket: bucket i < len(BUCKETS) is "at most BUCKETS[i]", the last "longer"
DURATION_KEY = ("day", "provider", "model", "operation", "status", "bucket")


def _bucket(seconds: float) -> int:
    for i, bound in enumerate(BUCKETS):
        if seconds <= bound:
            return i
    return len(BUCKETS)


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the backends' SQL."""

    id_column: str
    integer: str
    real: str
    begin: str
    columns_of: str  # a query for the column names of a table (one ? parameter)

    def schema(self) -> list[str]:
        calls = ", ".join(
            f"{c} {'TEXT' if c in _TEXT_CALL_COLUMNS else self.real if c == 'duration_s' else self.integer} NOT NULL"
            for c in CALL_COLUMNS
        )
        daily_sums = ", ".join(f"{c} {self.real if c == 'duration_s' else self.integer} NOT NULL" for c in SUM_COLUMNS)
        duration_key = ", ".join(f"{c} {self.integer if c == 'bucket' else 'TEXT'} NOT NULL" for c in DURATION_KEY)
        return [
            f"CREATE TABLE IF NOT EXISTS calls ({self.id_column}, {calls})",
            # Retried spans are dropped before they get here (pipeline.Deduper, restored from this
            # table at start), so no unique index on (trace_id, span_id): it would double the cost
            # of every insert.
            "CREATE INDEX IF NOT EXISTS calls_ts ON calls (ts_ns)",
            f"CREATE TABLE IF NOT EXISTS daily ({', '.join(f'{c} TEXT NOT NULL' for c in DAILY_KEY)}, {daily_sums}, "
            f"PRIMARY KEY ({', '.join(DAILY_KEY)}))",
            f"CREATE TABLE IF NOT EXISTS durations ({duration_key}, calls {self.integer} NOT NULL, "
            f"PRIMARY KEY ({', '.join(DURATION_KEY)}))",
            "CREATE TABLE IF NOT EXISTS budget_overrides (budget TEXT PRIMARY KEY, amount_usd TEXT, reset_at_ns "
            f"{self.integer})",
        ]

    @staticmethod
    def params(n: int) -> str:
        return ", ".join("?" * n)

    def insert_call(self) -> str:
        return f"INSERT INTO calls ({', '.join(CALL_COLUMNS)}) VALUES ({self.params(len(CALL_COLUMNS))})"

    def upsert_daily(self) -> str:
        return self._upsert("daily", DAILY_KEY, SUM_COLUMNS)

    def upsert_durations(self) -> str:
        return self._upsert("durations", DURATION_KEY, ("calls",))

    def _upsert(self, table: str, key: tuple[str, ...], sums: tuple[str, ...]) -> str:
        columns = key + sums
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({self.params(len(columns))}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
            + ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in sums)
        )


SQLITE = Dialect(
    id_column="id INTEGER PRIMARY KEY",
    integer="INTEGER",
    real="REAL",
    begin="BEGIN IMMEDIATE",
    columns_of="SELECT name FROM pragma_table_info(?)",
)
POSTGRES = Dialect(
    id_column="id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    integer="BIGINT",
    real="DOUBLE PRECISION",
    begin="BEGIN",
    columns_of="SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
    "AND table_name = ?",
)


class LedgerError(RuntimeError):
    """The ledger could not record a batch; the receiver answers with a retryable status."""


def to_nano(cost: Decimal) -> int:
    return int((cost * NANO).to_integral_value(ROUND_HALF_EVEN))


def from_nano(nano: int | None) -> Decimal:
    return Decimal(nano or 0) / NANO


_DAY_NS = 86_400 * 1_000_000_000
_days: dict[int, str] = {}


def utc_day(ts_ns: int) -> str:
    day = ts_ns // _DAY_NS
    text = _days.get(day)
    if text is None:
        text = _days[day] = datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d")
    return text


def _day_after(until_ns: int) -> str:
    """The first UTC day wholly at or after ``until_ns`` (an exclusive bound in days)."""
    return utc_day(until_ns if until_ns % _DAY_NS == 0 else until_ns + _DAY_NS)


@dataclass(frozen=True, slots=True)
class Filters:
    """Row filters shared by `aispend usage`, GET /v1/usage and GET /v1/calls."""

    since_ns: int | None = None
    until_ns: int | None = None
    equals: Mapping[str, str] | None = None  # column -> value, columns from FILTER_COLUMNS

    def where(self, time_column: str = "ts_ns") -> tuple[str, list[Any]]:
        """SQL for these filters on ``calls`` (time column ``ts_ns``) or ``daily`` (``day``: whole
        UTC days, so a day counts if the range starts on it)."""
        clauses: list[str] = []
        params: list[Any] = []
        as_day = time_column == "day"
        if self.since_ns is not None:
            clauses.append(f"{time_column} >= ?")
            params.append(utc_day(self.since_ns) if as_day else self.since_ns)
        if self.until_ns is not None:
            clauses.append(f"{time_column} < ?")
            params.append(_day_after(self.until_ns) if as_day else self.until_ns)
        for column, value in (self.equals or {}).items():
            if column not in FILTER_COLUMNS:
                raise ValueError(f"cannot filter on {column!r}")
            clauses.append(f"{column} = ?")
            params.append(value)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class Ledger:
    """The ledger's operations in SQL both backends take (written with ``?`` placeholders)."""

    dialect: Dialect = SQLITE
    url: str = ""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._insert_call = self.dialect.insert_call()
        self._upsert_daily = self.dialect.upsert_daily()
        self._upsert_durations = self.dialect.upsert_durations()

    _conn: Any  # the backend's connection

    def _migrate(self) -> None:
        """Add the columns a ledger made by an older release lacks (ADDED_COLUMNS), each in one
        transaction with its backfill."""
        for table, column, kind, backfill in ADDED_COLUMNS:
            if self._has_column(table, column):
                continue
            sql = f"ALTER TABLE {table} ADD COLUMN {column} {kind.format(integer=self.dialect.integer)}"
            try:
                self._transaction([(sql, [()]), *([(backfill, [()])] if backfill else [])])
            except LedgerError:
                if not self._has_column(table, column):  # else another replica starting added it
                    raise

    def _has_column(self, table: str, column: str) -> bool:
        return column in {row[0] for row in self._read(self.dialect.columns_of, (table,))}

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- what a backend provides -----------------------------------------------------------------
    def _transaction(self, statements: Sequence[tuple[str, Sequence[Sequence[Any]]]]) -> None:
        """Run (sql, rows) pairs with executemany in one transaction; raise LedgerError on failure."""
        raise NotImplementedError

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One statement in its own transaction; the number of rows it changed."""
        raise NotImplementedError

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    # -- writing --------------------------------------------------------------------------------
    def write(self, calls: Sequence[Call]) -> None:
        """Record a batch in one transaction, or raise LedgerError and record nothing."""
        if not calls:
            return
        rows = []
        daily: dict[tuple[str, ...], list[Any]] = {}
        durations: dict[tuple[Any, ...], int] = {}
        for c in calls:
            nano = to_nano(c.cost)
            day = utc_day(c.start_ns)
            rows.append(
                (
                    c.start_ns,
                    day,
                    c.duration_s,
                    c.service,
                    c.provider,
                    c.model,
                    c.operation,
                    c.feature,
                    c.customer,
                    c.key,
                    c.response_model,
                    c.kind,
                    c.status,
                    c.error_type,
                    c.input_tokens,
                    c.output_tokens,
                    c.cache_read_tokens,
                    c.cache_write_tokens,
                    c.reasoning_tokens,
                    c.requests,
                    c.images,
                    nano,
                    to_nano(c.book_cost) if c.book_cost is not None else 0,
                    c.cost_source,
                    int(c.priced),
                    int(c.estimated),
                    c.free_units,
                    c.trace_id.hex(),
                    c.span_id.hex(),
                    c.parent_span_id.hex(),
                    c.response_id,
                )
            )
            key = (day, c.service, c.provider, c.model, c.operation, c.feature, c.customer, c.key, c.status)
            agg = daily.get(key)
            if agg is None:
                agg = daily[key] = [0] * (len(SUM_COLUMNS) - 1) + [0.0]
            agg[0] += 1
            agg[1] += c.input_tokens
            agg[2] += c.output_tokens
            agg[3] += c.cache_read_tokens
            agg[4] += c.cache_write_tokens
            agg[5] += c.reasoning_tokens
            agg[6] += c.requests
            agg[7] += c.images
            agg[8] += nano
            agg[9] += 0 if c.priced else 1
            agg[10] += 0 if c.priced or c.usage_known else 1
            agg[11] += int(c.book_mismatch)
            agg[14] += c.duration_s  # 12, 13: repriced_* start at 0
            bucket = (day, c.provider, c.model, c.operation, c.status, _bucket(c.duration_s))
            durations[bucket] = durations.get(bucket, 0) + 1
        self._transaction(
            [
                (self._insert_call, rows),
                (self._upsert_daily, [(*k, *v) for k, v in daily.items()]),
                (self._upsert_durations, [(*k, n) for k, n in durations.items()]),
            ]
        )

    def prune(self, retention_days: int, now_ns: int) -> int:
        """Delete calls older than the retention; daily aggregates are kept."""
        if retention_days <= 0:
            return 0
        cutoff = now_ns - retention_days * 86_400 * 1_000_000_000
        return self._execute("DELETE FROM calls WHERE ts_ns < ?", (cutoff,))

    # -- restoring ------------------------------------------------------------------------------
    def totals(self) -> Iterator[tuple[tuple[str, ...], str, dict[str, int], Decimal, int]]:
        """(labels, status, token sums, cost, calls) per label set: all time, from the aggregates, as
        the counters counted them (a reprice's corrections left out: a counter never goes back)."""
        sql = (
            f"SELECT {', '.join(LABEL_COLUMNS)}, status, {_sum('calls')}, "
            f"{', '.join(_sum(c) for c in TOKEN_COLUMNS)}, {_sum('cost_nusd - repriced_nusd')} FROM daily "
            f"GROUP BY {', '.join(LABEL_COLUMNS)}, status"
        )
        for row in self._read(sql):
            labels = tuple(row[: len(LABEL_COLUMNS)])
            rest = row[len(LABEL_COLUMNS) :]
            tokens = dict(zip(("input", "output", "cache_read", "cache_write", "reasoning"), rest[2:7], strict=True))
            yield labels, rest[0], tokens, from_nano(rest[7]), rest[1]

    def durations(self) -> list[tuple[tuple[str, str, str, str], float, list[int]]]:
        """((provider, model, operation, status), seconds, calls per bucket): all time."""
        key = ("provider", "model", "operation", "status")
        found: dict[tuple[str, ...], tuple[float, list[int]]] = {}
        for row in self._read(f"SELECT {', '.join(key)}, SUM(duration_s) FROM daily GROUP BY {', '.join(key)}"):
            found[tuple(row[:4])] = (float(row[4] or 0.0), [0] * (len(BUCKETS) + 1))
        for *labels, bucket, count in self._read(
            f"SELECT {', '.join(key)}, bucket, {_sum('calls')} FROM durations GROUP BY {', '.join(key)}, bucket"
        ):
            slot = found.get(tuple(labels))
            if slot is not None and 0 <= bucket <= len(BUCKETS):
                slot[1][bucket] += int(count or 0)
        return [(labels, seconds, buckets) for labels, (seconds, buckets) in found.items()]  # type: ignore[misc]

    def unpriced_totals(self) -> list[tuple[str, str, str, int]]:
        """(provider, model, reason, calls) of unpriced calls: ``no_price`` or ``no_usage``."""
        out = []
        for provider, model, unpriced, no_usage in self._read(
            f"SELECT provider, model, {_sum('unpriced - repriced_unpriced')}, {_sum('unpriced_no_usage')} FROM daily "
            "GROUP BY provider, model HAVING SUM(unpriced - repriced_unpriced) > 0"
        ):
            for reason, count in (("no_price", unpriced - no_usage), ("no_usage", no_usage)):
                if count:
                    out.append((provider, model, reason, count))
        return out

    def mismatch_totals(self) -> list[tuple[str, str, int]]:
        """(provider, model, calls) whose provider-reported cost was over 1 % from the price book's."""
        return self._read(
            f"SELECT provider, model, {_sum('cost_mismatch')} FROM daily GROUP BY provider, model "
            "HAVING SUM(cost_mismatch) > 0"
        )

    def recent_calls(self, limit: int) -> list[tuple[str, str, str, str, str, int, float]]:
        """(trace id, span id, parent span id, response id, provider, start ns, duration s) of the newest calls."""
        return self._read(
            "SELECT trace_id, span_id, parent_span_id, response_id, provider, ts_ns, duration_s FROM calls "
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        )

    def spend_since(self, since_ns: int, scope: Mapping[str, Sequence[str]]) -> Decimal:
        clauses, params = ["ts_ns >= ?"], [since_ns]
        for column, values in scope.items():
            if column not in LABEL_COLUMNS:
                raise ValueError(f"unknown scope label {column!r}")
            clauses.append(f"{column} IN ({Dialect.params(len(values))})")
            params.extend(values)
        rows = self._read(f"SELECT {_sum('cost_nusd')} FROM calls WHERE {' AND '.join(clauses)}", params)
        return from_nano(rows[0][0])

    def units_used(self, provider: str, key: str, since_day: str | None) -> int:
        """Billable request units a key used at a provider since a UTC day (None: ever)."""
        sql = f"SELECT {_sum('requests')} FROM daily WHERE provider = ? AND key = ?"
        params: list[Any] = [provider, key]
        if since_day is not None:
            sql += " AND day >= ?"
            params.append(since_day)
        return int(self._read(sql, params)[0][0] or 0)

    def budget_overrides(self) -> dict[str, tuple[str | None, int | None]]:
        return {b: (a, r) for b, a, r in self._read("SELECT budget, amount_usd, reset_at_ns FROM budget_overrides")}

    def set_budget_override(self, budget: str, amount_usd: str | None, reset_at_ns: int | None) -> None:
        self._execute(
            "INSERT INTO budget_overrides (budget, amount_usd, reset_at_ns) VALUES (?, ?, ?) "
            "ON CONFLICT (budget) DO UPDATE SET "
            "amount_usd = COALESCE(excluded.amount_usd, budget_overrides.amount_usd), "
            "reset_at_ns = COALESCE(excluded.reset_at_ns, budget_overrides.reset_at_ns)",
            (budget, amount_usd, reset_at_ns),
        )

    # -- querying (aispend usage, /v1/usage, /v1/calls) -----------------------------------------
    def calls(self, filters: Filters, limit: int = 100) -> list[dict[str, Any]]:
        where, params = filters.where()
        columns = _LOG_COLUMNS
        rows = self._read(
            f"SELECT {', '.join(columns)} FROM calls{where} ORDER BY ts_ns DESC, id DESC LIMIT ?", [*params, limit]
        )
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def summary(self, filters: Filters, group_by: Sequence[str], from_daily: bool = False) -> list[dict[str, Any]]:
        for column in group_by:
            if column not in (*FILTER_COLUMNS, "day"):
                raise ValueError(f"cannot group by {column!r}")
        table = "daily" if from_daily else "calls"
        where, params = filters.where("day" if from_daily else "ts_ns")
        count = _sum("calls") if from_daily else "COUNT(*)"
        unpriced = _sum("unpriced") if from_daily else _sum("1 - priced")
        select = [
            *group_by,
            f"{count} AS calls",
            *(f"{_sum(c)} AS {c}" for c in TOKEN_COLUMNS),
            f"{_sum('requests')} AS requests",
            f"{_sum('cost_nusd')} AS cost_nusd",
            f"{unpriced} AS unpriced",
        ]
        sql = f"SELECT {', '.join(select)} FROM {table}{where}"
        if group_by:
            sql += f" GROUP BY {', '.join(group_by)} ORDER BY cost_nusd DESC"
        names = [*group_by, "calls", *TOKEN_COLUMNS, "requests", "cost_nusd", "unpriced"]
        return [
            {name: (value if value is not None else 0) for name, value in zip(names, row, strict=True)}
            for row in self._read(sql, params)
            if row[len(group_by)]  # skip the empty all-NULL row of an empty table
        ]


def _sum(expression: str) -> str:
    """An integer sum in both backends (PostgreSQL's SUM of BIGINT is NUMERIC)."""
    return f"CAST(SUM({expression}) AS BIGINT)"


class SQLiteLedger(Ledger):
    dialect = SQLITE

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.url = f"sqlite:///{path}"
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        for statement in self.dialect.schema():
            self._conn.execute(statement)
        self._migrate()

    def _transaction(self, statements: Sequence[tuple[str, Sequence[Sequence[Any]]]]) -> None:
        try:
            with self._lock:
                self._conn.execute(self.dialect.begin)
                try:
                    for sql, rows in statements:
                        self._conn.executemany(sql, rows)
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
        except (sqlite3.Error, OverflowError) as exc:
            raise LedgerError(f"ledger write failed: {exc}") from exc

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).rowcount

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()


def open_ledger(url: str) -> Ledger | None:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``sqlite:///:memory:``,
    ``postgresql://user:password@host:port/database`` or ``none``."""
    if url.strip().lower() in ("", "none", "off"):
        return None
    if url.startswith("sqlite://"):
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else url[len("sqlite://") :]
        return SQLiteLedger(path or ":memory:")
    if url.startswith(("postgres://", "postgresql://")):
        from aispend.exporter.ledger_postgres import PostgresLedger

        return PostgresLedger(url)
    raise ValueError(f"unsupported ledger URL {url!r} (use sqlite:///path, postgresql://... or none)")


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()
