"""aispend beside opentelemetry-instrumentation-openai-v2: both spans are exported, and the
exporter counts the call once, keeping aispend's span (it carries the attribution)."""

from __future__ import annotations

import openai
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import aispend
from aispend.instrumentation import AiSpendInstrumentor
from tests.exporter.server import running, scrape, value
from tests.instrumentation.conftest import OPENAI_KEY, provider_urls


@pytest.fixture
def both(fake):
    fake.reset()
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    v2 = OpenAIInstrumentor()
    v2.instrument(tracer_provider=provider)
    ours = AiSpendInstrumentor()
    ours.instrument(tracer_provider=provider, provider_urls=provider_urls(fake))
    try:
        yield provider, memory
    finally:
        ours.uninstrument()
        v2.uninstrument()


def test_two_spans_one_call(fake, both):
    provider, memory = both
    with running() as exporter:
        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{exporter.ports['otlp_http']}/v1/traces"))
        )
        client = openai.OpenAI(base_url=fake.openai_base, api_key=OPENAI_KEY, max_retries=0)
        with aispend.attribute(feature="summary", customer="acme"):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
            stream = client.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            for _ in stream:
                pass
        provider.force_flush()
        spans = memory.get_finished_spans()
        peer = [s for s in spans if "aispend.service.kind" not in s.attributes]
        mine = [s for s in spans if "aispend.service.kind" in s.attributes]
        assert len(peer) == 2 and len(mine) == 2  # openai-v2's span and ours, for each call
        assert all(m.parent is not None and m.parent.span_id in {p.context.span_id for p in peer} for m in mine)
        text = scrape(exporter.ports["metrics"])
    assert value(text, "aispend_requests_total") == 2
    assert value(text, "aispend_spans_deduplicated_total") == 2
    # gpt-4o: 7 uncached + 4 cached input, 7 output -> counted once each, attributed to acme
    one_call = (7 * 2.5 + 4 * 1.25 + 7 * 10) / 1e6
    assert value(text, "aispend_cost_usd_total", customer="acme", feature="summary") == pytest.approx(2 * one_call)
    assert value(text, "aispend_cost_usd_total") == pytest.approx(2 * one_call)
