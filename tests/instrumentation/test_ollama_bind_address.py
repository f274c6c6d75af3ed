"""OLLAMA_HOST set to a bind address (``0.0.0.0``, ``::``): the ollama client connects to that
very address, so the calls it makes are Ollama calls, as are calls to the loopback names."""

from __future__ import annotations

import ollama
import pytest

from aispend.instrumentation.adapters import Router
from aispend.instrumentation.adapters.ollama import OllamaAdapter
from aispend.instrumentation.config import InstrumentationConfig
from aispend.instrumentation.exchange import HttpRequest
from tests.instrumentation.conftest import instrument

MESSAGES = [{"role": "user", "content": "Hello, llama"}]


@pytest.mark.parametrize("template", ["0.0.0.0:{port}", "http://0.0.0.0:{port}"])
def test_real_client_on_a_bind_address_makes_a_span(fake, monkeypatch, template):
    """The real client sends to ``http://0.0.0.0:PORT`` (Linux connects that to this machine)."""
    fake.reset()
    monkeypatch.setenv("OLLAMA_HOST", template.format(port=fake.port))
    h = instrument(fake, provider_urls="openai=http://127.0.0.1:1/v1")  # nothing about ollama
    try:
        client = ollama.Client()
        assert str(client._client.base_url).startswith("http://0.0.0.0:")  # what the client uses
        assert client.chat(model="llama3.2", messages=MESSAGES).eval_count == 13
        attrs = h.attrs()
        assert attrs["gen_ai.provider.name"] == "ollama" and attrs["gen_ai.request.model"] == "llama3.2"
        assert attrs["gen_ai.usage.input_tokens"] == 26 and attrs["gen_ai.usage.output_tokens"] == 13
    finally:
        h.instrumentor.uninstrument()


@pytest.mark.parametrize(
    ("value", "host", "port"),
    [
        ("0.0.0.0", "0.0.0.0", 11434),
        ("0.0.0.0:11434", "0.0.0.0", 11434),
        ("http://0.0.0.0:11434", "0.0.0.0", 11434),
        ("0.0.0.0:8000", "0.0.0.0", 8000),
        ("[::]:11434", "::", 11434),
        ("::", "::", 11434),
    ],
)
def test_bind_address_routes_itself_and_the_loopback_names(value, host, port):
    router = Router(InstrumentationConfig.load({"OLLAMA_HOST": value}).provider_urls)
    for name in (host, "127.0.0.1", "localhost"):
        request = HttpRequest("POST", "http", name, port, "/api/chat")
        assert isinstance(router.route(request), OllamaAdapter), (value, name)
    assert router.route(HttpRequest("POST", "http", host, port + 1, "/api/chat")) is None


def test_routes_are_not_listed_twice():
    urls = InstrumentationConfig.load({"OLLAMA_HOST": "127.0.0.1:11434"}).provider_urls
    assert [(u.host, u.port) for u in urls] == [("127.0.0.1", 11434), ("localhost", 11434)]


def test_a_url_with_credentials_is_read_as_the_ollama_client_reads_it():
    """Two colons are not an IPv6 address when one is a user's password: host ``ollama``."""
    urls = InstrumentationConfig.load({"OLLAMA_HOST": "http://user:pw@ollama:1234"}).provider_urls
    assert ("ollama", 1234) in [(u.host, u.port) for u in urls]


@pytest.mark.parametrize("value", ["host:1:2", "http://ollama:notaport", "[::1"])
def test_an_unusable_value_is_logged_and_the_defaults_kept(value, caplog):
    """A bad OLLAMA_HOST never breaks the app's start: it is reported, and the defaults route."""
    with caplog.at_level("WARNING"):
        urls = InstrumentationConfig.load({"OLLAMA_HOST": value}).provider_urls
    assert [(u.host, u.port) for u in urls] == [("127.0.0.1", 11434), ("localhost", 11434)]
    assert "OLLAMA_HOST" in caplog.text
