"""The ledger in PostgreSQL (psycopg 3): the same SQL as SQLite, for a ledger a team shares.

Install with ``pip install 'aispend[postgres]'`` and pass ``--ledger postgresql://user:pw@host/db``.
One connection, used under the ledger's lock (the pipeline writes one batch at a time anyway). A
connection that breaks is replaced on the next use; until then writes raise ``LedgerError`` and
the receivers answer with a retryable status, so nothing is lost while the database is away.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from aispend.exporter.ledger import POSTGRES, Ledger, LedgerError, redacted

try:
    import psycopg
except ImportError:  # pragma: no cover - exercised only without the extra
    psycopg = None  # type: ignore[assignment]


def _sql(sql: str) -> str:
    return sql.replace("?", "%s")  # the shared SQL has no literal "?" or "%"


class PostgresLedger(Ledger):
    dialect = POSTGRES

    def __init__(self, url: str, connect_timeout: float = 10.0) -> None:
        if psycopg is None:
            raise ValueError("a postgresql:// ledger needs psycopg: pip install 'aispend[postgres]'")
        super().__init__()
        self.url = url
        self._connect_timeout = connect_timeout
        self._insert_call = _sql(self._insert_call)
        self._upsert_daily = _sql(self._upsert_daily)
        self._upsert_durations = _sql(self._upsert_durations)
        try:
            self._conn = self._connect()
            with self._conn.transaction():
                for statement in self.dialect.schema():
                    self._conn.execute(statement)
            self._migrate()
        except (psycopg.Error, LedgerError) as exc:
            raise ValueError(f"cannot open the PostgreSQL ledger at {redacted(url)}: {_reason(exc, url)}") from None

    def _connect(self) -> Any:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, int(self._connect_timeout)))

    def _connection(self) -> Any:
        if self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        return self._conn

    def _transaction(self, statements: Sequence[tuple[str, Sequence[Sequence[Any]]]]) -> None:
        try:
            with self._lock:
                conn = self._connection()
                with conn.transaction(), conn.cursor() as cur:
                    for sql, rows in statements:
                        if rows:
                            cur.executemany(sql, rows)
        except (psycopg.Error, OverflowError) as exc:
            raise LedgerError(f"ledger write to {redacted(self.url)} failed: {_reason(exc, self.url)}") from exc

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._statement(sql, params)[0]

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        return self._statement(sql, params, fetch=True)[1]

    def _statement(self, sql: str, params: Iterable[Any], fetch: bool = False) -> tuple[int, list[tuple[Any, ...]]]:
        """One statement (autocommit). A connection the server dropped (a restart, an idle timeout)
        is only found dead when used: the statement then runs once more on a new connection, so
        e.g. a free-tier lookup after a database restart is not taken for a pricing failure. Every
        statement run this way (reads, the prune, the budget-override upsert) can safely run twice."""
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


def _reason(exc: BaseException, url: str) -> str:
    """The first line of the driver's message, never the password."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text
