"""Vertex AI's hosts beyond ``{location}-aiplatform.googleapis.com``: the global host (location
"global", or an API key and no location), the multi-region ``aiplatform.{us,eu}.rep`` hosts and
the mTLS twins, each as google-genai picks it."""

from __future__ import annotations

import httpx
import pytest
from google import genai
from google.genai import _api_client, types
from google.oauth2.credentials import Credentials

from aispend.instrumentation.adapters import Router
from aispend.instrumentation.adapters.gemini import GeminiAdapter
from aispend.instrumentation.exchange import HttpRequest
from aispend.providers import from_host
from tests.instrumentation.conftest import instrument

VERTEX_HOSTS = (
    "aiplatform.googleapis.com",
    "aiplatform.us.rep.googleapis.com",
    "aiplatform.eu.rep.googleapis.com",
    "us-central1-aiplatform.googleapis.com",
    "aiplatform.mtls.googleapis.com",
    "us-central1-aiplatform.mtls.googleapis.com",
)
PATH = "/v1beta1/projects/p/locations/global/publishers/google/models/gemini-2.0-flash:generateContent"


def sdk_base_url(**kwargs: object) -> str:
    if "api_key" not in kwargs:  # the SDK takes credentials or an API key, not both
        kwargs["credentials"] = Credentials(token="ya29.test")
    client = genai.Client(vertexai=True, **kwargs)
    return client._api_client._http_options.base_url


@pytest.fixture(autouse=True)
def no_google_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "GOOGLE_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("host", VERTEX_HOSTS)
def test_vertex_hosts_route_to_vertex(host):
    adapter = Router().route(HttpRequest("POST", "https", host, 443, PATH))
    assert isinstance(adapter, GeminiAdapter) and adapter.provider == "gcp.vertex_ai", host
    assert from_host(host) == "gcp.vertex_ai"


def test_other_google_hosts_are_not_vertex():
    for host in ("bigquery.us.rep.googleapis.com", "storage.googleapis.com", "aiplatform.googleapis.com.evil.io"):
        assert Router().route(HttpRequest("POST", "https", host, 443, PATH)) is None, host
        assert from_host(host) == "", host


@pytest.mark.parametrize(
    "kwargs",
    [
        {"project": "p", "location": "global"},
        {"project": "p", "location": "us"},
        {"project": "p", "location": "eu"},
        {"project": "p", "location": "europe-west4"},
        {"api_key": "AIzaSyA-test-key-0000000000000000000000"},  # an API key and no location: global
    ],
)
def test_the_hosts_google_genai_picks_are_vertex(kwargs):
    base = sdk_base_url(**kwargs)
    for url in (base, _api_client.to_mtls_url(base)):  # with a client certificate, the mTLS host
        host = httpx.URL(url).host
        assert isinstance(Router().route(HttpRequest("POST", "https", host, 443, PATH)), GeminiAdapter), url
        assert from_host(host) == "gcp.vertex_ai", url


class ToFake(httpx.BaseTransport):
    """Serves the SDK's requests to its own Vertex host from the fake server (no other network)."""

    def __init__(self, base: str) -> None:
        self.base, self.inner = base, httpx.HTTPTransport()
        self.urls: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"host"]
        url = httpx.URL(self.base + request.url.raw_path.decode())
        return self.inner.handle_request(httpx.Request(request.method, url, headers=headers, content=request.read()))


def test_google_genai_global_location_makes_a_vertex_span(fake, monkeypatch):
    """The real SDK with ``location="global"`` calls https://aiplatform.googleapis.com; nothing in
    AISPEND_PROVIDER_URLS names it, yet the span is Vertex AI's."""
    # The transport below is httpx's. google-genai picks httpx or httpx2 from the transport's
    # classes; once the groq SDK is imported, httpx.BaseTransport is groq's, so say it outright.
    monkeypatch.setenv("GOOGLE_GENAI_HTTP_CLIENT", "httpx")
    fake.reset()
    h = instrument(fake, provider_urls="")
    try:
        transport = ToFake(fake.vertex_base)
        client = genai.Client(
            vertexai=True,
            project="p",
            location="global",
            credentials=Credentials(token="ya29.test"),
            http_options=types.HttpOptions(api_version="v1", client_args={"transport": transport}),
        )
        assert client.models.generate_content(model="gemini-2.0-flash", contents="Hello").text
        assert transport.urls[0].startswith("https://aiplatform.googleapis.com/v1/projects/p/locations/global/")
        attrs = h.attrs()
        assert attrs["gen_ai.provider.name"] == "gcp.vertex_ai"
        assert attrs["server.address"] == "aiplatform.googleapis.com"
        assert attrs["gen_ai.request.model"] == "gemini-2.0-flash" and attrs["gen_ai.usage.input_tokens"] == 12
        assert "aispend.usage.estimated" not in attrs
    finally:
        h.instrumentor.uninstrument()
