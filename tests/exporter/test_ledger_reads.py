"""Reads have connections of their own: a console or API read neither waits for a write nor holds
one up, on SQLite (WAL) and PostgreSQL, and still sees every committed write."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aispend.exporter.ledger import Accounting, Filters, LedgerError, lock_keys, open_ledger
from aispend.exporter.normalise import Call
from tests.exporter.spans import new_id
from tests.support.postgres import PostgresServer

WAIT_S = 30  # far longer than any of these steps takes; a step that blocks fails the test instead of hanging it


def _call(model: str = "gpt-4") -> Call:
    return Call(
        trace_id=new_id(16),
        span_id=new_id(8),
        parent_span_id=b"",
        start_ns=1_700_000_000_000_000_000,
        duration_s=0.5,
        service="app",
        provider="openai",
        model=model,
        price_model=model,
        response_model=model,
        operation="chat",
        kind="llm",
        feature="",
        customer="",
        key="",
        status="ok",
        error_type="",
        input_tokens=150,
        output_tokens=75,
        from_aispend=True,
    )


def _in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # handed to the test
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _calls(ledger) -> int:
    return ledger.summary(Filters(), [])[0]["calls"] if ledger.summary(Filters(), []) else 0


def test_a_read_answers_while_a_write_transaction_is_open_and_sees_only_what_is_committed(ledger_url):
    ledger = open_ledger(ledger_url)
    acc = Accounting(instance="a")
    ledger.record([_call()], acc)
    holding, release = threading.Event(), threading.Event()
    batch = [_call("gpt-4o")]

    def long_write() -> None:  # a batch whose transaction stays open (a slow disk, a big batch)
        with ledger.transaction(lock_keys(batch)) as tx:
            tx.run("INSERT INTO meta (name, value) VALUES ('uncommitted', 'x')")
            holding.set()
            assert release.wait(WAIT_S)

    writer, errors = _in_thread(long_write)
    try:
        assert holding.wait(WAIT_S)
        reader, out = _in_thread(
            lambda: (_calls(ledger), ledger._read("SELECT value FROM meta WHERE name = ?", ["uncommitted"]))
        )
        reader.join(WAIT_S)
        assert not reader.is_alive(), "a read waited for the open write transaction"
        assert out == [(1, [])]  # the committed call; not the open transaction's row
    finally:
        release.set()
        writer.join(WAIT_S)
    assert errors == [None]
    assert ledger._read("SELECT value FROM meta WHERE name = 'uncommitted'") == [("x",)]  # committed now: seen
    ledger.record([_call()], acc)
    assert _calls(ledger) == 2  # a read right after a write sees it
    ledger.close()


@contextlib.contextmanager
def _slow_read(ledger, ledger_url: str) -> Iterator[str]:
    """SQL for a read that runs until the block ends (a console page over a huge range, made
    deterministic): SQLite calls a function that waits; PostgreSQL waits for an advisory lock
    another session holds."""
    release = threading.Event()
    if ledger_url.startswith("sqlite"):
        for conn in list(ledger._readers._idle):  # every read connection knows the function
            conn.create_function("held", 0, lambda: int(release.wait(WAIT_S)))
        try:
            yield "SELECT held()"
        finally:
            release.set()
        return
    import psycopg

    with psycopg.connect(ledger.url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(4242)")
        try:
            yield "SELECT 1 FROM pg_advisory_xact_lock(4242)"
        finally:
            other.execute("SELECT pg_advisory_unlock(4242)")


def test_a_slow_read_does_not_hold_up_writes(ledger_url):
    ledger = open_ledger(ledger_url)
    acc = Accounting(instance="a")
    ledger.record([_call()], acc)
    with _slow_read(ledger, ledger_url) as sql:
        reader, out = _in_thread(lambda: ledger._read(sql))
        threading.Event().wait(0.3)  # the read is under way
        assert reader.is_alive()
        outcome = ledger.record([_call(), _call()], acc)  # a batch, while the read runs
        ledger.set_budget_override("team", "10", None)  # a single statement on the write connection
        assert reader.is_alive(), "the writes waited for the slow read"
        assert len(outcome.counted) == 2
        quick, counted = _in_thread(lambda: _calls(ledger))  # and another read, beside the slow one
        quick.join(WAIT_S)
        assert counted == [3] and reader.is_alive()
    reader.join(WAIT_S)
    assert not reader.is_alive() and out == [[(1,)]], out
    ledger.close()


def test_a_read_after_close_is_a_ledger_error(ledger_url):
    ledger = open_ledger(ledger_url)
    ledger.close()
    with pytest.raises(LedgerError):
        ledger._read("SELECT COUNT(*) FROM calls")


def test_sqlite_reads_do_not_wait_for_another_process_holding_the_write_lock(tmp_path):
    import sqlite3

    path = tmp_path / "ledger.sqlite"
    ledger = open_ledger(f"sqlite:///{path}", writer=True)
    ledger.record([_call()], Accounting(instance="a"))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process (a tool) holds the write lock
    other.execute("DELETE FROM calls")  # ... with a change not yet committed
    try:
        writer, errors = _in_thread(lambda: ledger.record([_call()], Accounting(instance="a")))
        threading.Event().wait(0.3)  # the batch is now waiting for the lock (its busy timeout)
        assert writer.is_alive()
        assert _calls(ledger) == 1  # answered at once, from what was committed
        writer.join(WAIT_S)
        assert isinstance(errors[0], LedgerError) and "locked" in str(errors[0])
    finally:
        other.execute("ROLLBACK")
        other.close()
    ledger.close()


def test_a_ledger_in_memory_reads_its_own_connection():
    ledger = open_ledger("none")
    ledger.record([_call()], Accounting(instance="a"))
    assert _calls(ledger) == 1
    ledger.close()


def test_postgres_reads_reconnect_once_after_their_connections_were_dropped():
    postgres = PostgresServer().start()
    try:
        _reads_reconnect(postgres)
    finally:
        postgres.stop()


def _reads_reconnect(postgres: PostgresServer) -> None:
    ledger = open_ledger(postgres.create_database("reads_dropped"))
    ledger.record([_call()], Accounting(instance="a"))
    # two read connections in the pool, both idle
    a, _ = _in_thread(lambda: ledger._read("SELECT 1 FROM pg_sleep(0.5)"))
    b, _ = _in_thread(lambda: ledger._read("SELECT 1 FROM pg_sleep(0.5)"))
    a.join(WAIT_S)
    b.join(WAIT_S)
    # the server drops every other session (an idle timeout, a failover): the pool's connections are dead
    ledger._execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()"
    )
    assert _calls(ledger) == 1  # found dead when used: run again on a new connection
    assert ledger.budget_overrides() == {}
    postgres.stop(remove=False)
    with pytest.raises(LedgerError, match=r"ledger query on postgresql://"):
        ledger.budget_overrides()  # the database is away: a LedgerError, never a driver error
    postgres.start()
    assert _calls(ledger) == 1  # back: a new connection
    ledger.close()
