"""Copies a SQLite ledger's write-ahead log back into its file on a thread of its own.

SQLite's writer copies the log itself when it reaches ``wal_autocheckpoint`` pages, inside the
commit that crossed it: the batch holding the ledger waited for tens of megabytes of copying and
two fsyncs. Here a PASSIVE checkpoint runs every ``interval`` on a connection of its own: it
copies what was committed since the last one, never waits for the writer or holds it up, and
releases the GIL while it copies. The writer's own checkpoint stays as the backstop, and it is
what resets the log (it holds the write lock, so it copies everything): by then little is left.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from aispend.exporter.ledger_health import BUSY_TIMEOUT_S, describe

logger = logging.getLogger("aispend.exporter")


class Checkpointer:
    def __init__(self, path: str, interval: float = 0.2) -> None:
        self.interval = interval
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        self._stop = threading.Event()
        self._failed = False
        self._thread = threading.Thread(target=self._run, name="ledger-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.checkpoint()

    def checkpoint(self) -> None:
        """One PASSIVE checkpoint. A failure is logged once (SQLite's own checkpoint still runs)."""
        try:
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            if not self._failed:
                logger.warning("background checkpoint of the SQLite ledger failed (%s); commits do it", describe(exc))
                self._failed = True

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._conn.close()
