"""The SQLite writer's log is copied back into the file by its own thread, not by the commits."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from aispend.exporter.config import ExporterConfig
from aispend.exporter.ledger import WAL_PAGES, SQLiteLedger
from aispend.exporter.metrics import UsageMetrics
from aispend.exporter.pipeline import Pipeline
from aispend.pricing import PriceEngine
from tests.exporter.spans import llm, otlp_request


def _calls(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]


def test_the_log_reaches_the_file_without_a_commit_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    ledger = SQLiteLedger(str(path), writer=True)
    pipeline = Pipeline(ExporterConfig(instance_id="a"), PriceEngine(), ledger, UsageMetrics())
    batch = [llm("openai", "gpt-4o", 10 + i, 5) for i in range(200)]
    assert pipeline.export(otlp_request(batch)).recorded == 200
    wal = Path(f"{path}-wal")
    # far below the commits' own threshold: only the thread can have copied these pages
    assert wal.stat().st_size < WAL_PAGES * 4096 / 10
    pages = ledger._conn.execute("PRAGMA page_count").fetchone()[0]
    deadline = time.monotonic() + 10
    while path.stat().st_size < pages * 4096 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.stat().st_size >= pages * 4096, "the write-ahead log was not copied into the file"
    # the file alone (its log set aside) holds every call
    copy = tmp_path / "copy.sqlite"
    copy.write_bytes(path.read_bytes())
    assert _calls(copy) == 200
    ledger.close()
    assert not any(t.name == "ledger-checkpoint" for t in threading.enumerate())
    assert _calls(path) == 200


def test_only_the_writer_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    reader = SQLiteLedger(str(path))
    assert reader._checkpointer is None
    reader.close()
    memory = SQLiteLedger(":memory:", writer=True)
    assert memory._checkpointer is None
    memory.close()
