"""The end-to-end tests with the real collector: fake providers per module, and the figures
(calls sent / recorded / lost / duplicated) of every scenario printed at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.providers import FakeProviders
from tests.support.load import FIGURES


def pytest_terminal_summary(terminalreporter) -> None:
    if FIGURES:
        terminalreporter.section("aispend behind the real OpenTelemetry Collector")
        for line in FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviders]:
    with FakeProviders() as server:
        yield server
