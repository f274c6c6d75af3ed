"""Where the ledger lives: the one default location every command shares, and the file a
``sqlite://`` URL names.

The default is the user's data directory (``$XDG_DATA_HOME/aispend/ledger.sqlite``, else
``~/.local/share/aispend/ledger.sqlite``), so ``aispend serve``, ``aispend usage`` and ``make run``
read and write the same file wherever they are started from. ``serve`` creates the ledger;
``usage`` only reads one, so a ledger that does not exist is an error there, not a new empty file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def default_ledger_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    data_home = env.get("XDG_DATA_HOME") or ""
    base = Path(data_home) if Path(data_home).is_absolute() else Path.home() / ".local" / "share"
    return base / "aispend" / "ledger.sqlite"


def default_ledger_url() -> str:
    return f"sqlite:///{default_ledger_path()}"  # an absolute path: sqlite:////home/...


def sqlite_file(url: str) -> Path | None:
    """The absolute file a ``sqlite:///relative`` or ``sqlite:////absolute`` URL names (None: not a
    SQLite file, e.g. ``:memory:``, PostgreSQL or ``none``)."""
    if not url.startswith("sqlite://"):
        return None
    path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else url[len("sqlite://") :]
    if path in ("", ":memory:"):
        return None
    return Path(path).resolve()


def shown(url: str) -> str:
    """The ledger as the start-up line names it: a SQLite ledger by its resolved absolute path."""
    from aispend.exporter.ledger import redacted

    path = sqlite_file(url)
    return str(path) if path is not None else redacted(url)


class MissingLedger(ValueError):
    """A command that only reads the ledger was pointed at a file that does not exist."""


def require_existing(url: str) -> None:
    path = sqlite_file(url)
    if path is not None and not path.exists():
        raise MissingLedger(
            f"no ledger at {path} (aispend serve creates it there; pass --ledger or set AISPEND_LEDGER "
            "to read another one)"
        )
