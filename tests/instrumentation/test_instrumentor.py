"""The instrumentor as OpenTelemetry finds and manages it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from importlib.metadata import entry_points

import httpx
import httpx2
import pytest
import requests

from aispend.instrumentation import AiSpendInstrumentor
from tests.instrumentation.conftest import instrument


def test_registered_for_opentelemetry_instrument():
    found = [ep for ep in entry_points(group="opentelemetry_instrumentor") if ep.name == "aispend"]
    assert len(found) == 1 and found[0].load() is AiSpendInstrumentor


def test_uninstrument_restores_the_clients(fake):
    originals = (httpx.Client.send, httpx.AsyncClient.send, httpx2.Client.send, requests.Session.send)
    h = instrument(fake)
    assert httpx.Client.send is not originals[0] and requests.Session.send is not originals[3]
    h.instrumentor.uninstrument()
    assert (httpx.Client.send, httpx.AsyncClient.send, httpx2.Client.send, requests.Session.send) == originals
    httpx.post(f"{fake.openai_base}/chat/completions", json={"model": "gpt-4o", "messages": []})
    assert h.spans() == []


def test_instrument_twice_wraps_once(fake):
    original = httpx.Client.send
    h = instrument(fake)
    try:
        AiSpendInstrumentor().instrument()  # already instrumented: ignored
        httpx.post(f"{fake.openai_base}/chat/completions", json={"model": "gpt-4o", "messages": []})
        assert len(h.spans()) == 1
    finally:
        h.instrumentor.uninstrument()
    assert httpx.Client.send is original  # AiSpendInstrumentor() again (the singleton) forgot nothing


LATE_IMPORTS = """
import json, sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from aispend.instrumentation import AiSpendInstrumentor

base, then = sys.argv[1], sys.argv[2]
CLIENTS = ("httpx", "httpx2", "requests", "botocore", "aiohttp")
exporter, provider = InMemorySpanExporter(), TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
instrumentor = AiSpendInstrumentor()
instrumentor.instrument(tracer_provider=provider, provider_urls=f"openai={base}")
loaded = [name for name in CLIENTS if name in sys.modules]
if then == "uninstrument":
    instrumentor.uninstrument()
import httpx, requests  # imported by the app after instrument()
body = {"model": "gpt-4o", "messages": []}
httpx.post(f"{base}/chat/completions", json=body)
requests.post(f"{base}/chat/completions", json=body)
print(json.dumps({"loaded": loaded, "spans": len(exporter.get_finished_spans())}))
"""


def _late_imports(fake, then: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", LATE_IMPORTS, fake.openai_base, then], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_clients_imported_after_instrument_are_hooked_and_none_is_imported_by_it(fake):
    """instrument() imports no HTTP client; one the app imports later is hooked as it is imported."""
    assert _late_imports(fake, "keep") == {"loaded": [], "spans": 2}


def test_clients_imported_after_uninstrument_are_left_alone(fake):
    assert _late_imports(fake, "uninstrument") == {"loaded": [], "spans": 0}


@pytest.mark.parametrize("module", [httpx, httpx2])
def test_a_streamed_response_keeps_its_stream_type_and_attributes(fake, module):
    """The proxy the stream is wrapped in is the module's own SyncByteStream / AsyncByteStream
    (the client's isinstance checks), forwards what it does not override to the real stream and
    ends the span once, however the stream ends."""
    body = {"model": "gpt-4o", "messages": [], "stream": True}
    url = f"{fake.openai_base}/chat/completions"
    bare = {}
    with module.Client() as client, client.stream("POST", url, json=body) as response:
        bare = {"type": type(response.stream), "attrs": sorted(vars(response.stream)), "text": response.read()}
    h = instrument(fake)
    try:
        with module.Client() as client, client.stream("POST", url, json=body) as response:
            stream = response.stream
            assert isinstance(stream, module.SyncByteStream) and type(stream) is not bare["type"]
            assert stream.__wrapped__.__class__ is bare["type"]
            assert bare["attrs"]  # something to forward
            assert all(getattr(stream, name) is getattr(stream.__wrapped__, name) for name in bare["attrs"])
            assert response.read().count(b"data: ") == bare["text"].count(b"data: ")
            assert repr(stream) == repr(stream.__wrapped__)

        async def via_async() -> bool:
            async with module.AsyncClient() as aclient, aclient.stream("POST", url, json=body) as response:
                await response.aread()
                return isinstance(response.stream, module.AsyncByteStream)

        assert asyncio.run(via_async())
        assert len(h.spans()) == 2  # each ended once (end of stream, then close(), then collection)
    finally:
        h.instrumentor.uninstrument()
