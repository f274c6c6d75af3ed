"""Budgets that stop spending: the real exporter decides, the instrumentation enforces."""

from __future__ import annotations

import json
import logging
import time

import anthropic
import openai
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import aispend
from aispend.instrumentation import AiSpendInstrumentor
from aispend.instrumentation.budgets import BudgetStateUnavailableError
from tests.exporter.server import running, scrape, value
from tests.exporter.test_receivers import post
from tests.instrumentation.conftest import ANTHROPIC_KEY, OPENAI_KEY, provider_urls
from tests.support.polling import eventually

REFRESH = 0.2
MESSAGES = [{"role": "user", "content": "hi"}]
# one gpt-4o call against the fake: 7 uncached + 4 cached input, 7 output = $0.0000925
BUDGETS = """
budgets:
  - {name: acme-chat, period: day, amount_usd: 0.00005, scope: {customer: acme}, enforce: true}
  - {name: beta-warn, period: month, amount_usd: 0.00001, scope: {feature: beta}, enforce: warn}
  - {name: everything, period: month, amount_usd: 1000}
"""


@pytest.fixture
def app(fake, tmp_path):
    fake.reset()
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(BUDGETS)
    with running(budgets=str(budgets), admin_token="admin") as exporter:
        memory = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{exporter.ports['otlp_http']}/v1/traces"))
        )
        instrumentor = AiSpendInstrumentor()
        instrumentor.instrument(
            tracer_provider=provider,
            provider_urls=provider_urls(fake),
            budgets_url=f"http://127.0.0.1:{exporter.ports['metrics']}/v1/budgets",
            budgets_token="admin",  # the admin token reads too (the exporter protects reads once it has one)
            budgets_refresh_seconds=REFRESH,
        )
        try:
            yield exporter, instrumentor, memory
        finally:
            instrumentor.uninstrument()


def test_enforced_budget_blocks_matching_calls_until_raised(fake, app):
    exporter, instrumentor, memory = app
    oai = openai.OpenAI(base_url=fake.openai_base, api_key=OPENAI_KEY, max_retries=2)
    claude = anthropic.Anthropic(base_url=fake.anthropic_base, api_key=ANTHROPIC_KEY, max_retries=2)
    with aispend.attribute(customer="acme"):
        oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # spends past $0.00005
    guard = instrumentor.guard
    assert eventually(lambda: guard._block), "the guard never saw the exhausted budget"
    sent = len(fake.requests)
    with aispend.attribute(customer="acme"):
        for call in (
            lambda: oai.chat.completions.create(model="gpt-4o", messages=MESSAGES),
            lambda: claude.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES),
        ):
            started = time.monotonic()
            with pytest.raises(aispend.BudgetExceededError) as err:
                call()
            assert time.monotonic() - started < 0.5  # no SDK retries, no backoff
            assert (err.value.budget, err.value.limit_usd, err.value.period) == ("acme-chat", 0.00005, "day")
            assert err.value.spend_usd == pytest.approx(0.0000925)
            assert err.value.resets_at.hour == 0 and "resets at" in str(err.value)
    assert len(fake.requests) == sent  # nothing reached the provider
    blocked = [s for s in memory.get_finished_spans() if s.attributes.get("error.type") == "budget_exceeded"]
    assert len(blocked) == 2 and all(s.status.status_code.name == "ERROR" for s in blocked)
    with aispend.attribute(customer="globex"):  # outside the budget's scope
        oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(fake.requests) == sent + 1
    # the exporter records the blocked calls as errors that cost nothing
    text = scrape(exporter.ports["metrics"], token="admin")
    assert value(text, "aispend_requests_total", customer="acme", status="error") == 2
    assert value(text, "aispend_cost_usd_total", customer="acme") == pytest.approx(0.0000925, abs=1e-12)
    status, body = post(
        f"http://127.0.0.1:{exporter.ports['metrics']}/v1/budgets/acme-chat",
        b'{"amount_usd": 1}',
        "application/json",
        token="admin",
    )
    assert status == 200 and json.loads(body)["exhausted"] is False
    raised_at = time.monotonic()
    assert eventually(lambda: not guard._block, timeout=REFRESH * 5)
    assert time.monotonic() - raised_at <= REFRESH * 3  # within about one refresh interval
    with aispend.attribute(customer="acme"):
        oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(fake.requests) == sent + 2


def test_warn_mode_logs_once_and_lets_calls_through(fake, app, caplog):
    _, instrumentor, _ = app
    oai = openai.OpenAI(base_url=fake.openai_base, api_key=OPENAI_KEY, max_retries=0)
    with aispend.attribute(feature="beta"):
        oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert eventually(lambda: instrumentor.guard._warn)
        with caplog.at_level(logging.WARNING, logger="aispend.instrumentation"):
            for _ in range(3):
                oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    warnings = [r for r in caplog.records if "beta-warn" in r.getMessage()]
    assert len(warnings) == 1 and "enforce: warn" in warnings[0].getMessage()
    assert len(fake.requests) == 4


def _guarded(fake, fail_closed: bool):
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    instrumentor = AiSpendInstrumentor()
    instrumentor.instrument(
        tracer_provider=provider,
        provider_urls=provider_urls(fake),
        budgets_url="http://127.0.0.1:9/v1/budgets",  # nothing listens there
        budgets_refresh_seconds=REFRESH,
        budgets_fail_closed=fail_closed,
    )
    return instrumentor


def test_fail_open_when_the_exporter_is_unreachable(fake, caplog):
    fake.reset()
    with caplog.at_level(logging.WARNING, logger="aispend.instrumentation"):
        instrumentor = _guarded(fake, fail_closed=False)
        try:
            time.sleep(REFRESH * 3)
            oai = openai.OpenAI(base_url=fake.openai_base, api_key=OPENAI_KEY, max_retries=0)
            oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        finally:
            instrumentor.uninstrument()
    assert len(fake.requests) == 1
    assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1  # warned once


def test_fail_closed_blocks_until_the_exporter_answers(fake, tmp_path):
    fake.reset()
    instrumentor = _guarded(fake, fail_closed=True)
    try:
        oai = openai.OpenAI(base_url=fake.openai_base, api_key=OPENAI_KEY, max_retries=0)
        with pytest.raises(BudgetStateUnavailableError):
            oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert fake.requests == []
        # the exporter comes up (with budgets that cover only acme) and then goes away again
        budgets = tmp_path / "b.yaml"
        budgets.write_text("budgets: [{name: acme, amount_usd: 100, scope: {customer: acme}, enforce: true}]")
        with running(budgets=str(budgets)) as exporter:
            instrumentor.guard.url = f"http://127.0.0.1:{exporter.ports['metrics']}/v1/budgets"
            assert eventually(lambda: instrumentor.guard._reachable)
            with aispend.attribute(customer="acme"):
                oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert eventually(lambda: not instrumentor.guard._reachable)
        oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # no enforced budget covers it
        with aispend.attribute(customer="acme"), pytest.raises(BudgetStateUnavailableError):
            oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert len(fake.requests) == 2
    finally:
        instrumentor.uninstrument()
