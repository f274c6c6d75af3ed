"""The ledger: every counted call, and the accounting rules that make it the truth.

SQLite (WAL) is the embedded default for one process; PostgreSQL (psycopg 3) is for teams and for
several replicas on one database. Both take the same SQL, written once here from the column
lists; connecting, placeholders, locking and "which rows were new" differ per backend.

The rules (all applied inside one transaction per batch, so they hold across batches, restarts and
replicas, never by a process's memory):
- **Identity.** A call is counted once: ``calls`` has a UNIQUE (trace_id, span_id) and rows are
  inserted with insert-or-skip; spans of one call under other ids (``identity``) are found among
  the rows already held. Every span's lock keys (its trace; its provider + response id) are taken
  first (PostgreSQL advisory locks, sorted; SQLite: the database lock), so two replicas never
  decide about one call at the same time.
- **The best span wins.** aispend's own spans count at once. Other spans wait in ``pending`` for
  ``settle`` (a bounded delay): a better span of the same call that arrives meanwhile replaces
  them; then the best one counts. Counted rows are never taken back, so counters never go down.
- **Instances.** Every counted row records the instance (replica) that counted it; ``daily`` and
  ``durations`` are kept per instance, so each replica restores its own counters and their sum
  is the ledger.
- **Shared state.** Budget spend per budget and period (``budget_spend``), budget overrides and
  free-tier units per provider, key and period (``free_units``) live here and change in the
  batch's transaction; rows are locked in one order (sorted keys), so writers never deadlock.

Costs are integer nano-dollars so SQL sums are exact.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from aispend.exporter import identity
from aispend.exporter.ledger_checkpoint import Checkpointer
from aispend.exporter.ledger_health import BUSY_TIMEOUT_S, FileIdentity, describe, unwritable
from aispend.exporter.ledger_readers import PoolClosed, ReadPool
from aispend.exporter.metrics import BUCKETS
from aispend.exporter.normalise import Call
from aispend.pricing import FreeTier

logger = logging.getLogger("aispend.exporter")

SCHEMA_VERSION = "2"
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
    "instance",
    "rank",
)
_TEXT_CALL_COLUMNS = frozenset(
    {"day", *LABEL_COLUMNS, "response_model", "kind", "status", "error_type", "trace_id", "span_id"}
    | {"parent_span_id", "response_id", "instance", "cost_source"}
)
# what the per-call log shows (the ledger's bookkeeping columns left out)
_LOG_COLUMNS = tuple(
    c for c in CALL_COLUMNS if c not in ("day", "kind", "free_units", "parent_span_id", "response_id", "rank")
)
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
# Columns added since: (table, column, SQL type and default, backfill or None). A ledger made before
# them gains them at start; book_cost_nusd of older rows is their cost (they were all priced from
# the price book), unpriced_no_usage of older daily rows 0 (not told apart).
ADDED_COLUMNS = (
    ("calls", "book_cost_nusd", "{integer} NOT NULL DEFAULT 0", "UPDATE calls SET book_cost_nusd = cost_nusd"),
    ("calls", "cost_source", "TEXT NOT NULL DEFAULT ''", None),
    ("daily", "unpriced_no_usage", "{integer} NOT NULL DEFAULT 0", None),
    ("daily", "cost_mismatch", "{integer} NOT NULL DEFAULT 0", None),
    ("daily", "repriced_nusd", "{integer} NOT NULL DEFAULT 0", None),
    ("daily", "repriced_unpriced", "{integer} NOT NULL DEFAULT 0", None),
)
DAILY_KEY = ("instance", "day", *LABEL_COLUMNS, "status")
# calls per duration bucket: bucket i < len(BUCKETS) is "at most BUCKETS[i]", the last "longer"
DURATION_KEY = ("instance", "day", "provider", "model", "operation", "status", "bucket")
# a span waiting to settle: what identity needs as columns, the call itself as JSON
PENDING_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "provider",
    "response_id",
    "start_ns",
    "end_ns",
    "rank",
    "settle_at_ns",
    "received_by",
    "call",
)
_CALL_FIELDS = tuple(f.name for f in fields(Call))


def _bucket(seconds: float) -> int:
    return bisect_left(BUCKETS, seconds)  # the first bound >= seconds; len(BUCKETS): longer than all


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the backends' SQL."""

    id_column: str
    integer: str
    real: str
    begin: str
    for_update: str  # row locks for read-then-update (SQLite's database lock covers it)

    def schema(self) -> list[str]:
        calls = ", ".join(
            f"{c} {'TEXT' if c in _TEXT_CALL_COLUMNS else self.real if c == 'duration_s' else self.integer} NOT NULL"
            for c in CALL_COLUMNS
        )
        daily_sums = ", ".join(f"{c} {self.real if c == 'duration_s' else self.integer} NOT NULL" for c in SUM_COLUMNS)
        duration_key = ", ".join(f"{c} {self.integer if c == 'bucket' else 'TEXT'} NOT NULL" for c in DURATION_KEY)
        pending = ", ".join(
            f"{c} {self.integer if c in ('start_ns', 'end_ns', 'rank', 'settle_at_ns') else 'TEXT'} NOT NULL"
            for c in PENDING_COLUMNS
        )
        i = self.integer
        return [
            "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS calls ({self.id_column}, {calls})",
            "CREATE INDEX IF NOT EXISTS calls_ts ON calls (ts_ns)",
            # the call identity: a second copy of a span is refused by the database itself
            "CREATE UNIQUE INDEX IF NOT EXISTS calls_span ON calls (trace_id, span_id)",
            "CREATE INDEX IF NOT EXISTS calls_response ON calls (response_id) WHERE response_id <> ''",
            # the console's per-key pages (queries.py): their calls and hours. Keys are few, so a
            # batch adds to a few places of it. Not so by customer: a batch of a thousand customers'
            # calls wrote a page of such an index per call, as much as the rest of the batch's work
            # (benchmarks/exporter_throughput.py); a customer's page reads by time instead.
            "CREATE INDEX IF NOT EXISTS calls_key_ts ON calls (key, ts_ns)",
            "DROP INDEX IF EXISTS calls_customer_ts",
            # failed calls are few: a partial index finds them without scanning the successes
            "CREATE INDEX IF NOT EXISTS calls_failed_ts ON calls (ts_ns) WHERE status <> 'ok'",
            f"CREATE TABLE IF NOT EXISTS pending ({pending}, PRIMARY KEY (trace_id, span_id))",
            "CREATE INDEX IF NOT EXISTS pending_settle ON pending (settle_at_ns)",
            "CREATE INDEX IF NOT EXISTS pending_response ON pending (response_id) WHERE response_id <> ''",
            f"CREATE TABLE IF NOT EXISTS daily ({', '.join(f'{c} TEXT NOT NULL' for c in DAILY_KEY)}, {daily_sums}, "
            f"PRIMARY KEY ({', '.join(DAILY_KEY)}))",
            # the console's per-customer and per-key totals over long ranges (queries.py); a row is
            # added once per label set and day, so these cost little
            "CREATE INDEX IF NOT EXISTS daily_customer ON daily (customer, day)",
            "CREATE INDEX IF NOT EXISTS daily_key ON daily (key, day)",
            f"CREATE TABLE IF NOT EXISTS durations ({duration_key}, calls {i} NOT NULL, "
            f"PRIMARY KEY ({', '.join(DURATION_KEY)}))",
            f"CREATE TABLE IF NOT EXISTS budget_overrides (budget TEXT PRIMARY KEY, amount_usd TEXT, reset_at_ns {i})",
            "CREATE TABLE IF NOT EXISTS budget_spend (budget TEXT NOT NULL, scope TEXT NOT NULL, "
            f"since_ns {i} NOT NULL, spend_nusd {i} NOT NULL, PRIMARY KEY (budget, scope, since_ns))",
            "CREATE TABLE IF NOT EXISTS free_units (provider TEXT NOT NULL, key TEXT NOT NULL, period TEXT NOT NULL, "
            f"units {i} NOT NULL, PRIMARY KEY (provider, key, period))",
        ]

    @staticmethod
    def params(n: int) -> str:
        return ", ".join("?" * n)

    def insert(self, table: str, columns: Sequence[str]) -> str:
        """Insert-or-skip: a row whose unique key is taken is left out (the caller learns which)."""
        return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({self.params(len(columns))}) ON CONFLICT DO NOTHING"

    def upsert(self, table: str, key: tuple[str, ...], sums: tuple[str, ...]) -> str:
        columns = key + sums
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({self.params(len(columns))}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
            + ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in sums)
        )


