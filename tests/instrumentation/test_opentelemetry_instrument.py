"""End to end: `opentelemetry-instrument python tests/apps/shop.py`, no code change in the app,
exporting OTLP to a local collector stub; the spans arrive with usage and attribution."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.otlp_stub import OtlpStub
from tests.support.stack import shop_app_env

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run_app(fake, endpoint: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**shop_app_env(fake.url, endpoint), **(extra_env or {})}
    return subprocess.run(
        [str(BIN / "opentelemetry-instrument"), sys.executable, str(ROOT / "tests/apps/shop.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_spans_arrive_with_usage(fake):
    fake.reset()
    stub = OtlpStub()
    try:
        result = run_app(fake, stub.endpoint)
        assert result.returncode == 0, result.stderr
        assert "shop: done" in result.stdout
        spans = {s.name: s for s in stub.spans() if "aispend.service.kind" in s.attributes}
    finally:
        stub.close()
    assert set(spans) == {
        "chat gpt-4o",
        "chat gpt-4o-mini",
        "chat claude-haiku-4-5",
        "search serper",
        "search unsplash",
    }
    assert all(s.service == "shop" and s.kind == 3 for s in spans.values())  # CLIENT
    gpt = spans["chat gpt-4o"].attributes
    assert (gpt["gen_ai.usage.input_tokens"], gpt["gen_ai.usage.output_tokens"]) == (11, 7)
    assert (gpt["aispend.feature"], gpt["aispend.customer"], gpt["aispend.key"]) == ("summary", "acme", "sk-proj-…a1b2")
    mini = spans["chat gpt-4o-mini"].attributes
    assert mini["gen_ai.request.stream"] is True and mini["gen_ai.usage.cache_read.input_tokens"] == 4
    claude = spans["chat claude-haiku-4-5"].attributes
    assert (claude["gen_ai.usage.input_tokens"], claude["aispend.customer"]) == (17, "globex")
    assert spans["search serper"].attributes["aispend.usage.requests"] == 1
    assert spans["search unsplash"].attributes["aispend.feature"] == "research"


@pytest.mark.parametrize("variable", ["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"])
def test_can_be_disabled_like_any_instrumentation(fake, variable):
    stub = OtlpStub()
    try:
        result = run_app(fake, stub.endpoint, {variable: "aispend,openai_v2"})
        assert result.returncode == 0, result.stderr
        assert not [s for s in stub.spans() if "aispend.service.kind" in s.attributes]
    finally:
        stub.close()
