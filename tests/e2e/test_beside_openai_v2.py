"""The set-up the README documents, measured wrong before the ledger settled peers' spans: the shop
app under `opentelemetry-instrument` with opentelemetry-instrumentation-openai-v2 active beside
aispend, a 100 ms batch delay (so openai-v2's span of a call often leaves in an earlier OTLP batch
than aispend's, which is made on aispend's recording thread), exporting to `aispend serve`.

Every call is one ledger row with aispend's attribution and tokens, whatever the order the spans
arrive in, and the totals equal a run without openai-v2.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.exporter.server import ServeProcess, scrape, value
from tests.fakes.providers import FakeProviders
from tests.support.polling import eventually
from tests.support.stack import shop_app_env

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ROUNDS = 40


def run_shop(fake, port: int, openai_v2: bool) -> None:
    env = {
        **shop_app_env(fake.url, f"http://127.0.0.1:{port}"),
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "SHOP_ROUNDS": str(ROUNDS),
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "" if openai_v2 else "openai",
    }
    result = subprocess.run(
        [str(BIN / "opentelemetry-instrument"), sys.executable, str(ROOT / "tests/apps/shop.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture
def fake():
    with FakeProviders() as server:
        yield server


def ledger_rows(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT provider, model, feature, customer, key, input_tokens, output_tokens, cache_read_tokens, "
            "cost_nusd FROM calls ORDER BY provider, model, feature, customer, key, input_tokens, output_tokens"
        ).fetchall()


def settled(path: Path) -> bool:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM pending").fetchone()[0] == 0


def test_every_call_keeps_aispends_span_with_openai_v2_beside_it(tmp_path, fake):
    results = {}
    for openai_v2 in (False, True):
        fake.reset()
        path = tmp_path / f"ledger-{openai_v2}.sqlite"
        proc = ServeProcess(tmp_path, "--ledger", f"sqlite:///{path}", "--settle-seconds", "1").start()
        try:
            run_shop(fake, proc.ports["otlp_http"], openai_v2)
            assert eventually(lambda f=path: settled(f), timeout=30)
            results[openai_v2] = ledger_rows(path)
            text = scrape(proc.ports["metrics"])
            if openai_v2:
                received = value(text, "aispend_spans_received_total")
                dropped = value(text, "aispend_spans_deduplicated_total")
                print(f"\nwith openai-v2: {received:.0f} spans received, {dropped:.0f} not counted again")
                assert dropped >= 2 * ROUNDS  # openai-v2's span of each OpenAI call
            assert value(text, "aispend_requests_total") == len(results[openai_v2])
        finally:
            proc.stop()
    alone, beside = results[False], results[True]
    assert beside == alone  # the same rows, tokens, attribution and cost, call for call
    openai_rows = [r for r in beside if r[0] == "openai"]
    assert len(openai_rows) == 2 * ROUNDS
    assert all((r[2], r[3]) == ("summary", "acme") and r[5] > 0 and r[6] > 0 for r in openai_rows)
    assert sum(1 for r in openai_rows if r[1] == "gpt-4o-mini" and r[7] == 4) == ROUNDS  # the streams' cache
