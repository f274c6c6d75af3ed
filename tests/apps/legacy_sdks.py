"""Run inside a venv with openai<2 and anthropic<1 (which send through httpx, not httpx2):
prints one JSON line per aispend span. Used by tests/instrumentation/test_legacy_sdks.py."""

from __future__ import annotations

import json
import sys

import anthropic
import openai
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aispend.instrumentation import AiSpendInstrumentor

fake = sys.argv[1]
memory = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(memory))
AiSpendInstrumentor().instrument(
    tracer_provider=provider, provider_urls=f"openai={fake}/openai/v1,anthropic={fake}/anthropic"
)
oai = openai.OpenAI(base_url=f"{fake}/openai/v1", api_key="sk-legacy-000000000000000000000001", max_retries=0)
oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
for _ in oai.chat.completions.create(
    model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
):
    pass
claude = anthropic.Anthropic(base_url=f"{fake}/anthropic", api_key="sk-ant-legacy-0000000000000002", max_retries=0)
claude.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
with claude.messages.stream(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]) as s:
    s.get_final_message()
print(json.dumps({"openai": openai.__version__, "anthropic": anthropic.__version__}))
provider.force_flush()  # spans are recorded on aispend's background thread; this waits for them
for span in memory.get_finished_spans():
    if "aispend.service.kind" in span.attributes:
        print(json.dumps({"name": span.name, **{k: v for k, v in span.attributes.items()}}, default=list))
