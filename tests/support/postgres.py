"""A throwaway PostgreSQL server for the ledger tests: initdb in a temp dir, 127.0.0.1 only.

Debian's ``postgresql`` package puts the server binaries in /usr/lib/postgresql/<version>/bin
(not on PATH); ``make test`` installs it. A missing server FAILS the tests that need it. initdb
refuses to run as root, so as root the server runs as the ``postgres`` user the package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

try:
    import psycopg
except ImportError:  # the dev extra installs it
    psycopg = None  # type: ignore[assignment]

INSTALL_HINT = "apt-get install postgresql (Debian/Ubuntu), or run `make test`, which installs it"


def server_binaries() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    found = shutil.which("initdb")
    if found:
        candidates.append(str(Path(found).parent))
    for directory in candidates:
        if all(os.access(Path(directory, name), os.X_OK) for name in ("initdb", "postgres")):
            return Path(directory)
    pytest.fail(f"PostgreSQL server binaries (initdb, postgres) not found. Install them: {INSTALL_HINT}", pytrace=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self) -> None:
        if psycopg is None:
            pytest.fail("psycopg is not installed: pip install -e '.[dev]' (or 'psycopg[binary]>=3.1')", pytrace=False)
        self.bin = server_binaries()
        self.base = Path(tempfile.mkdtemp(prefix="aispend-pg-"))
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._as: list[str] = []
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail(f"running as root needs the 'postgres' user to start PostgreSQL: {INSTALL_HINT}")
            os.chown(self.base, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def start(self) -> PostgresServer:
        """Start the server (initialising the data directory the first time)."""
        data = self.base / "data"
        if not data.exists():
            initdb = [str(self.bin / "initdb"), "-D", str(data), "-U", "aispend", "--auth=trust", "--no-sync"]
            subprocess.run(
                [*self._as, *initdb, "-E", "UTF8"],
                check=True,
                capture_output=True,
            )
        settings = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        listen = ["-p", str(self.port), "-h", "127.0.0.1", "-k", str(self.base)]
        with (self.base / "server.log").open("ab") as log:  # a file, not a pipe nobody drains
            self.proc = subprocess.Popen(
                [*self._as, str(self.bin / "postgres"), "-D", str(data), *listen, *settings],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = (self.base / "server.log").read_text(errors="replace")
                    self.stop()
                    pytest.fail(f"PostgreSQL did not start: {err[-2000:]}")
                time.sleep(0.1)

    def url(self, database: str) -> str:
        return f"postgresql://aispend@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self, remove: bool = True) -> None:
        """Stop the server; with ``remove=False`` its data stays for the next ``start()``."""
        if self.proc is not None and self.proc.poll() is None:
            # pg_ctl as the server's own user (signals to runuser need not reach the server)
            subprocess.run(
                [*self._as, str(self.bin / "pg_ctl"), "stop", "-D", str(self.base / "data"), "-m", "fast"],
                capture_output=True,
                timeout=60,
            )
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if remove:
            shutil.rmtree(self.base, ignore_errors=True)
