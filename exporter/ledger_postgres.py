"""The ledger in PostgreSQL (psycopg 3): the same SQL as SQLite, for a ledger a team shares.

Install with ``pip install 'aispend[postgres]'`` and pass ``--ledger postgresql://user:pw@host/db``.
Several replicas share one database: each transaction first takes PostgreSQL advisory locks on
its spans' identity keys (bucketed for big batches, sorted, so never a deadlock; see ``_lock_plan``),
then decides. One write connection per process, used under the ledger's lock (the pipeline writes
one batch at a time anyway); reads have a small pool of their own (``ledger_readers``), so a slow
console read never holds up a write. A
connection that breaks is replaced on the next use; until then writes raise ``LedgerError`` and
the receivers answer with a retryable status, so nothing is lost while the database is away.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import urlsplit

from aispend.exporter.ledger import POSTGRES, Ledger, LedgerError, Tx, inserted_rows, lock_id, redacted
from aispend.exporter.ledger_readers import PoolClosed, ReadPool

try:
    import psycopg
except ImportError:  # pragma: no cover - exercised only without the extra
    psycopg = None  # type: ignore[assignment]


def _sql(sql: str) -> str:
    return sql.replace("?", "%s")  # the shared SQL has no literal "?" or "%"


_INSERT = re.compile(r"INSERT INTO (\w+) \(([\w, ]+)\) VALUES \([?, ]+\)(.*)", re.S)
Types = dict[str, dict[str, str]]  # table -> column -> SQL type


def _as_set(sql: str, types: Types) -> tuple[str, tuple[str, ...]] | None:
    """The shared one-row ``INSERT ... VALUES (?, ...) ...`` as one statement over the rows'
    columns, each a JSON array, and its column names; None for any other statement (or a table
    whose column types are not known).

    One statement per batch instead of one per row: psycopg dumps one string per column instead of
    each value (a JSON encoding in C), and the server plans and runs the insert once, the rows in
    the given order (so concurrent upserts still lock shared rows in one order)."""
    m = _INSERT.fullmatch(sql)
    if m is None or m.group(1) not in types:
        return None
    table, columns, rest = m.group(1), m.group(2), m.group(3)
    names = tuple(c.strip() for c in columns.split(","))
    known = types[table]
    if not all(n in known for n in names):
        return None
    values = ", ".join(f"v{i}::{known[n]}" for i, n in enumerate(names))
    arrays = ", ".join("json_array_elements_text(%s)" for _ in names)
    aliases = ", ".join(f"v{i}" for i in range(len(names)))
    return f"INSERT INTO {table} ({columns}) SELECT {values} FROM ROWS FROM ({arrays}) AS r({aliases}){rest}", names


def _json_columns(rows: Sequence[Sequence[Any]]) -> list[str]:
    dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
    return [dumps(column) for column in zip(*rows, strict=True)]


Sets = dict[str, "tuple[str, tuple[str, ...]] | None"]  # shared SQL -> _as_set(...)


class _PostgresTx:
    def __init__(self, cur: Any, types: Types, sets: Sets) -> None:
        self._cur = cur
        self._types = types
        self._sets = sets  # the ledger's, so each statement is rewritten once

    def _set(self, sql: str) -> tuple[str, tuple[str, ...]] | None:
        if sql not in self._sets:
            self._sets[sql] = _as_set(sql, self._types)
        return self._sets[sql]

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._cur.execute(_sql(sql), tuple(params))
        return self._cur.fetchall()

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._cur.execute(_sql(sql), tuple(params))
        return self._cur.rowcount

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        as_set = self._set(sql)
        if as_set is None:
            self._cur.executemany(_sql(sql), rows)
        else:
            self._cur.execute(as_set[0], _json_columns(rows))

    def insert_new(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[bool]:
        """Insert-or-skip of rows keyed by (trace_id, span_id); which of them were new."""
        if not rows:
            return []
        as_set = self._set(sql)
        if as_set is None:
            raise ValueError(f"not an insert into a ledger table: {sql[:60]}")
        self._cur.execute(as_set[0] + " RETURNING trace_id, span_id", _json_columns(rows))
        return inserted_rows(sql, rows, self._cur.fetchall())

    @staticmethod
    def in_list(column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
        # one JSON string instead of an array psycopg would dump value by value
        return f"{column} = ANY(ARRAY(SELECT json_array_elements_text(?)))", [json.dumps(list(values))]


class PostgresLedger(Ledger):
    dialect = POSTGRES
    locks_keys = True
    READERS = 4  # read connections, opened when first needed

    def __init__(self, url: str, connect_timeout: float = 10.0) -> None:
        if psycopg is None:
            raise ValueError("a postgresql:// ledger needs psycopg: pip install 'aispend[postgres]'")
        super().__init__()
        self.url = url
        self._connect_timeout = connect_timeout
        self._types: Types = {}  # known after the schema is made: until then, rows go one by one
        self._sets: Sets = {}
        self._readers = ReadPool(self._connect, self.READERS, usable=lambda c: not (c.closed or c.broken))
        try:
            self._conn = self._connect()
            self._create()  # under the "schema" lock: replicas starting together take turns
            self._types = self._column_types()
            self._sets.clear()  # rewritten before the types were known: one row at a time
        except (psycopg.Error, LedgerError) as exc:
            self._readers.close()
            raise ValueError(f"cannot open the PostgreSQL ledger at {redacted(url)}: {_reason(exc, url)}") from None

    def _connect(self) -> Any:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, int(self._connect_timeout)))

    def _connection(self) -> Any:
        if self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        return self._conn

    def _tables_sql(self) -> str:
        return "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"

    def _column_types(self) -> Types:
        types: Types = {}
        for table, column, data_type in self._read(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema()"
        ):
            types.setdefault(table, {})[column] = data_type
        return types

    def _columns(self, tx: Tx, table: str) -> list[str]:
        return [
            r[0]
            for r in tx.read(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = ? ORDER BY ordinal_position",
                (table,),
            )
        ]

    @contextmanager
    def transaction(self, keys: Sequence[str] = ()) -> Iterator[Tx]:
        try:
            with self._lock:
                for retry in (False, True):
                    conn = self._connection()
                    stack = ExitStack()
                    try:  # a connection the server dropped is found dead here, before any work: reconnect once
                        stack.enter_context(conn.transaction())
                        cur = stack.enter_context(conn.cursor())
                        for statement, locks in zip(_LOCKS, _lock_plan(keys or ["schema"]), strict=True):
                            if locks:
                                cur.execute(statement, (locks,))
                        # Every statement of a write finds its rows by key. A ledger the server has not
                        # analysed yet (new, or just filled) would have its lookups of a batch's
                        # hundreds of ids planned as scans of the whole calls table, growing with it.
                        cur.execute("SET LOCAL enable_seqscan = off")
                    except psycopg.Error:
                        stack.close()
                        if retry or not conn.broken:
                            raise
                        continue
                    with stack:
                        yield _PostgresTx(cur, self._types, self._sets)
                    return
        except (psycopg.Error, OverflowError) as exc:
            raise LedgerError(f"ledger write to {redacted(self.url)} failed: {_reason(exc, self.url)}") from exc

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._statement(sql, params)[0]

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """On a read connection; one the server dropped is found dead when used: the read then runs
        once more on a new connection (the pool's other idle ones are dropped too: they went with it)."""
        assert self._readers is not None
        values = tuple(params)
        for retry in (False, True):
            conn = None
            try:
                with self._readers.connection() as conn:
                    return conn.execute(_sql(sql), values).fetchall()
            except psycopg.Error as exc:
                if retry or conn is None or not conn.broken:
                    raise LedgerError(f"ledger query on {redacted(self.url)} failed: {_reason(exc, self.url)}") from exc
                self._readers.discard_idle()
            except PoolClosed as exc:
                raise LedgerError(f"ledger query on {redacted(self.url)} failed: {exc}") from exc
        raise AssertionError("unreachable")

    def _statement(self, sql: str, params: Iterable[Any], fetch: bool = False) -> tuple[int, list[tuple[Any, ...]]]:
        """One statement (autocommit) on the write connection. A connection the server dropped (a
        restart, an idle timeout) is only found dead when used: the statement then runs once more on
        a new connection. Every statement run this way (the prune, the budget-override upsert) can
        safely run twice."""
        values = tuple(params)
        with self._lock:
            for retry in (False, True):
                conn = None
                try:
                    conn = self._connection()
                    cur = conn.execute(_sql(sql), values)
                    return cur.rowcount, cur.fetchall() if fetch else []
                except psycopg.Error as exc:
                    if retry or conn is None or not conn.broken:
                        raise LedgerError(
                            f"ledger query on {redacted(self.url)} failed: {_reason(exc, self.url)}"
                        ) from exc
        raise AssertionError("unreachable")


# Advisory locks live in PostgreSQL's shared lock table (max_locks_per_transaction x max_connections:
# 6,400 by default, for every session at once), so a transaction may not take one per key of a big
# batch (a Collector sends 8,192 spans: 16,384 keys, "out of shared memory", retried for ever). Keys
# fall into _BUCKETS buckets: a small batch takes its buckets shared and its keys exclusive, a big one
# (more than _EXACT_KEYS keys) takes its buckets exclusive. Any two transactions with a key in
# common still exclude each other; a transaction holds at most _EXACT_KEYS + _BUCKETS locks.
# Buckets are taken before keys, each in ascending order, so there is no deadlock. Bucket locks use
# the two-int key space, which does not overlap the bigint one.
_BUCKETS = 256
_EXACT_KEYS = 1024
_BUCKET_CLASS = 0x61697370  # "aisp"
_LOCKS = (  # run in this order: buckets shared, buckets exclusive, keys
    f"SELECT pg_advisory_xact_lock_shared({_BUCKET_CLASS}, b) FROM unnest(%s::int[]) AS b",
    f"SELECT pg_advisory_xact_lock({_BUCKET_CLASS}, b) FROM unnest(%s::int[]) AS b",
    "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k",
)


def _lock_plan(keys: Sequence[str]) -> tuple[list[int], list[int], list[int]]:
    """(buckets to lock shared, buckets to lock exclusive, keys to lock exclusive), each sorted."""
    ids = sorted({lock_id(k) for k in keys})
    buckets = sorted({i % _BUCKETS for i in ids})
    if len(ids) <= _EXACT_KEYS:
        return buckets, [], ids
    return [], buckets, []


def _reason(exc: BaseException, url: str) -> str:
    """The first line of the driver's message, never the password."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text
