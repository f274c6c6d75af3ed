"""OpenRouter through the real openai SDK, aispend's instrumentation, OTLP/HTTP and a running
exporter: the call is counted at OpenRouter's own ``usage.cost``, stream and not."""

from __future__ import annotations

import openai
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from aispend.instrumentation import AiSpendInstrumentor
from tests.exporter.server import running, scrape, value

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("stream", [False, True])
def test_openrouter_calls_are_counted_at_the_cost_openrouter_reports(fake, tmp_path, stream):
    fake.reset()
    fake.openrouter_cost = 0.00042
    with running(ledger=f"sqlite:///{tmp_path}/ledger.sqlite") as exporter:
        provider = TracerProvider()
        url = f"http://127.0.0.1:{exporter.ports['otlp_http']}/v1/traces"
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=url)))
        ours = AiSpendInstrumentor()
        ours.instrument(tracer_provider=provider, provider_urls=f"openrouter={fake.openrouter_base}")
        try:
            client = openai.OpenAI(base_url=fake.openrouter_base, api_key="sk-or-v1-test0000", max_retries=0)
            reply = client.chat.completions.create(model="deepseek/deepseek-chat", messages=MESSAGES, stream=stream)
            if stream:
                list(reply)
            assert ours.flush()
            provider.force_flush()
        finally:
            ours.uninstrument()
            provider.shutdown()
        text = scrape(exporter.ports["metrics"])
        rows = exporter.ledger._read("SELECT provider, model, cost_nusd, cost_source FROM calls")
    assert rows == [("openrouter", "deepseek/deepseek-chat", 420_000, "provider")]
    assert value(text, "aispend_cost_usd_total", provider="openrouter") == pytest.approx(0.00042, abs=1e-15)
