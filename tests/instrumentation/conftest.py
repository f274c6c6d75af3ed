"""Fixtures: the fake provider server and an instrumented in-memory tracer provider."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aispend.instrumentation import AiSpendInstrumentor
from tests.fakes.providers import FakeProviders

# Token estimates must not depend on what this machine's tiktoken cache happens to hold.
os.environ["TIKTOKEN_CACHE_DIR"] = tempfile.mkdtemp(prefix="aispend-tiktoken-")

OPENAI_KEY = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789a1b2"
ANTHROPIC_KEY = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789-ZZZZ"


def provider_urls(fake: FakeProviders) -> str:
    return ",".join(
        [
            f"openai={fake.openai_base}",
            f"azure.ai.openai={fake.azure_base}",
            f"anthropic={fake.anthropic_base}",
            f"gcp.gemini={fake.gemini_base}",
            f"gcp.vertex_ai={fake.vertex_base}",
            f"groq={fake.groq_base}",
            f"serper={fake.serper_base}",
            f"tavily={fake.tavily_base}",
            f"brave={fake.brave_base}",
            f"unsplash={fake.unsplash_base}",
            f"aws.bedrock={fake.bedrock_base}",
            f"cohere={fake.cohere_base}",
            f"ollama={fake.ollama_base}",
        ]
    )


@dataclass
class Harness:
    fake: FakeProviders
    exporter: InMemorySpanExporter
    provider: TracerProvider
    instrumentor: AiSpendInstrumentor

    def spans(self) -> list[ReadableSpan]:
        assert self.instrumentor.flush(), "spans were not recorded within 5 s"
        return list(self.exporter.get_finished_spans())

    def span(self) -> ReadableSpan:
        spans = self.spans()
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]

    def attrs(self) -> dict:
        return dict(self.span().attributes)


@pytest.fixture(autouse=True)
def fresh_log_once():
    """log_once warns once per process; each test starts as a fresh process would."""
    from aispend.instrumentation import safety

    safety._seen.clear()


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeProviders]:
    with FakeProviders() as server:
        yield server


def instrument(fake: FakeProviders, **kwargs) -> Harness:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = AiSpendInstrumentor()
    settings = {"provider_urls": provider_urls(fake), "key_aliases": {"sk-proj-…a1b2": "prod-backend"}}
    settings.update(kwargs)
    instrumentor.instrument(tracer_provider=provider, **settings)
    return Harness(fake, exporter, provider, instrumentor)


@pytest.fixture(params=["background", "inline"])
def harness(request, fake) -> Iterator[Harness]:
    """Every test runs with spans made on the recording thread (the default) and on the calling
    thread (``AISPEND_RECORD_INLINE``): the spans must be the same."""
    fake.reset()
    h = instrument(fake, record_inline=request.param == "inline")
    try:
        yield h
    finally:
        h.instrumentor.uninstrument()
