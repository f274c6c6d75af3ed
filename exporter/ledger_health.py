"""Is the SQLite ledger still the file it opened, and what a SQLite failure means to an operator.

A ledger file deleted or replaced while the exporter runs is not an error to SQLite: its open
connection keeps writing to the unlinked inode, every export is acknowledged, and a restart finds
none of it. So the ledger compares the file's identity (device and inode) with the one it opened
before every write transaction; a mismatch makes the write fail (the receivers answer retryable)
and ``/healthz`` report it. SQLite's own messages are turned into what an operator can act on:
"disk full" rather than the "cannot rollback" that follows it, a lock held by another process
after a wait well below an OTLP client's usual 10 s deadline.
"""

from __future__ import annotations

import os
from pathlib import Path

# How long a write waits for another process's lock on the ledger. OTLP exporters give an export
# 10 s by default; a prompt retryable answer well inside that lets them retry instead of timing out.
BUSY_TIMEOUT_S = 2.0

# primary result codes (https://sqlite.org/rescode.html)
_BUSY, _LOCKED, _READONLY, _IOERR, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 13, 14, 26


class FileIdentity:
    """The (device, inode) of a ledger file at open, compared with the path's current one."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()
        st = os.stat(self.path)
        self._identity = (st.st_dev, st.st_ino)

    def problem(self) -> str | None:
        """Why the path no longer holds the file that was opened, or None if it still does."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return f"the ledger file {self.path} is gone (deleted or moved while running); restart to open a new one"
        except OSError as exc:
            return f"the ledger file {self.path} cannot be checked: {exc.strerror}"
        if (st.st_dev, st.st_ino) != self._identity:
            return f"the ledger file {self.path} was replaced by another file while running; restart to open it"
        return None


def unwritable(path: str | Path) -> str | None:
    """Why the ledger at ``path`` could not be written (None: it can). SQLite opens a file it may
    not write read-only without saying so and fails only at the first commit; access(2) knows,
    for file modes, immutable files and read-only mounts alike (even for root)."""
    path = Path(path)
    if path.exists() and not os.access(path, os.W_OK):
        return "the ledger is read-only (the file, or the file system it is on)"
    folder = path.parent
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        return f"the ledger's folder {folder.resolve()} is read-only (SQLite keeps its -wal and -shm files beside it)"
    return None


def describe(exc: BaseException) -> str:
    """One line an operator can act on, for a SQLite error."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc)
    if primary == _FULL:
        return f"disk full ({text})"
    if primary in (_BUSY, _LOCKED):
        return f"the ledger is locked by another process (waited {BUSY_TIMEOUT_S:g} s: {text})"
    if primary == _READONLY:
        return f"the ledger is read-only ({text})"
    if primary == _NOTADB:
        return f"not a SQLite database ({text})"
    if primary == _CANTOPEN:
        return f"cannot open the file ({text})"
    if primary == _IOERR:
        return f"I/O error ({text})"
    return text
