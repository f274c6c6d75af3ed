"""``ledger_url``: each test that takes it runs once on SQLite and once on a real PostgreSQL (the
session's ``postgres`` server, tests/conftest.py)."""

from __future__ import annotations

import itertools

import pytest

_databases = itertools.count(1)


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.sqlite"
    return request.getfixturevalue("postgres").create_database(f"t{next(_databases)}")
