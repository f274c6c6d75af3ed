"""AISPEND_PROVIDER_URLS path prefixes match whole path segments: a ``/v1`` route claims ``/v1``
and ``/v1/…``, not ``/v10/…``, ``/v1-groq/…`` or ``/v1beta/…``; what it does not claim goes on
to the next (shorter) route of the host:port."""

from __future__ import annotations

import openai
import pytest

from aispend.instrumentation.adapters import Router
from aispend.instrumentation.adapters.anthropic import AnthropicAdapter
from aispend.instrumentation.adapters.openai import OpenAIAdapter
from aispend.instrumentation.config import ProviderURL, parse_provider_urls
from aispend.instrumentation.exchange import HttpRequest
from tests.instrumentation.conftest import OPENAI_KEY, instrument

PORT = 39150  # routing only: nothing listens here


def post(path: str) -> HttpRequest:
    return HttpRequest("POST", "http", "127.0.0.1", PORT, path)


def gateway(*extra: str) -> Router:
    urls = [f"openai=http://127.0.0.1:{PORT}/v1", f"anthropic=http://127.0.0.1:{PORT}", *extra]
    return Router(parse_provider_urls(",".join(urls)))


@pytest.mark.parametrize(
    "path", ["/v1beta/openai/chat/completions", "/v10/chat/completions", "/v1-groq/chat/completions"]
)
def test_a_longer_segment_is_not_the_prefix_route(path):
    adapter = gateway().route(post(path))
    assert not (isinstance(adapter, OpenAIAdapter) and adapter.provider == "openai"), path
    assert adapter is None  # the anthropic route does not know these calls either


def test_the_prefix_itself_and_paths_under_it_are_the_route():
    router = gateway()
    adapter = router.route(post("/v1/chat/completions"))
    assert isinstance(adapter, OpenAIAdapter) and adapter.provider == "openai"
    assert isinstance(router.route(post("/v1/messages")), AnthropicAdapter)  # falls through to ""


def test_an_unclaimed_path_falls_through_to_the_next_route():
    """A catch-all OpenAI-compatible route behind the /v1 one gets what /v1 does not claim."""
    router = gateway(f"together=http://127.0.0.1:{PORT}/")
    adapter = router.route(post("/v1beta/openai/chat/completions"))
    assert isinstance(adapter, OpenAIAdapter) and adapter.provider == "together"
    adapter = router.route(post("/v1/chat/completions"))
    assert adapter.provider == "openai"  # the longest matching prefix still wins


@pytest.mark.parametrize("prefix", ["", "/"])
def test_an_empty_or_root_prefix_matches_everything(prefix):
    router = Router([ProviderURL("groq", "127.0.0.1", PORT, prefix)])
    for path in ("/chat/completions", "/openai/v1/chat/completions", "/v1beta/openai/chat/completions"):
        adapter = router.route(post(path))
        assert isinstance(adapter, OpenAIAdapter) and adapter.provider == "groq", path


def test_a_prefix_with_a_trailing_slash_still_matches_segments():
    router = Router([ProviderURL("groq", "127.0.0.1", PORT, "/openai/v1/")])
    assert router.route(post("/openai/v1/chat/completions")).provider == "groq"
    assert router.route(post("/openai/v10/chat/completions")) is None


def test_real_sdk_call_outside_the_prefix_is_not_named_for_the_route(fake):
    """The openai SDK on ``/openai/v1`` with a gateway route for ``/openai/v`` only: no route
    claims the call, so it is named for its host (the SDK fallback), not for the route."""
    fake.reset()
    h = instrument(fake, provider_urls=f"groq={fake.url}/openai/v,anthropic={fake.url}")
    try:
        client = openai.OpenAI(base_url=fake.openai_base, api_key=OPENAI_KEY, max_retries=0)
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hello"}])
        attrs = h.attrs()
        assert attrs["gen_ai.provider.name"] == "127.0.0.1" and attrs["gen_ai.usage.input_tokens"] == 11
    finally:
        h.instrumentor.uninstrument()
