"""Plain httpx (sync/async), httpx2 and requests calls: Gemini, search and image-search APIs."""

from __future__ import annotations

import asyncio
import json

import httpx
import httpx2
import requests

GEMINI_KEY = "AIzaSyA-fake-gemini-key-0123456789abcd"
SERPER_KEY = "0123456789abcdef0123456789abcdef01234567"


def gemini_url(h, model="gemini-2.0-flash", method="generateContent"):
    return f"{h.fake.gemini_base}/v1beta/models/{model}:{method}"


BODY = {"contents": [{"role": "user", "parts": [{"text": "Hello Gemini"}]}]}


def test_gemini_json_with_httpx(harness):
    r = httpx.post(gemini_url(harness), json=BODY, headers={"x-goog-api-key": GEMINI_KEY})
    assert r.status_code == 200
    span = harness.span()
    attrs = dict(span.attributes)
    assert span.name == "generate_content gemini-2.0-flash"
    assert (attrs["gen_ai.provider.name"], attrs["gen_ai.operation.name"]) == ("gcp.gemini", "generate_content")
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (12, 8)
    assert attrs["aispend.key"] == "AIza…abcd" and GEMINI_KEY not in json.dumps(attrs)


def test_gemini_sse_stream_with_httpx2_and_thoughts(harness):
    harness.fake.set_usage("gemini", thoughtsTokenCount=5, cachedContentTokenCount=4)
    with (
        httpx2.Client() as c,
        c.stream(
            "POST",
            gemini_url(harness, method="streamGenerateContent"),
            json=BODY,
            params={"alt": "sse", "key": GEMINI_KEY},
        ) as r,
    ):
        raw = b"".join(r.iter_bytes())
    assert raw.count(b"data:") >= 2
    attrs = harness.attrs()
    # thinking tokens are billed as output: output = candidates (8) + thoughts (5)
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (12, 13)
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 5 and attrs["gen_ai.usage.cache_read.input_tokens"] == 4
    assert attrs["gen_ai.request.stream"] is True


def test_gemini_stream_as_json_array_async(harness):
    async def call():
        async with httpx.AsyncClient() as c:
            return await c.post(gemini_url(harness, method="streamGenerateContent"), json=BODY)

    assert asyncio.run(call()).status_code == 200
    assert harness.attrs()["gen_ai.usage.output_tokens"] == 8


def test_serper_search_and_batch_with_requests(harness):
    url = f"{harness.fake.serper_base}/search"
    requests.post(url, json={"q": "opentelemetry"}, headers={"X-API-KEY": SERPER_KEY}, timeout=10)
    requests.post(url, json=[{"q": "a"}, {"q": "b"}, {"q": "c"}], headers={"X-API-KEY": SERPER_KEY}, timeout=10)
    requests.post(
        f"{harness.fake.serper_base}/images", json={"q": "cats"}, headers={"X-API-KEY": SERPER_KEY}, timeout=10
    )
    one, batch, images = harness.spans()
    assert one.name == "search serper"
    for key, expected in {
        "gen_ai.provider.name": "serper",
        "gen_ai.operation.name": "search",
        "gen_ai.request.model": "search",
        "aispend.service.kind": "search",
    }.items():
        assert one.attributes[key] == expected
    assert one.attributes["aispend.usage.requests"] == 1 and one.attributes["aispend.key"] == "…4567"
    assert batch.attributes["aispend.usage.requests"] == 3
    assert images.attributes["aispend.service.kind"] == "image_search"


def test_tavily_credits_by_depth(harness):
    url = f"{harness.fake.tavily_base}/search"
    key = "tvly-dev-abcdefghijklmnop1234"
    httpx.post(url, json={"query": "x", "api_key": key})
    httpx.post(
        url,
        json={"query": "x", "search_depth": "advanced", "include_usage": True},
        headers={"Authorization": f"Bearer {key}"},
    )
    basic, advanced = harness.spans()
    assert basic.attributes["aispend.usage.requests"] == 1 and advanced.attributes["aispend.usage.requests"] == 2
    assert basic.attributes["aispend.key"] == advanced.attributes["aispend.key"] == "tvly-dev-…1234"


def test_brave_and_unsplash_get(harness):
    requests.get(
        f"{harness.fake.brave_base}/res/v1/web/search",
        params={"q": "otel"},
        headers={"X-Subscription-Token": "BSA0123456789abcdefghij"},
        timeout=10,
    )
    httpx.get(
        f"{harness.fake.unsplash_base}/search/photos", params={"query": "cat", "client_id": "abcdefghijklmnop9999"}
    )
    brave, unsplash = harness.spans()
    assert (brave.name, brave.attributes["gen_ai.request.model"]) == ("search brave", "web-search")
    assert (unsplash.name, unsplash.attributes["aispend.service.kind"]) == ("search unsplash", "image_search")
    assert unsplash.attributes["aispend.key"] == "…9999"
    assert brave.attributes["aispend.key"] == "BSA…ghij"


def test_requests_streaming_sse_from_openai(harness):
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with requests.post(
        f"{harness.fake.openai_base}/chat/completions",
        json=body,
        stream=True,
        timeout=10,
        headers={"Authorization": "Bearer sk-test-0123456789abcdefghij"},
    ) as r:
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == b"data: [DONE]"
    attrs = harness.attrs()
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (11, 7)


def test_gzip_bodies_are_decoded_for_streamed_httpx_responses(harness):
    harness.fake.gzip = True
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client() as c, c.stream("POST", f"{harness.fake.openai_base}/chat/completions", json=body) as r:
        assert r.headers["content-encoding"] == "gzip"
        data = json.loads(r.read())
    assert data["usage"]["prompt_tokens"] == 11
    assert harness.attrs()["gen_ai.usage.input_tokens"] == 11


def test_other_hosts_are_not_touched(harness):
    r = httpx.get(f"{harness.fake.url}/not-an-ai-api")
    assert r.status_code == 404
    assert harness.spans() == []
