"""Fixtures every test folder shares: ``postgres``, one real PostgreSQL server for the session
(from Debian's ``postgresql`` package; each test makes its own database with ``create_database``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import PostgresServer


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()
