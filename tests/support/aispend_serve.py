"""`aispend serve` as a restartable process on fixed ports (so a collector in front of it finds it
again after a kill -9), logging to a file nobody has to drain; and the ledger's own call counts."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.support.collector import free_port
from tests.support.processes import LoggedProcess

try:
    import psycopg
except ImportError:  # the dev extra installs it
    psycopg = None  # type: ignore[assignment]


class Aispend(LoggedProcess):
    """One aispend replica; ``start()`` returns once it printed its start-up line (receivers open)."""

    def __init__(self, tmp: Path, ledger: str, name: str = "aispend", *extra: str) -> None:
        self.tmp = tmp
        self.ledger = ledger
        self.name = name
        self.ports = {k: free_port() for k in ("otlp_grpc", "otlp_http", "metrics")}
        self.extra = extra
        self.log_path = tmp / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.ports['otlp_grpc']}"

    def start(self, timeout: float = 60.0) -> Aispend:
        args = [
            *("--otlp-grpc", self.grpc_address, "--otlp-http", f"127.0.0.1:{self.ports['otlp_http']}"),
            *("--metrics", f"127.0.0.1:{self.ports['metrics']}", "--ledger", self.ledger, *self.extra),
        ]
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aispend.cli", "serve", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.tmp,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(r"^aispend serve: .*OTLP/gRPC on", self.log()[offset:], re.MULTILINE):
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()[offset:][-3000:]}")
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"{self.name} did not start in {timeout}s:\n{self.log()[offset:][-3000:]}")


def ledger_calls(url: str) -> tuple[int, int]:
    """(rows in the ledger's calls table, distinct (trace_id, span_id) among them): equal unless a call
    was counted twice."""
    query = "SELECT count(*), count(DISTINCT trace_id || ':' || span_id) FROM calls"
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not Path(path).exists():
            return 0, 0
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as conn:
            try:
                rows, distinct = conn.execute(query).fetchone()
            except sqlite3.OperationalError as exc:  # not created yet
                if "no such table" in str(exc):
                    return 0, 0
                raise
        return int(rows), int(distinct)
    assert psycopg is not None, "psycopg is not installed: pip install -e '.[dev]'"
    with psycopg.connect(url) as conn:
        exists = conn.execute("SELECT to_regclass('calls') IS NOT NULL").fetchone()[0]
        if not exists:
            return 0, 0
        rows, distinct = conn.execute(query).fetchone()
    return int(rows), int(distinct)
