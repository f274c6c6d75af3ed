"""The SQLite ledger's file-system faults, made for real: a ledger file deleted or replaced while
the exporter runs, a lock held by another process, a full disk (a small tmpfs), and a read-only
ledger at start (an immutable file and a read-only mount). Each one must give the sender a prompt
retryable answer (never an acknowledgement of what was not kept) or a one-line start-up error.

Mounting a tmpfs and ``chattr +i`` need root (CAP_SYS_ADMIN / CAP_LINUX_IMMUTABLE); CI runs as root.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.exporter.server import running, scrape, value
from tests.exporter.spans import llm, otlp_request

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _export(port: int, n: int = 5, timeout: float = 10.0) -> None:
    """One export of ``n`` calls with the OTLP SDK's default 10 s deadline; raises grpc.RpcError."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        export = channel.unary_unary(EXPORT)
        export(otlp_request([llm("openai", "gpt-4o", 100, 10) for _ in range(n)]).SerializeToString(), timeout=timeout)


def _status(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _unavailable(port: int) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as failed:
        _export(port)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE, failed.value
    return failed.value


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        pytest.fail(f"{what} needs root (CAP_SYS_ADMIN); run the suite as root, as .ci/run does")


@contextlib.contextmanager
def _tmpfs(tmp_path: Path, size: str) -> Iterator[Path]:
    _require_root("mounting a small tmpfs")
    mount = tmp_path / "mnt"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


# -- item 13: a ledger deleted or replaced while running ----------------------------------------
@pytest.mark.parametrize("fault", ["deleted", "replaced"])
def test_a_ledger_deleted_or_replaced_while_running_is_refused_and_reported(tmp_path, fault):
    path = tmp_path / "ledger.sqlite"
    with running(ledger=f"sqlite:///{path}") as exporter:
        grpc_port, api = exporter.ports["otlp_grpc"], exporter.ports["metrics"]
        _export(grpc_port)
        assert _status(api, "/healthz")[1]["status"] == "ok"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        if fault == "replaced":
            sqlite3.connect(path).execute("CREATE TABLE other (x)").connection.close()
        error = _unavailable(grpc_port)
        assert str(path) in error.details() and ("gone" in error.details() or "replaced" in error.details())
        status, body = _status(api, "/healthz")
        assert status == 503 and body["status"] == "failing" and str(path) in body["reason"], body
        # nothing was counted for the refused export: the sender keeps it and retries
        assert value(scrape(api), "aispend_requests_total") == 5


# -- item 14: a lock held by another process ----------------------------------------------------
def test_a_locked_ledger_is_answered_retryable_well_inside_the_client_deadline(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with running(ledger=f"sqlite:///{path}") as exporter:
        grpc_port, api = exporter.ports["otlp_grpc"], exporter.ports["metrics"]
        _export(grpc_port)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process writing (or a tool holding the write lock)
        try:
            errors: list[grpc.RpcError] = []
            sender = threading.Thread(target=lambda: errors.append(_unavailable(grpc_port)))
            sender.start()
            time.sleep(0.3)  # the export is now waiting for the lock
            status, body = _status(api, "/v1/usage")  # answered within urlopen's 10 s, not after the wait
            assert status == 200, body
            sender.join()
            assert errors and "locked" in errors[0].details(), errors  # not DEADLINE_EXCEEDED after 10 s
        finally:
            other.execute("ROLLBACK")
            other.close()
        _export(grpc_port)  # the lock is gone: recording resumes
        assert value(scrape(api), "aispend_requests_total") == 10


# -- item 15: disk full -------------------------------------------------------------------------
def test_disk_full_is_reported_as_disk_full_and_answered_retryable(tmp_path, caplog):
    with _tmpfs(tmp_path, "2m") as mount, running(ledger=f"sqlite:///{mount / 'ledger.sqlite'}") as exporter:
        grpc_port, api = exporter.ports["otlp_grpc"], exporter.ports["metrics"]
        _export(grpc_port)
        filler = mount / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as f:  # closing flushes: inside the suppress
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        error = _unavailable(grpc_port)
        assert "disk full" in error.details(), error.details()
        assert "disk full" in caplog.text and "cannot rollback" not in caplog.text
        filler.unlink()
        _export(grpc_port)  # space again: the retried export is recorded
        assert value(scrape(api), "aispend_requests_total") == 10


# -- item 16 (and 22: not a database): a ledger that cannot be used at start ---------------------
_FREE_PORTS = ("--otlp-grpc", "127.0.0.1:0", "--otlp-http", "127.0.0.1:0", "--metrics", "127.0.0.1:0")


def _serve(ledger: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aispend.cli", "serve", "--ledger", f"sqlite:///{ledger}", *_FREE_PORTS],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def _one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode != 0, proc
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aispend serve: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def _ledger_with_a_call(path: Path) -> None:
    with running(ledger=f"sqlite:///{path}") as exporter:
        _export(exporter.ports["otlp_grpc"])


def test_a_read_only_ledger_file_at_start_is_a_one_line_error(tmp_path):
    _require_root("chattr +i")
    path = tmp_path / "ledger.sqlite"
    _ledger_with_a_call(path)
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        _one_line_error(_serve(path, tmp_path), str(path), "read-only")
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_ledger_on_a_read_only_mount_at_start_is_a_one_line_error(tmp_path):
    with _tmpfs(tmp_path, "4m") as mount:
        path = mount / "ledger.sqlite"
        _ledger_with_a_call(path)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        _one_line_error(_serve(path, tmp_path), str(path))


def test_a_file_that_is_not_a_database_is_a_one_line_error(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes, not a ledger\n" * 100)
    _one_line_error(_serve(path, tmp_path), str(path), "not a SQLite database")
    usage = subprocess.run(
        [sys.executable, "-m", "aispend.cli", "usage", "--ledger", f"sqlite:///{path}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert usage.returncode != 0 and "Traceback" not in usage.stderr, usage.stderr
    assert usage.stderr.strip().splitlines() == [usage.stderr.strip()] and "not a SQLite database" in usage.stderr
