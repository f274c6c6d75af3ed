"""The instrumentor as OpenTelemetry finds and manages it."""

from __future__ import annotations

from importlib.metadata import entry_points

import httpx
import httpx2
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
    h = instrument(fake)
    try:
        AiSpendInstrumentor().instrument()  # already instrumented: ignored
        httpx.post(f"{fake.openai_base}/chat/completions", json={"model": "gpt-4o", "messages": []})
        assert len(h.spans()) == 1
    finally:
        h.instrumentor.uninstrument()
