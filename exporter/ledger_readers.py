"""The ledger's read connections: a small pool used by reads only, apart from the write connection.

A console page or ``/v1`` report that reads for a second must not hold up a batch write, nor wait
for one: SQLite in WAL mode lets other connections read while one writes (each statement sees what
was committed when it started), and PostgreSQL has its own snapshot per statement. So reads take a
connection of their own from here, and the write connection and its lock are for writes only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any


class PoolClosed(RuntimeError):
    """A read after the ledger was closed."""


class ReadPool:
    """At most ``size`` connections, made by ``connect`` when first needed; a read waits for a
    free one only when all are in use. One that ``usable`` says is dead is closed, not reused."""

    def __init__(self, connect: Callable[[], Any], size: int = 4, usable: Callable[[Any], bool] | None = None) -> None:
        self._connect = connect
        self._size = size
        self._usable = usable or (lambda _conn: True)
        self._idle: list[Any] = []
        self._made = 0
        self._closed = False
        self._cond = threading.Condition()

    def open(self, n: int) -> None:
        """Open ``n`` connections now (a backend whose later connections could reach another file)."""
        for _ in range(min(n, self._size)):
            conn = self._connect()
            with self._cond:
                self._made += 1
                self._idle.append(conn)

    @contextmanager
    def connection(self) -> Iterator[Any]:
        with self._cond:
            while not self._idle and self._made >= self._size and not self._closed:
                self._cond.wait()
            if self._closed:
                raise PoolClosed("the ledger is closed")
            conn = self._idle.pop() if self._idle else None
            if conn is None:
                self._made += 1
        if conn is None:
            try:
                conn = self._connect()
            except BaseException:
                self._release(None)
                raise
        try:
            yield conn
        finally:
            self._release(conn)

    def _release(self, conn: Any) -> None:
        with self._cond:
            if conn is not None and not self._closed and self._usable(conn):
                self._idle.append(conn)
            else:
                self._made -= 1
                if conn is not None:
                    with suppress(Exception):
                        conn.close()
            self._cond.notify()

    def discard_idle(self) -> None:
        """Close the idle connections (one was found dropped: the server restarted, so were they)."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._made -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            with suppress(Exception):
                conn.close()

    def close(self) -> None:
        with self._cond:
            self._closed = True  # from now on a connection given back is closed, not kept
        self.discard_idle()