SQLITE = Dialect(
    id_column="id INTEGER PRIMARY KEY", integer="INTEGER", real="REAL", begin="BEGIN IMMEDIATE", for_update=""
)
POSTGRES = Dialect(
    id_column="id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    integer="BIGINT",
    real="DOUBLE PRECISION",
    begin="BEGIN",
    for_update=" FOR UPDATE",
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


def free_period(tier: FreeTier, when: datetime) -> str:
    """First UTC day of the free tier's current period ('' : the tier is for the key's lifetime)."""
    when = when.astimezone(UTC)
    if tier.period == "day":
        return when.strftime("%Y-%m-%d")
    if tier.period == "month":
        return when.strftime("%Y-%m-01")
    return ""


def free_period_end(tier: FreeTier, when: datetime) -> str:
    """The first UTC day after the free tier's current period ('': no end)."""
    when = when.astimezone(UTC)
    if tier.period == "day":
        return utc_day(int(when.timestamp()) // 86_400 * _DAY_NS + _DAY_NS)
    if tier.period == "month":
        return f"{when.year + 1}-01-01" if when.month == 12 else f"{when.year}-{when.month + 1:02d}-01"
    return ""


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


def _scope_sql(scope: Mapping[str, Sequence[str]]) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, values in sorted(scope.items()):
        if column not in LABEL_COLUMNS:
            raise ValueError(f"unknown scope label {column!r}")
        clauses.append(f"{column} IN ({Dialect.params(len(values))})")
        params.extend(values)
    return clauses, params


@dataclass(frozen=True, slots=True)
class BudgetWindow:
    """One budget's current period as the ledger keeps its spend: calls that start in
    [since_ns, until_ns) and match the scope."""

    budget: str
    scope: Mapping[str, tuple[str, ...]]
    since_ns: int
    until_ns: int

    @property
    def scope_key(self) -> str:  # a changed scope starts a new row
        return json.dumps({k: sorted(v) for k, v in sorted(self.scope.items())}, separators=(",", ":"))

    def covers(self, call: Call) -> bool:
        return self.since_ns <= call.start_ns < self.until_ns and all(
            getattr(call, label) in values for label, values in self.scope.items()
        )


def _resets(tx: Tx, windows: Sequence[BudgetWindow]) -> dict[str, int]:
    """The budgets' last resets as the ledger holds them now (a replica's cached copy may be older)."""
    if not windows:
        return {}
    clause, params = tx.in_list("budget", sorted({w.budget for w in windows}))
    return dict(
        tx.read(f"SELECT budget, reset_at_ns FROM budget_overrides WHERE {clause} AND reset_at_ns IS NOT NULL", params)
    )


def _after_resets(windows: Sequence[BudgetWindow], resets: Mapping[str, int]) -> list[BudgetWindow]:
    """Each window started after its budget's latest reset in the period: a replica that has not
    re-read the overrides yet must not add spend to (or read it from) the period before the reset."""
    out = []
    for w in windows:
        reset = resets.get(w.budget)
        if reset is not None and w.since_ns <= reset < w.until_ns:
            w = replace(w, since_ns=int(reset) + 1)  # calls that started after the reset, as BudgetTracker
        out.append(w)
    return out


FreeUsed = Callable[[FreeTier, datetime], int]
# prices a call whose price has a free tier; returns (tier, period time) when its units count
Pricer = Callable[[Call, FreeUsed], "tuple[FreeTier, datetime] | None"]


@dataclass(slots=True)
class Accounting:
    """What a batch is recorded with: who records it and the shared state it changes."""

    instance: str
    settle_ns: int = 0  # how long spans other than aispend's wait for a better span (0: count at once)
    price: Pricer | None = None
    budgets: Sequence[BudgetWindow] = ()
    now_ns: int = 0


@dataclass(slots=True)
class Outcome:
    counted: list[Call] = field(default_factory=list)
    pending: int = 0
    duplicates: dict[str, int] = field(default_factory=dict)  # reason -> spans not counted

    def duplicate(self, reason: str, n: int = 1) -> None:
        self.duplicates[reason] = self.duplicates.get(reason, 0) + n


class Tx(Protocol):
    """One open transaction (``?`` placeholders)."""

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def run(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def insert_new(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[bool]:
        """Run an insert-or-skip per row; which rows were inserted."""
        ...

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]: ...


def inserted_rows(sql: str, rows: Sequence[Sequence[Any]], new: Iterable[tuple[str, str]]) -> list[bool]:
    """Which of an insert-or-skip's rows went in, given the (trace_id, span_id) of those that did."""
    names = [c.strip() for c in sql[sql.index("(") + 1 : sql.index(")")].split(",")]
    t, s = names.index("trace_id"), names.index("span_id")
    keys = set(new)
    inserted = []
    for row in rows:  # a key twice in the batch: only its first row went in
        key = (row[t], row[s])
        inserted.append(key in keys)
        keys.discard(key)
    return inserted


def lock_keys(calls: Iterable[Call]) -> list[str]:
    """The keys any two spans of one call share at least one of (see ``identity``)."""
    keys = set()
    for c in calls:
        keys.add(f"t:{c.trace_id.hex()}")
        if c.response_id:
            keys.add(f"r:{c.provider}\x1f{c.response_id}")
    return sorted(keys)


def lock_id(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


class Ledger:
    """The ledger's operations in SQL both backends take (written with ``?`` placeholders)."""

    dialect: Dialect = SQLITE
    url: str = ""
    locks_keys = False  # whether a transaction locks the keys it is given (SQLite's locks the whole file)

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the write connection's
        self._readers: ReadPool | None = None  # reads' own connections (None: reads share the write one)
        d = self.dialect
        self._insert_call = d.insert("calls", CALL_COLUMNS)
        self._insert_pending = d.insert("pending", PENDING_COLUMNS)
        self._upsert_daily = d.upsert("daily", DAILY_KEY, SUM_COLUMNS)
        self._upsert_durations = d.upsert("durations", DURATION_KEY, ("calls",))

    _conn: Any  # the backend's connection

    def problem(self) -> str | None:
        """Why the ledger cannot be trusted to keep what it is given (None: it can); for /healthz."""
        return None

    def close(self) -> None:
        if self._readers is not None:
            self._readers.close()
        with self._lock:
            self._conn.close()

    # -- what a backend provides -----------------------------------------------------------------
    def transaction(self, keys: Sequence[str] = ()) -> AbstractContextManager[Tx]:
        """One transaction holding the lock ``keys`` (sorted); raises LedgerError on a storage failure."""
        raise NotImplementedError

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One statement in its own transaction; the number of rows it changed."""
        raise NotImplementedError

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """One read of committed data, on a read connection: it neither waits for a write nor holds one up."""
        raise NotImplementedError

    def _migrate(self, tx: Tx) -> None:
        """Bring a ledger written by an older aispend to SCHEMA_VERSION (before the schema runs)."""
        tables = {r[0] for r in tx.read(self._tables_sql())}
        tx.run(self.dialect.schema()[0])  # meta: notes what a migration leaves to do
        for table, column, kind, backfill in ADDED_COLUMNS:  # first: the copies below take them along
            if table in tables and column not in self._columns(tx, table):
                tx.run(f"ALTER TABLE {table} ADD COLUMN {column} {kind.format(integer=self.dialect.integer)}")
                if backfill:
                    tx.run(backfill)
        if "calls" in tables and "instance" not in self._columns(tx, "calls"):
            logger.warning("upgrading the ledger at %s to schema %s", redacted(self.url), SCHEMA_VERSION)
            self._note_unowned(tx)
            tx.run("ALTER TABLE calls ADD COLUMN instance TEXT NOT NULL DEFAULT ''")
            tx.run(f"ALTER TABLE calls ADD COLUMN rank {self.dialect.integer} NOT NULL DEFAULT 0")
            copies = "id NOT IN (SELECT MIN(id) FROM calls GROUP BY trace_id, span_id)"
            self._uncount_copies(tx, copies, tables)
            removed = tx.run(f"DELETE FROM calls WHERE {copies}")
            if removed:
                logger.warning("removed %d duplicate calls recorded by the older aispend", removed)
        for table in ("daily", "durations"):
            if table in tables and "instance" not in (old := self._columns(tx, table)):
                self._note_unowned(tx)
                # a new table beside the old one (PostgreSQL keeps index names across a rename)
                create = next(s for s in self.dialect.schema() if f"TABLE IF NOT EXISTS {table} " in s)
                tx.run(create.replace(f"EXISTS {table} ", f"EXISTS {table}_v2 "))
                tx.run(f"INSERT INTO {table}_v2 (instance, {', '.join(old)}) SELECT '', {', '.join(old)} FROM {table}")
                tx.run(f"DROP TABLE {table}")
                tx.run(f"ALTER TABLE {table}_v2 RENAME TO {table}")

    @staticmethod
    def _uncount_copies(tx: Tx, copies: str, tables: set[str]) -> None:
        """Take the extra copies of a span an older aispend recorded out of its daily and duration
        totals too (still keyed without instance here), so the totals the counters are restored
        from keep matching the calls."""
        if "daily" in tables:
            key = ("day", *LABEL_COLUMNS, "status")
            sums = (
                "COUNT(*)",
                *(_sum(c) for c in (*TOKEN_COLUMNS, "requests", "images", "cost_nusd", "1 - priced")),
                "SUM(duration_s)",
            )
            rows = tx.read(
                f"SELECT {', '.join(key)}, {', '.join(sums)} FROM calls WHERE {copies} GROUP BY {', '.join(key)}"
            )
            taken = ("calls", *TOKEN_COLUMNS, "requests", "images", "cost_nusd", "unpriced", "duration_s")
            tx.many(
                f"UPDATE daily SET {', '.join(f'{c} = {c} - ?' for c in taken)} "
                f"WHERE {' AND '.join(f'{k} = ?' for k in key)}",
                [(*r[len(key) :], *r[: len(key)]) for r in rows],
            )
            tx.run("DELETE FROM daily WHERE calls <= 0")
        if "durations" in tables:
            key = ("day", "provider", "model", "operation", "status")
            buckets: dict[tuple[Any, ...], int] = {}
            for *labels, seconds in tx.read(f"SELECT {', '.join(key)}, duration_s FROM calls WHERE {copies}"):
                slot = (*labels, _bucket(float(seconds)))
                buckets[slot] = buckets.get(slot, 0) + 1
            tx.many(
                f"UPDATE durations SET calls = calls - ? WHERE {' AND '.join(f'{k} = ?' for k in (*key, 'bucket'))}",
                [(n, *slot) for slot, n in sorted(buckets.items())],
            )
            tx.run("DELETE FROM durations WHERE calls <= 0")

    def _tables_sql(self) -> str:
        raise NotImplementedError

    def _columns(self, tx: Tx, table: str) -> list[str]:
        raise NotImplementedError

    def _create(self) -> None:
        with self.transaction() as tx:
            self._migrate(tx)
            for statement in self.dialect.schema():
                tx.run(statement)
            tx.run(
                "INSERT INTO meta (name, value) VALUES ('schema', ?) ON CONFLICT (name) DO UPDATE SET value = ?",
                (SCHEMA_VERSION, SCHEMA_VERSION),
            )

    @staticmethod
    def _note_unowned(tx: Tx) -> None:
        tx.run("INSERT INTO meta (name, value) VALUES ('unowned', '1') ON CONFLICT (name) DO NOTHING")

    def adopt_unowned(self, instance: str) -> int:
        """Rows an older aispend wrote have no instance: the first replica to start after the
        upgrade takes them, so its counters include them (once). Later starts skip the scan."""
        with self.transaction() as tx:
            if not tx.read("SELECT value FROM meta WHERE name = 'unowned'"):
                return 0
            n = tx.run("UPDATE calls SET instance = ? WHERE instance = ''", (instance,))
            tx.run("UPDATE daily SET instance = ? WHERE instance = ''", (instance,))
            tx.run("UPDATE durations SET instance = ? WHERE instance = ''", (instance,))
            tx.run("DELETE FROM meta WHERE name = 'unowned'")
        return n

    # -- recording ------------------------------------------------------------------------------
    def record(self, calls: Sequence[Call], acc: Accounting) -> Outcome:
        """Record a batch in one transaction: which calls counted, which wait to settle, which were
        already counted. Raises LedgerError and records nothing on a storage failure."""
        outcome = Outcome()
        if not calls:
            return outcome
        with self.transaction(self._lock_keys(calls)) as tx:
            stored = self._known(tx, calls)
            held = identity.KnownSet(stored)
            count: list[Call] = []
            pend: list[tuple[Call, identity.Known]] = []
            drop: list[identity.Known] = []  # pending spans a better one replaced
            ordered = identity.batch_order(list(calls))
            # the common batch: nothing stored can be its calls and no two of its spans can be one call
            alone = not stored and identity.independent(ordered)
            for call in ordered:
                if alone:
                    if acc.settle_ns <= 0 or identity.rank(call) == identity.AISPEND:
                        count.append(call)
                    else:
                        pend.append((call, identity.known(call, counted=False)))
                    continue
                me = identity.known(call, counted=False)
                if held.has_span(me):
                    outcome.duplicate("retry")
                    continue
                others = held.related(me)
                counted = [why for k, why in others if k.counted]
                if counted:
                    outcome.duplicate(counted[0])
                    continue
                if me.rank == identity.AISPEND or acc.settle_ns <= 0:
                    count.append(call)
                    for k, _ in others:
                        drop.append(k)
                        held.remove(k)
                    outcome.duplicate("superseded", len(others))
                    held.add(identity.counted(me))
                else:
                    pend.append((call, me))
                    held.add(me)
            _drop_pending(tx, drop)
            if pend:
                settle_at = acc.now_ns + acc.settle_ns
                rows = [_pending_row(c, me, settle_at, acc.instance) for c, me in pend]
                outcome.pending = sum(tx.insert_new(self._insert_pending, rows))
            self._count(tx, count, acc, outcome)
        return outcome

    def settle(self, acc: Accounting, limit: int = 2000) -> Outcome:
        """Count the best span of each call whose waiting time is over (any replica may run it)."""
        outcome = Outcome()
        due = [
            _call_from_json(row[0])
            for row in self._read(
                "SELECT call FROM pending WHERE settle_at_ns <= ? ORDER BY settle_at_ns LIMIT ?", (acc.now_ns, limit)
            )
        ]
        if not due:
            return outcome
        with self.transaction(self._lock_keys(due)) as tx:
            known = self._known(tx, due)
            pending = identity.KnownSet(k for k in known if not k.counted)
            counted = identity.KnownSet(k for k in known if k.counted)
            done: set[tuple[str, str]] = set()
            count: list[Call] = []
            drop: list[identity.Known] = []
            calls = {(c.trace_id.hex(), c.span_id.hex()): c for c in due}
            for call in due:
                key = (call.trace_id.hex(), call.span_id.hex())
                start = pending.get(key)
                if key in done or start is None:  # settled by another replica meanwhile
                    continue
                group = _group(start, pending)
                done.update((k.trace_id, k.span_id) for k in group)
                drop.extend(group)
                if any(counted.related(k) for k in group):
                    outcome.duplicate("superseded", len(group))
                    continue
                winner = identity.best(group)
                chosen = calls.get((winner.trace_id, winner.span_id))
                if chosen is None:
                    chosen = _call_from_json(
                        tx.read(
                            "SELECT call FROM pending WHERE trace_id = ? AND span_id = ?",
                            (winner.trace_id, winner.span_id),
                        )[0][0]
                    )
                outcome.duplicate("superseded", len(group) - 1)
                count.append(chosen)
                counted.add(identity.known(chosen, counted=True))
            _drop_pending(tx, drop)
            self._count(tx, count, acc, outcome)
        return outcome

    def _lock_keys(self, calls: Iterable[Call]) -> list[str]:
        """What a transaction about ``calls`` locks (nothing where it holds the whole database)."""
        return lock_keys(calls) if self.locks_keys else []

    def pending_count(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM pending")[0][0])

    def _known(self, tx: Tx, calls: Sequence[Call]) -> list[identity.Known]:
        """The rows (counted and pending) that could be the same call as any of ``calls``."""
        traces = sorted({c.trace_id.hex() for c in calls})
        responses = sorted({c.response_id for c in calls if c.response_id})
        found: dict[tuple[str, str, bool], identity.Known] = {}
        # Under the batch's locks every pending span of these calls is already visible: when none
        # waits at all (no other instrumentation's spans), the pending lookups can find nothing.
        waiting = bool(tx.read("SELECT 1 FROM pending LIMIT 1"))
        sources = (
            (
                "SELECT trace_id, span_id, parent_span_id, provider, response_id, ts_ns, "
                "ts_ns + CAST(duration_s * 1000000000 AS BIGINT), rank FROM calls",
                True,
            ),
            (
                "SELECT trace_id, span_id, parent_span_id, provider, response_id, start_ns, end_ns, rank FROM pending",
                False,
            ),
        )
        for select, counted in sources if waiting else sources[:1]:
            for column, values, extra in (
                ("trace_id", traces, ""),
                ("response_id", responses, " AND response_id <> ''"),
            ):
                for chunk in _chunks(values):
                    clause, params = tx.in_list(column, chunk)
                    for row in tx.read(f"{select} WHERE {clause}{extra}", params):
                        found[(row[0], row[1], counted)] = identity.Known(
                            *row[:5], int(row[5]), int(row[6]), int(row[7]), counted
                        )
        return list(found.values())

    def _count(self, tx: Tx, calls: list[Call], acc: Accounting, outcome: Outcome) -> None:
        """Price what needs the shared free-tier state, insert, and add to the totals: in ``tx``."""
        if not calls:
            return
        free = _FreeTiers(tx, self.dialect)
        if acc.price is not None:
            unpriced = [c for c in calls if c.cost is None]
            if self.locks_keys:  # row locks in one order; SQLite's transaction holds the whole file
                free.lock(_free_slots(unpriced, acc.price))
            for c in unpriced:
                staged = acc.price(c, lambda tier, when, c=c: free.used(c.provider, c.key, tier, when))
                if staged is not None:
                    free.add(c.provider, c.key, *staged, c.requests)
        for c in calls:
            if c.cost is None:
                c.cost, c.priced = Decimal(0), False
        rows = [_call_row(c, acc.instance) for c in calls]
        inserted = tx.insert_new(self._insert_call, rows)
        written = [(c, row) for c, row, ok in zip(calls, rows, inserted, strict=True) if ok]
        new = [c for c, _ in written]
        if len(new) < len(calls):  # identity was checked under the locks: only a race with a lockless writer
            outcome.duplicate("retry", len(calls) - len(new))
        daily: dict[tuple[Any, ...], list[Any]] = {}
        durations: dict[tuple[Any, ...], int] = {}
        for c, row in written:
            nano, day = row[_ROW_COST], row[_ROW_DAY]  # as the row has them, not computed again
            labels = (c.service, c.provider, c.model, c.operation, c.feature, c.customer, c.key)
            key = (acc.instance, day, *labels, c.status)
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
            bucket = (acc.instance, day, c.provider, c.model, c.operation, c.status, _bucket(c.duration_s))
            durations[bucket] = durations.get(bucket, 0) + 1
        # sorted keys: concurrent writers lock shared rows in one order, so they never deadlock
        tx.many(self._upsert_daily, [(*k, *v) for k, v in sorted(daily.items())])
        tx.many(self._upsert_durations, [(*k, n) for k, n in sorted(durations.items())])
        self._add_budget_spend(tx, new, acc.budgets)
        free.write()
        outcome.counted.extend(new)

    def _add_budget_spend(self, tx: Tx, calls: list[Call], windows: Sequence[BudgetWindow]) -> None:
        deltas = []
        for w in _after_resets(windows, _resets(tx, windows)):
            nano = sum(to_nano(c.cost) for c in calls if c.cost and w.covers(c))
            if nano:
                deltas.append((w.budget, w.scope_key, w.since_ns, nano, w))
        for budget, scope_key, since_ns, nano, w in sorted(deltas, key=lambda d: d[:3]):
            if tx.run(
                "UPDATE budget_spend SET spend_nusd = spend_nusd + ? WHERE budget = ? AND scope = ? AND since_ns = ?",
                (nano, budget, scope_key, since_ns),
            ):
                continue
            # first spend of this period (or scope) here: start from what the calls already hold (this
            # transaction's own included); a replica that inserts it first makes ours an addition
            clauses, params = _scope_sql(w.scope)
            where = " AND ".join(["ts_ns >= ?", "ts_ns < ?", *clauses])
            tx.run(
                "INSERT INTO budget_spend (budget, scope, since_ns, spend_nusd) "
                f"SELECT ?, ?, ?, COALESCE({_sum('cost_nusd')}, 0) FROM calls WHERE {where} "
                "ON CONFLICT (budget, scope, since_ns) DO UPDATE SET spend_nusd = budget_spend.spend_nusd + ?",
                (budget, scope_key, since_ns, w.since_ns, w.until_ns, *params, nano),
            )

    # -- reading shared state -----------------------------------------------------------------
    def budget_spend(self, windows: Sequence[BudgetWindow]) -> dict[str, Decimal]:
        """Each window's spend, the same figure on every replica."""
        out: dict[str, Decimal] = {}
        resets = dict(self._read("SELECT budget, reset_at_ns FROM budget_overrides WHERE reset_at_ns IS NOT NULL"))
        for w in _after_resets(windows, resets):
            rows = self._read(
                "SELECT spend_nusd FROM budget_spend WHERE budget = ? AND scope = ? AND since_ns = ?",
                (w.budget, w.scope_key, w.since_ns),
            )
            if rows:
                out[w.budget] = from_nano(rows[0][0])
            else:
                out[w.budget] = self.spend_since(w.since_ns, w.scope, w.until_ns)
        return out

    def prune(self, retention_days: int, now_ns: int) -> int:
        """Delete calls older than the retention; daily aggregates are kept."""
        if retention_days <= 0:
            return 0
        cutoff = now_ns - retention_days * 86_400 * 1_000_000_000
        return self._execute("DELETE FROM calls WHERE ts_ns < ?", (cutoff,))

    def prune_to(self, rows: int) -> int:
        """Keep only the newest ``rows`` calls (a ledger kept in memory, as a dedupe window)."""
        return self._execute("DELETE FROM calls WHERE id <= (SELECT MAX(id) FROM calls) - ?", (rows,))

    # -- restoring ------------------------------------------------------------------------------
    def totals(self, instance: str) -> Iterator[tuple[tuple[str, ...], str, dict[str, int], Decimal, int]]:
        """(labels, status, token sums, cost, calls) per label set an instance counted: all time, as
        the counters counted them (a reprice's corrections left out: a counter never goes back)."""
        sql = (
            f"SELECT {', '.join(LABEL_COLUMNS)}, status, {_sum('calls')}, "
            f"{', '.join(_sum(c) for c in TOKEN_COLUMNS)}, {_sum('cost_nusd - repriced_nusd')} FROM daily "
            "WHERE instance = ? "
            f"GROUP BY {', '.join(LABEL_COLUMNS)}, status"
        )
        for row in self._read(sql, (instance,)):
            labels = tuple(row[: len(LABEL_COLUMNS)])
            rest = row[len(LABEL_COLUMNS) :]
            tokens = dict(zip(("input", "output", "cache_read", "cache_write", "reasoning"), rest[2:7], strict=True))
            yield labels, rest[0], tokens, from_nano(rest[7]), rest[1]

    def first_seen(self, instance: str, exact: bool = True) -> list[tuple[str, ...]]:
        """Every label set an instance counted, in the order it first counted it: by first day,
        then (``exact``) by the first row still kept (its counting order within the retention),
        then by value. The restore admits label sets in this order, as the live path did when they
        came. ``exact`` scans ``calls``; without it only the daily totals are read."""
        labels = ", ".join(LABEL_COLUMNS)
        mine = (instance,)
        first_row = (
            {
                tuple(r[:-1]): r[-1]
                for r in self._read(f"SELECT {labels}, MIN(id) FROM calls WHERE instance = ? GROUP BY {labels}", mine)
            }
            if exact
            else {}
        )
        days = [
            (tuple(r[:-1]), r[-1])
            for r in self._read(f"SELECT {labels}, MIN(day) FROM daily WHERE instance = ? GROUP BY {labels}", mine)
        ]
        days.sort(key=lambda item: (item[1], first_row.get(item[0], 0), item[0]))
        return [values for values, _ in days]

    def durations(self, instance: str) -> list[tuple[tuple[str, str, str, str], float, list[int]]]:
        """((provider, model, operation, status), seconds, calls per bucket): all time, one instance."""
        key = ("provider", "model", "operation", "status")
        found: dict[tuple[str, ...], tuple[float, list[int]]] = {}
        for row in self._read(
            f"SELECT {', '.join(key)}, SUM(duration_s) FROM daily WHERE instance = ? GROUP BY {', '.join(key)}",
            (instance,),
        ):
            found[tuple(row[:4])] = (float(row[4] or 0.0), [0] * (len(BUCKETS) + 1))
        for *labels, bucket, count in self._read(
            f"SELECT {', '.join(key)}, bucket, {_sum('calls')} FROM durations WHERE instance = ? "
            f"GROUP BY {', '.join(key)}, bucket",
            (instance,),
        ):
            slot = found.get(tuple(labels))
            if slot is not None and 0 <= bucket <= len(BUCKETS):
                slot[1][bucket] += int(count or 0)
        return [(labels, seconds, buckets) for labels, (seconds, buckets) in found.items()]  # type: ignore[misc]

    def unpriced_totals(self, instance: str) -> list[tuple[str, str, str, int]]:
        """(provider, model, reason, calls) of an instance's unpriced calls: ``no_price`` / ``no_usage``."""
        out = []
        for provider, model, unpriced, no_usage in self._read(
            f"SELECT provider, model, {_sum('unpriced - repriced_unpriced')}, {_sum('unpriced_no_usage')} FROM daily "
            "WHERE instance = ? GROUP BY provider, model HAVING SUM(unpriced - repriced_unpriced) > 0",
            (instance,),
        ):
            for reason, count in (("no_price", unpriced - no_usage), ("no_usage", no_usage)):
                if count:
                    out.append((provider, model, reason, count))
        return out

    def mismatch_totals(self, instance: str) -> list[tuple[str, str, int]]:
        """(provider, model, calls) whose provider-reported cost was over 1 % from the price book's."""
        return self._read(
            f"SELECT provider, model, {_sum('cost_mismatch')} FROM daily WHERE instance = ? "
            "GROUP BY provider, model HAVING SUM(cost_mismatch) > 0",
            (instance,),
        )

    def spend_since(self, since_ns: int, scope: Mapping[str, Sequence[str]], until_ns: int | None = None) -> Decimal:
        clauses, params = _scope_sql(scope)
        clauses.insert(0, "ts_ns >= ?")
        params.insert(0, since_ns)
        if until_ns is not None:
            clauses.insert(1, "ts_ns < ?")
            params.insert(1, until_ns)
        rows = self._read(f"SELECT {_sum('cost_nusd')} FROM calls WHERE {' AND '.join(clauses)}", params)
        return from_nano(rows[0][0])

    def units_used(self, provider: str, key: str, since_day: str | None) -> int:
        """Billable request units a key used at a provider since a UTC day (None: ever), all instances."""
        sql = f"SELECT {_sum('requests')} FROM daily WHERE provider = ? AND key = ?"
        params: list[Any] = [provider, key]
        if since_day is not None:
            sql += " AND day >= ?"
            params.append(since_day)
        return int(self._read(sql, params)[0][0] or 0)

    def free_units_used(self, provider: str, key: str, period: str) -> int | None:
        rows = self._read(
            "SELECT units FROM free_units WHERE provider = ? AND key = ? AND period = ?", (provider, key, period)
        )
        return int(rows[0][0]) if rows else None

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


class _FreeTiers:
    """Free-tier units per (provider, key, period) inside one transaction: rows locked before any
    is read (sorted), started from the daily totals the first time a period is seen."""

    def __init__(self, tx: Tx, dialect: Dialect) -> None:
        self._tx = tx
        self._dialect = dialect
        self._used: dict[tuple[str, str, str], int] = {}
        self._added: dict[tuple[str, str, str], int] = {}

    def lock(self, slots: Iterable[tuple[str, str, str, str]]) -> None:
        for slot in sorted(set(slots)):
            self._load(slot[:3], slot[3])

    def _load(self, slot: tuple[str, str, str], until: str) -> int:
        found = self._used.get(slot)
        if found is not None:
            return found
        select = f"SELECT units FROM free_units WHERE provider = ? AND key = ? AND period = ?{self._dialect.for_update}"
        rows = self._tx.read(select, slot)
        if not rows:
            # the period's first use here: what the daily totals hold for that period (not after it:
            # a late call of last month must not count this month's units)
            provider, key, period = slot
            days = [("day >= ?", period), ("day < ?", until)]
            clauses = "".join(f" AND {c}" for c, v in days if v)
            self._tx.run(
                "INSERT INTO free_units (provider, key, period, units) "
                f"SELECT ?, ?, ?, COALESCE({_sum('requests')}, 0) FROM daily WHERE provider = ? AND key = ?{clauses} "
                "ON CONFLICT DO NOTHING",
                (provider, key, period, provider, key, *(v for _, v in days if v)),
            )
            rows = self._tx.read(select, slot)
        self._used[slot] = int(rows[0][0])
        return self._used[slot]

    def used(self, provider: str, key: str, tier: FreeTier, when: datetime) -> int:
        slot = (provider, key, free_period(tier, when))
        return self._load(slot, free_period_end(tier, when)) + self._added.get(slot, 0)

    def add(self, provider: str, key: str, tier: FreeTier, when: datetime, units: int) -> None:
        slot = (provider, key, free_period(tier, when))
        self._added[slot] = self._added.get(slot, 0) + units

    def write(self) -> None:
        self._tx.many(
            "UPDATE free_units SET units = units + ? WHERE provider = ? AND key = ? AND period = ?",
            [(n, *slot) for slot, n in sorted(self._added.items()) if n],
        )


def _free_slots(calls: Iterable[Call], price: Pricer) -> list[tuple[str, str, str, str]]:
    """The free-tier rows pricing these calls will read (a dry run of the pricing), to lock them first."""
    slots = []
    for c in calls:

        def probe(tier: FreeTier, when: datetime, c: Call = c) -> int:
            slots.append((c.provider, c.key, free_period(tier, when), free_period_end(tier, when)))
            return 0

        with suppress(Exception):  # the real pricing will report it
            price(c, probe)
        c.cost, c.priced, c.free_units = None, False, 0
    return slots


def _group(start: identity.Known, pending: identity.KnownSet) -> list[identity.Known]:
    """``start`` and every pending span linked to it, directly or through another."""
    group, todo = [start], [start]
    while todo:
        k = todo.pop()
        for other, _ in pending.related(k):
            if other not in group:
                group.append(other)
                todo.append(other)
    return group


def _chunks(values: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


_ROW_COST, _ROW_DAY = CALL_COLUMNS.index("cost_nusd"), CALL_COLUMNS.index("day")


def _call_row(c: Call, instance: str) -> tuple[Any, ...]:
    return (
        c.start_ns,
        utc_day(c.start_ns),
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
        to_nano(c.cost),
        to_nano(c.book_cost) if c.book_cost is not None else 0,
        c.cost_source,
        int(c.priced),
        int(c.estimated),
        c.free_units,
        c.trace_id.hex(),
        c.span_id.hex(),
        c.parent_span_id.hex(),
        c.response_id,
        instance,
        identity.rank(c),
    )


def _pending_row(c: Call, me: identity.Known, settle_at_ns: int, instance: str) -> tuple[Any, ...]:
    """The identity columns come from the span's ``Known`` (decided on already), the call as JSON."""
    return (
        me.trace_id,
        me.span_id,
        me.parent_span_id,
        me.provider,
        me.response_id,
        me.start_ns,
        me.end_ns,
        me.rank,
        settle_at_ns,
        instance,
        _call_json(c),
    )


def _drop_pending(tx: Tx, spans: Sequence[identity.Known]) -> None:
    """Pending spans a better span of their call replaced, or that were settled."""
    tx.many("DELETE FROM pending WHERE trace_id = ? AND span_id = ?", [(k.trace_id, k.span_id) for k in spans])


def _call_json(c: Call) -> str:
    values = {}
    for name in _CALL_FIELDS:
        value = getattr(c, name)
        if isinstance(value, bytes):
            value = value.hex()
        elif isinstance(value, Decimal):
            value = str(value)
        values[name] = value
    return json.dumps(values, separators=(",", ":"))


_BYTES_FIELDS = ("trace_id", "span_id", "parent_span_id")


def _call_from_json(text: str) -> Call:
    values = json.loads(text)
    for name in _BYTES_FIELDS:
        values[name] = bytes.fromhex(values[name])
    for name in ("cost", "reported_cost", "book_cost"):  # Decimal fields
        if values.get(name) is not None:
            values[name] = Decimal(values[name])
    return Call(**{k: v for k, v in values.items() if k in _CALL_FIELDS})


def _sum(expression: str) -> str:
    """An integer sum in both backends (PostgreSQL's SUM of BIGINT is NUMERIC)."""
    return f"CAST(SUM({expression}) AS BIGINT)"


class _SQLiteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, tuple(params)).fetchall()

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn.execute(sql, tuple(params)).rowcount

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._conn.executemany(sql, rows)

    def insert_new(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[bool]:
        """All rows in one executemany; only when some were skipped (a retry racing a lockless
        writer: identity was checked under the database lock) are the new ones read back."""
        if not rows:
            return []
        table = sql.split(None, 3)[2]
        (last,) = self._conn.execute(f"SELECT COALESCE(MAX(rowid), 0) FROM {table}").fetchone()
        before = self._conn.total_changes
        self._conn.executemany(sql, rows)
        if self._conn.total_changes - before == len(rows):
            return [True] * len(rows)
        new = self._conn.execute(f"SELECT trace_id, span_id FROM {table} WHERE rowid > ?", (last,)).fetchall()
        return inserted_rows(sql, rows, new)

    @staticmethod
    def in_list(column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} IN ({Dialect.params(len(values))})", list(values)


WAL_PAGES = 10_000  # SQLite's write-ahead log is copied back into the file at this size (40 MB)


class SQLiteLedger(Ledger):
    """One process's ledger. ``writer=True`` (``aispend serve``) takes the file for itself: a
    second process on the same file is refused (replicas share PostgreSQL instead). Reads use
    READERS connections of their own (WAL: they see every commit and never wait for a write),
    opened with the write connection, so they are on the file whose identity is checked; a
    ledger in memory is one connection, reads included."""

    dialect = SQLITE
    READERS = 4

    def __init__(self, path: str, writer: bool = False, busy_timeout: float = BUSY_TIMEOUT_S) -> None:
        super().__init__()
        self.path = path
        self.url = f"sqlite:///{path}"
        self._owner = None
        self._checkpointer: Checkpointer | None = None
        self.identity: FileIdentity | None = None
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            problem = unwritable(path) if writer else None
            if problem is not None:
                raise ValueError(f"cannot open the SQLite ledger {Path(path).resolve()}: {problem}")
            if writer:
                self._owner = _take_file(path)
        try:
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=busy_timeout)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            # A batch changes a page per span in each index by id (they are random): at SQLite's
            # default of 1,000 pages the WAL was copied back into the file after nearly every
            # batch, each page once per batch; at 10,000 a page changed by several batches is
            # copied once (a batch's commit took half the time). The file is cut back after. A
            # thread of the writer's copies it meanwhile (ledger_checkpoint), off the commits' path.
            self._conn.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
            self._conn.execute(f"PRAGMA journal_size_limit={WAL_PAGES * 4096}")
            self._create()
            if path != ":memory:":
                self._readers = ReadPool(lambda: self._read_connection(path, busy_timeout), self.READERS)
                self._readers.open(self.READERS)
            if writer and path != ":memory:":
                self._checkpointer = Checkpointer(path)
        except (sqlite3.Error, LedgerError) as exc:
            if self._readers is not None:
                self._readers.close()
            if self._owner is not None:
                self._owner.close()
            reason = describe(exc.__cause__ or exc) if isinstance(exc, LedgerError) else describe(exc)
            where = path if path == ":memory:" else Path(path).resolve()
            raise ValueError(f"cannot open the SQLite ledger {where}: {reason}") from None
        if path != ":memory:":
            self.identity = FileIdentity(path)

    @staticmethod
    def _read_connection(path: str, busy_timeout: float) -> sqlite3.Connection:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=busy_timeout)
        conn.execute("PRAGMA query_only=ON")  # a read connection never writes, whatever it is given
        return conn

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        super().close()
        if self._owner is not None:
            self._owner.close()

    def problem(self) -> str | None:
        return self.identity.problem() if self.identity is not None else None

    def _tables_sql(self) -> str:
        return "SELECT name FROM sqlite_master WHERE type = 'table'"

    def _columns(self, tx: Tx, table: str) -> list[str]:
        return [r[1] for r in tx.read(f"PRAGMA table_info({table})")]

    @contextmanager
    def transaction(self, keys: Sequence[str] = ()) -> Iterator[Tx]:
        # BEGIN IMMEDIATE takes the database's write lock: every key is held. The file is checked
        # first: a ledger deleted or replaced while running must not acknowledge anything.
        problem = self.problem()
        if problem is not None:
            raise LedgerError(f"ledger write failed: {problem}")
        try:
            with self._lock:
                self._conn.execute(self.dialect.begin)
                try:
                    yield _SQLiteTx(self._conn)
                    self._conn.execute("COMMIT")
                except BaseException:
                    # SQLite has already rolled back after some errors (disk full): rolling back
                    # again would replace the real reason with "no transaction is active"
                    if self._conn.in_transaction:
                        with suppress(sqlite3.Error):
                            self._conn.execute("ROLLBACK")
                    raise
        except (sqlite3.Error, OverflowError) as exc:
            raise LedgerError(f"ledger write failed: {describe(exc)}") from exc

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            with self._lock:
                return self._conn.execute(sql, tuple(params)).rowcount
        except sqlite3.Error as exc:
            raise LedgerError(f"ledger write failed: {describe(exc)}") from exc

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            if self._readers is None:
                with self._lock:
                    return self._conn.execute(sql, tuple(params)).fetchall()
            with self._readers.connection() as conn:
                return conn.execute(sql, tuple(params)).fetchall()
        except (sqlite3.Error, PoolClosed) as exc:
            raise LedgerError(f"ledger read failed: {describe(exc)}") from exc


def _take_file(path: str) -> Any:
    """An exclusive lock next to the SQLite file, held while this process runs."""
    import fcntl

    handle = open(f"{path}.lock", "a+")  # noqa: SIM115 - held until close()
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ValueError(
            f"the SQLite ledger {path} is in use by another aispend serve; a SQLite ledger is for one "
            "process: run replicas on one PostgreSQL ledger (--ledger postgresql://...)"
        ) from None
    return handle


def open_ledger(url: str, writer: bool = False) -> Ledger:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``sqlite:///:memory:``,
    ``postgresql://user:password@host:port/database`` or ``none`` (kept in memory: metrics only)."""
    if url.strip().lower() in ("", "none", "off"):
        return SQLiteLedger(":memory:")
    if url.startswith("sqlite://"):
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else url[len("sqlite://") :]
        return SQLiteLedger(path or ":memory:", writer=writer)
    if url.startswith(("postgres://", "postgresql://")):
        from aispend.exporter.ledger_postgres import PostgresLedger

        return PostgresLedger(url)
    raise ValueError(f"unsupported ledger URL {url!r} (use sqlite:///path, postgresql://... or none)")


def is_ephemeral(url: str) -> bool:
    return url.strip().lower() in ("", "none", "off") or url.rstrip("/").endswith(":memory:")


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()
