"""A real exporter filled with the seeds through OTLP/HTTP, and Debian's chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.console import seed
from tests.exporter.server import running

CHROMIUM = os.environ.get("AISPEND_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
OUTPUT = Path(__file__).resolve().parents[1] / "output" / "console"
BUDGETS = """
budgets:
  - name: all-monthly
    period: month
    amount_usd: 10
    enforce: true
  - name: acme-daily
    period: day
    amount_usd: 0.05
    scope: {customer: acme}
    enforce: warn
"""


@pytest.fixture(scope="module")  # not longer: Playwright's sync API keeps an event loop running
def browser() -> Iterator[object]:
    if not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.fail(
            f"the console tests need Debian's chromium at {CHROMIUM}: apt-get install -y chromium "
            "(make test-deps installs it); set AISPEND_CHROMIUM for another path"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "the console tests need Playwright for Python: pip install -e '.[dev]' (never `playwright install`)"
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Iterator[object]:
    tmp = tmp_path_factory.mktemp("console")
    (tmp / "budgets.yaml").write_text(BUDGETS)
    with running(ledger=f"sqlite:///{tmp}/ledger.sqlite", budgets=str(tmp / "budgets.yaml")) as exporter:
        seed.send(exporter.ports["otlp_http"])
        yield exporter


@pytest.fixture
def page(browser, seeded) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.base = f"http://127.0.0.1:{seeded.ports['metrics']}"  # type: ignore[attr-defined]
    yield page
    context.close()
    assert not errors, f"the page logged errors: {errors}"
