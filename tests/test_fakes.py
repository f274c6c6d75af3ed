"""The fake providers speak the real wire formats: the REAL openai / anthropic SDKs parse them, and
every fault produces the exception the SDK raises against the real API.

Later tests rely on these fakes to prove the instrumentation reads usage correctly and never
changes what the app sees, so a fake that drifted from the wire format would make them worthless.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import socket
import threading
import time

import anthropic
import httpx
import httpx2
import openai
import pytest
import requests

from tests.fakes import payloads
from tests.fakes.providers import FAULTS, FakeProviders

MSG = [{"role": "user", "content": "hi"}]
CLAUDE = "claude-haiku-4-5"  # not deprecated, so the SDK emits no warning


@pytest.fixture(scope="module")
def server():
    with FakeProviders() as fake:
        yield fake


@pytest.fixture(scope="module")
def http():
    """One raw client for the module: a new httpx client per call costs tens of milliseconds."""
    with httpx.Client(timeout=5) as client:
        yield client


@pytest.fixture
def fake(server):
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def oai(fake):
    with openai.OpenAI(base_url=fake.openai_base, api_key="sk-test-1234", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(fake):
    with anthropic.Anthropic(base_url=fake.anthropic_base, api_key="sk-ant-test", max_retries=0) as client:
        yield client


def assert_openai_chat_usage(usage) -> None:
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (11, 7, 18)
    assert usage.prompt_tokens_details.cached_tokens == 4
    assert usage.completion_tokens_details.reasoning_tokens == 2


def assert_anthropic_usage(usage) -> None:
    assert (usage.input_tokens, usage.output_tokens) == (9, 6)
    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (5, 3)


# --- OpenAI ---------------------------------------------------------------------------------------


def test_openai_chat_sync_parses_usage_model_and_records_request(fake, oai):
    first = oai.chat.completions.create(model="gpt-4o", messages=MSG)
    second = oai.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert_openai_chat_usage(first.usage)
    assert first.model == "gpt-4o-2024-08-06"
    assert second.model == "gpt-4o-mini-2024-07-18"
    assert first.id.startswith("chatcmpl-fake-") and first.id != second.id
    assert first.choices[0].message.content == "Hello from the fake openai server."
    assert first._request_id.startswith("req_fake_")
    req = fake.requests[0]
    assert (req.method, req.path, req.provider) == ("POST", "/openai/v1/chat/completions", "openai")
    assert req.headers["authorization"] == "Bearer sk-test-1234"
    assert req.json["model"] == "gpt-4o" and json.loads(req.body) == req.json
    assert len(fake.requests) == 2
    fake.clear()
    assert fake.requests == []


def test_openai_chat_async(fake):
    async def main():
        async with openai.AsyncOpenAI(base_url=fake.openai_base, api_key="sk-test", max_retries=0) as client:
            result = await client.chat.completions.create(model="gpt-4o", messages=MSG)
            stream = await client.chat.completions.create(
                model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": True}
            )
            chunks = [chunk async for chunk in stream]
            return result, chunks

    result, chunks = asyncio.run(main())
    assert_openai_chat_usage(result.usage)
    assert_openai_chat_usage(chunks[-1].usage)


def test_openai_chat_stream_without_include_usage_has_no_usage(fake, oai, http):
    fake.stream_chunks = 5
    chunks = list(oai.chat.completions.create(model="gpt-4o", messages=MSG, stream=True))
    assert all(c.usage is None and len(c.choices) == 1 for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello from the fake openai server."
    assert len(chunks) == 5 + 2  # role chunk, 5 text pieces, finish chunk
    assert chunks[-1].choices[0].finish_reason == "stop"
    raw = http.post(fake.openai_base + "/chat/completions", json={"model": "gpt-4o", "stream": True}).text
    assert '"usage"' not in raw and raw.endswith("data: [DONE]\n\n")


def test_stream_length_per_request_header_repeats_the_reply(fake, oai, http):
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o", messages=MSG, stream=True, extra_headers={"x-fake-stream-chunks": "100"}
        )
    )
    pieces = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert len(pieces) == 100 and all(pieces)  # role chunk, 100 text pieces, finish chunk
    reply = "Hello from the fake openai server."
    assert "".join(pieces) == " ".join([reply] * 3)  # 34 characters: repeated to fill 100 pieces
    assert len(list(oai.chat.completions.create(model="gpt-4o", messages=MSG, stream=True))) == 3 + 2
    bad = http.post(
        fake.openai_base + "/chat/completions",
        json={"model": "gpt-4o", "stream": True},
        headers={"x-fake-stream-chunks": "many"},
    )
    assert bad.status_code == 400 and "x-fake-stream-chunks" in bad.text


def test_openai_chat_stream_with_include_usage_ends_with_usage_chunk(fake, oai):
    kwargs = {"model": "gpt-4o", "messages": MSG, "stream": True, "stream_options": {"include_usage": True}}
    chunks = list(oai.chat.completions.create(**kwargs))
    assert chunks[-1].choices == []
    assert_openai_chat_usage(chunks[-1].usage)
    assert all(c.usage is None for c in chunks[:-1])
    with oai.chat.completions.stream(model="gpt-4o", messages=MSG, stream_options={"include_usage": True}) as stream:
        final = stream.get_final_completion()
    assert_openai_chat_usage(final.usage)
    assert final.choices[0].message.content == "Hello from the fake openai server."


def test_openai_legacy_completions(fake, oai):
    result = oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi")
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.total_tokens) == (11, 7, 18)
    chunks = list(oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi", stream=True))
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].text for c in chunks) == "Hello from the fake openai server."
    kwargs = {"stream": True, "stream_options": {"include_usage": True}}
    chunks = list(oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi", **kwargs))
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 18


def test_openai_responses_api(fake, oai):
    def check(usage) -> None:
        assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (11, 7, 18)
        assert usage.input_tokens_details.cached_tokens == 4
        assert usage.output_tokens_details.reasoning_tokens == 2

    result = oai.responses.create(model="gpt-4o", input="hi")
    check(result.usage)
    assert result.output_text == "Hello from the fake openai server."
    assert result.id.startswith("resp_fake_") and result.model == "gpt-4o-2024-08-06"

    events = list(oai.responses.create(model="gpt-4o", input="hi", stream=True))
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert types.count("response.output_text.delta") == fake.stream_chunks
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].response.usage is None
    check(events[-1].response.usage)

    with oai.responses.stream(model="gpt-4o", input="hi") as stream:
        final = stream.get_final_response()
    check(final.usage)
    assert final.output_text == "Hello from the fake openai server."


def test_openai_embeddings_base64_default_and_float(fake, oai):
    result = oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (8, 8)
    assert len(result.data) == 2 and len(result.data[1].embedding) == 8
    assert fake.requests[-1].json.get("encoding_format") == "base64"  # the SDK's default on the wire
    floats = oai.embeddings.create(model="text-embedding-3-small", input="a", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(result.data[0].embedding, abs=1e-6)


def test_openai_images(fake, oai, http):
    two = oai.images.generate(model="dall-e-2", prompt="a cat", n=2, size="256x256")
    assert two.usage is None and len(two.data) == 2 and all(d.url for d in two.data)
    assert http.get(two.data[0].url).content == payloads.PNG_1X1

    three = oai.images.generate(model="dall-e-3", prompt="a cat", response_format="b64_json")
    assert base64.b64decode(three.data[0].b64_json) == payloads.PNG_1X1
    assert three.data[0].revised_prompt == "a cat"
    with pytest.raises(openai.BadRequestError):
        oai.images.generate(model="dall-e-3", prompt="a cat", n=2)

    gpt = oai.images.generate(model="gpt-image-1", prompt="a cat", n=2)
    assert len(gpt.data) == 2
    u = gpt.usage
    assert (u.input_tokens, u.output_tokens, u.total_tokens) == (20, 272, 292)
    assert (u.input_tokens_details.text_tokens, u.input_tokens_details.image_tokens) == (20, 0)


def test_azure_openai_deployment_answers_underlying_model(fake, http):
    fake.azure_deployments["mini-prod"] = "gpt-4o-mini-2024-07-18"
    client = openai.AzureOpenAI(
        azure_endpoint=fake.azure_base, api_key="az-key", api_version="2024-10-21", max_retries=0
    )
    result = client.chat.completions.create(model="chat-prod", messages=MSG)
    assert result.model == "gpt-4o-2024-08-06"
    assert_openai_chat_usage(result.usage)
    req = fake.requests[-1]
    assert req.path == "/azure/openai/deployments/chat-prod/chat/completions"
    assert req.query == {"api-version": "2024-10-21"} and req.headers["api-key"] == "az-key"
    assert client.chat.completions.create(model="mini-prod", messages=MSG).model == "gpt-4o-mini-2024-07-18"

    kwargs = {"stream": True, "stream_options": {"include_usage": True}}
    chunks = list(client.chat.completions.create(model="chat-prod", messages=MSG, **kwargs))
    assert chunks[0].choices == [] and chunks[0].prompt_filter_results  # Azure's filter-only first chunk
    assert_openai_chat_usage(chunks[-1].usage)
    assert http.post(fake.azure_base + "/openai/deployments/x/chat/completions", json={}).status_code == 400


# --- Anthropic ------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK warns about retired aliases
def test_anthropic_sync_and_alias(fake, claude):
    message = claude.messages.create(model="claude-3-5-haiku-latest", max_tokens=50, messages=MSG)
    assert_anthropic_usage(message.usage)
    assert message.model == "claude-3-5-haiku-20241022"
    assert message.content[0].text == "Hello from the fake anthropic server."
    assert message.id.startswith("msg_fake_")
    other = claude.messages.create(model="claude-3-5-sonnet-latest", max_tokens=50, messages=MSG)
    assert other.model == "claude-3-5-sonnet-20241022" and other.id != message.id
    req = fake.requests[0]
    assert req.path == "/anthropic/v1/messages" and "anthropic-version" in req.headers
    # anthropic >= 2 sends the key as a bearer token; older SDKs used x-api-key
    assert (req.headers.get("x-api-key") or req.headers["authorization"].removeprefix("Bearer ")) == "sk-ant-test"


def test_anthropic_async(fake):
    async def main():
        async with anthropic.AsyncAnthropic(base_url=fake.anthropic_base, api_key="k", max_retries=0) as client:
            message = await client.messages.create(model=CLAUDE, max_tokens=50, messages=MSG)
            async with client.messages.stream(model=CLAUDE, max_tokens=50, messages=MSG) as stream:
                final = await stream.get_final_message()
            return message, final

    message, final = asyncio.run(main())
    assert_anthropic_usage(message.usage)
    assert_anthropic_usage(final.usage)


def test_anthropic_stream_helper(fake, claude):
    with claude.messages.stream(model=CLAUDE, max_tokens=50, messages=MSG) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from the fake anthropic server."
    assert_anthropic_usage(final.usage)
    assert final.stop_reason == "end_turn"


def test_anthropic_create_stream_event_sequence(fake, claude, http):
    fake.stream_chunks = 4
    events = list(claude.messages.create(model=CLAUDE, max_tokens=50, messages=MSG, stream=True))
    types = [e.type for e in events]
    assert types == ["message_start", "content_block_start"] + ["content_block_delta"] * 4 + [
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start, delta = events[0].message.usage, events[-2]
    assert (start.input_tokens, start.output_tokens) == (9, 1)
    assert (start.cache_creation_input_tokens, start.cache_read_input_tokens) == (5, 3)
    assert delta.usage.output_tokens == 6 and delta.delta.stop_reason == "end_turn"
    raw = http.post(fake.anthropic_base + "/v1/messages", json={"model": CLAUDE, "stream": True}).text
    assert raw.startswith("event: message_start\ndata: {")
    assert "event: ping\ndata: {" in raw  # on the wire; the SDK drops pings
    message_delta = next(line for line in raw.splitlines() if '"message_delta"' in line)
    assert json.loads(message_delta.removeprefix("data: "))["usage"] == {"output_tokens": 6}


# --- usage overrides ------------------------------------------------------------------------------


def test_set_usage_and_per_request_header(fake, oai, claude):
    fake.set_usage("openai", prompt_tokens=1000, completion_tokens=500, cached_tokens=0, reasoning_tokens=0)
    usage = oai.chat.completions.create(model="gpt-4o", messages=MSG).usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1000, 500, 1500)
    assert usage.prompt_tokens_details.cached_tokens == 0
    header = {"x-fake-usage": json.dumps({"prompt_tokens": 5, "unused_key": 1})}
    usage = oai.chat.completions.create(model="gpt-4o", messages=MSG, extra_headers=header).usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (5, 500)
    assert oai.responses.create(model="gpt-4o", input="x", extra_headers=header).usage.input_tokens == 5

    fake.set_usage("anthropic", cache_read_input_tokens=0)
    header = {"x-fake-usage": '{"output_tokens": 42}'}
    usage = claude.messages.create(model=CLAUDE, max_tokens=5, messages=MSG, extra_headers=header).usage
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens) == (9, 42, 0)

    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model="gpt-4o", messages=MSG, extra_headers={"x-fake-usage": "[1]"})
    with pytest.raises(ValueError, match="unknown openai usage keys"):
        fake.set_usage("openai", input_tokens=1)
    with pytest.raises(ValueError, match="unknown usage provider"):
        fake.set_usage("nosuch", tokens=1)
    fake.reset()
    assert (
        fake.usage("openai")
        == payloads.OPENAI_USAGE
        == {
            "prompt_tokens": 11,
            "completion_tokens": 7,
            "cached_tokens": 4,
            "reasoning_tokens": 2,
        }
    )


# --- Gemini ---------------------------------------------------------------------------------------


def test_gemini_generate_content(fake, http):
    url = fake.gemini_base + "/v1beta/models/gemini-2.0-flash:generateContent"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    data = http.post(url, json=body, headers={"x-goog-api-key": "g-key"}).json()
    assert data["usageMetadata"]["promptTokenCount"] == 12
    assert data["usageMetadata"]["candidatesTokenCount"] == 8
    assert data["usageMetadata"]["totalTokenCount"] == 20
    assert "cachedContentTokenCount" not in data["usageMetadata"]  # zero counts are omitted, as on the wire
    assert data["modelVersion"] == "gemini-2.0-flash" and data["responseId"].startswith("fake-")
    assert data["candidates"][0]["content"]["parts"][0]["text"] == "Hello from the fake gemini server."
    assert fake.requests[-1].headers["x-goog-api-key"] == "g-key"

    fake.set_usage("gemini", cachedContentTokenCount=4, thoughtsTokenCount=3)
    meta = http.post(url, json=body).json()["usageMetadata"]
    assert (meta["cachedContentTokenCount"], meta["thoughtsTokenCount"], meta["totalTokenCount"]) == (4, 3, 23)


def test_gemini_stream_sse_cumulative_usage(fake, http):
    fake.stream_chunks = 4
    url = fake.gemini_base + "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    response = http.post(url, json={"contents": [{"parts": [{"text": "hi"}]}]})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "\r\n\r\n" in response.text  # Gemini frames events with CRLF
    chunks = [json.loads(line[len("data: ") :]) for line in response.text.splitlines() if line.startswith("data: ")]
    assert len(chunks) == 4
    counts = [c["usageMetadata"]["candidatesTokenCount"] for c in chunks]
    assert counts == sorted(counts) and counts[-1] == 8
    assert all(c["usageMetadata"]["promptTokenCount"] == 12 for c in chunks)
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == reply("gemini")
    array = http.post(url.replace("?alt=sse", ""), json={"contents": []}).json()  # no alt=sse: a JSON array
    assert isinstance(array, list) and array[-1]["usageMetadata"]["candidatesTokenCount"] == 8


def reply(provider: str) -> str:
    return payloads.reply_text(provider)


# --- search and image APIs ------------------------------------------------------------------------


def test_serper_single_batch_images_news(fake):
    headers = {"X-API-KEY": "serper-key"}
    single = requests.post(fake.serper_base + "/search", json={"q": "otel"}, headers=headers, timeout=5).json()
    assert single["credits"] == 1 and single["organic"] and single["searchParameters"]["q"] == "otel"
    assert fake.requests[-1].headers["x-api-key"] == "serper-key"
    batch = requests.post(fake.serper_base + "/search", json=[{"q": "a"}, {"q": "b", "num": 20}], timeout=5).json()
    assert [r["searchParameters"]["q"] for r in batch] == ["a", "b"]
    assert [r["credits"] for r in batch] == [1, 2]
    assert requests.post(fake.serper_base + "/images", json={"q": "x"}, timeout=5).json()["images"]
    assert requests.post(fake.serper_base + "/news", json={"q": "x"}, timeout=5).json()["news"]


def test_tavily_search_and_extract(fake, http):
    auth = {"Authorization": "Bearer tvly-test"}
    basic = http.post(fake.tavily_base + "/search", json={"query": "q", "include_usage": True}, headers=auth).json()
    assert basic["usage"] == {"credits": 1} and basic["results"] and "response_time" in basic
    body = {"query": "q", "search_depth": "advanced", "include_usage": True}
    assert http.post(fake.tavily_base + "/search", json=body).json()["usage"] == {"credits": 2}
    assert "usage" not in http.post(fake.tavily_base + "/search", json={"query": "q"}).json()
    urls = [f"https://example.com/{i}" for i in range(6)]
    extract = http.post(fake.tavily_base + "/extract", json={"urls": urls, "include_usage": True}).json()
    assert len(extract["results"]) == 6 and extract["usage"] == {"credits": 2}


def test_brave_web_and_images(fake, http):
    headers = {"X-Subscription-Token": "brave-key"}
    web = http.get(fake.brave_base + "/res/v1/web/search", params={"q": "otel", "count": 3}, headers=headers)
    assert web.json()["web"]["results"] and web.json()["query"]["original"] == "otel"
    assert web.headers["x-ratelimit-remaining"] == "0, 14999"
    req = fake.requests[-1]
    assert req.method == "GET" and req.query == {"q": "otel", "count": "3"}
    assert req.headers["x-subscription-token"] == "brave-key" and req.json is None
    images = http.get(fake.brave_base + "/res/v1/images/search", params={"q": "cat"}, headers=headers).json()
    assert images["type"] == "images" and images["results"]


def test_unsplash_search_and_random(fake):
    headers = {"Authorization": "Client-ID unsplash-key"}
    search = requests.get(
        fake.unsplash_base + "/search/photos", params={"query": "cat", "per_page": 2}, headers=headers
    )
    assert len(search.json()["results"]) == 2 and search.headers["X-Ratelimit-Limit"] == "50"
    assert fake.requests[-1].headers["authorization"] == "Client-ID unsplash-key"
    one = requests.get(fake.unsplash_base + "/photos/random", headers=headers, timeout=5).json()
    assert one["urls"]["regular"]
    many = requests.get(fake.unsplash_base + "/photos/random", params={"count": 3}, timeout=5).json()
    assert len(many) == 3


def test_unknown_path_is_json_404(fake, http):
    response = http.get(fake.url + "/openai/v1/nope")
    assert response.status_code == 404 and response.json()["error"]["message"].startswith("No route")
    assert http.get(fake.url + "/elsewhere").status_code == 404


# --- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("http_429", openai.RateLimitError),
        ("http_500", openai.InternalServerError),
        ("http_400", openai.BadRequestError),
        ("reset", openai.APIConnectionError),
        ("truncate", openai.APIConnectionError),
    ],
)
def test_openai_faults_raise_sdk_errors(fake, oai, fault, error):
    fake.fault = fault
    with pytest.raises(error) as info:
        oai.chat.completions.create(model="gpt-4o", messages=MSG)
    if fault == "http_429":
        assert info.value.response.headers["retry-after"] == "0"
        assert info.value.body == {
            "message": "Rate limit reached for requests (fake http_429).",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    assert len(fake.requests) == 1  # max_retries=0: one attempt, recorded even when faulted


def test_openai_truncated_stream_fails_mid_way(fake, oai):
    fake.fault = "truncate"
    seen = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in oai.chat.completions.create(model="gpt-4o", messages=MSG, stream=True):
            seen.append(chunk)
    assert seen and seen[-1].choices[0].finish_reason is None  # events arrived, the end never did


def test_not_json_and_slow_faults(fake, oai):
    fake.fault = "not_json"
    assert oai.chat.completions.create(model="gpt-4o", messages=MSG).startswith("<html>")  # what the SDK returns
    fake.fault = "slow"
    fake.slow_seconds = 1.0
    with pytest.raises(openai.APITimeoutError):
        oai.chat.completions.create(model="gpt-4o", messages=MSG, timeout=0.2)
    fake.fault = None
    with pytest.raises(ValueError, match="unknown fault"):
        fake.fault = "explode"
    assert {"not_json", "truncate", "http_429", "http_500", "http_400", "slow", "reset", "error_200"} == FAULTS


def test_anthropic_faults(fake, claude):
    def call(fault: str, stream: bool = False):
        kwargs = {"model": CLAUDE, "max_tokens": 5, "messages": MSG, "extra_headers": {"x-fake-fault": fault}}
        return list(claude.messages.create(stream=True, **kwargs)) if stream else claude.messages.create(**kwargs)

    with pytest.raises(anthropic.RateLimitError) as info:
        call("http_429")
    assert info.value.body["error"]["type"] == "rate_limit_error"
    assert info.value.response.headers["x-should-retry"] == "true"
    with pytest.raises(anthropic.BadRequestError) as info:
        call("http_400")
    assert info.value.response.headers["x-should-retry"] == "false"
    with pytest.raises(anthropic.InternalServerError):
        call("http_500", stream=True)
    with pytest.raises(anthropic.APIConnectionError):
        call("reset")
    with pytest.raises(anthropic.APIConnectionError):
        call("truncate")
    with pytest.raises(httpx2.RemoteProtocolError):  # the Anthropic SDK does not wrap mid-stream errors
        call("truncate", stream=True)
    assert fake.fault is None  # the header applied to those requests only
    assert claude.messages.create(model=CLAUDE, max_tokens=5, messages=MSG).usage.output_tokens == 6


@pytest.mark.parametrize(
    ("provider", "url", "key"),
    [
        ("gemini", "/gemini/v1beta/models/gemini-2.0-flash:generateContent", "RESOURCE_EXHAUSTED"),
        ("serper", "/serper/search", "statusCode"),
        ("tavily", "/tavily/search", "fake http_429"),
    ],
)
def test_search_and_gemini_rate_limits_are_provider_shaped(fake, provider, url, key, http):
    response = http.post(fake.url + url, json={"q": "x"}, headers={"x-fake-fault": "http_429"})
    assert response.status_code == 429 and response.headers["retry-after"] == "0"
    assert key in json.dumps(response.json())


# --- transport behaviour --------------------------------------------------------------------------


def test_gzip_only_when_enabled_and_accepted(fake, oai, http):
    fake.gzip = True
    url = fake.openai_base + "/chat/completions"
    response = http.post(url, json={"model": "gpt-4o", "messages": MSG})  # httpx accepts gzip, decodes it
    assert response.headers["content-encoding"] == "gzip"
    assert response.json()["usage"]["prompt_tokens"] == 11
    raw = http.post(url, json={"model": "gpt-4o"}, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers
    streamed = http.post(url, json={"model": "gpt-4o", "stream": True})
    assert "content-encoding" not in streamed.headers  # streams are never compressed
    assert_openai_chat_usage(oai.chat.completions.create(model="gpt-4o", messages=MSG).usage)

    with socket.create_connection(("127.0.0.1", fake.port)) as sock:  # prove the bytes really are gzip
        body = b'{"model": "gpt-4o"}'
        sock.sendall(
            b"POST /openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert json.loads(gzip.decompress(data.split(b"\r\n\r\n", 1)[1]))["model"] == "gpt-4o-2024-08-06"


def test_sse_events_arrive_incrementally(fake, http):
    fake.chunk_delay = 0.1
    fake.stream_chunks = 3  # role + 3 text + finish + [DONE] = 6 events, 5 delays
    start = time.monotonic()
    arrivals = []
    with http.stream("POST", fake.openai_base + "/chat/completions", json={"model": "gpt-4o", "stream": True}) as r:
        assert r.headers["transfer-encoding"] == "chunked"
        for line in r.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic() - start)
    assert len(arrivals) == 6
    # the server spends >= 0.5 s writing; the first event must be seen long before that
    assert arrivals[-1] >= 0.45 and arrivals[0] < 0.25


def test_chunked_request_body_and_non_json_body_are_recorded(fake, http):
    def body():
        yield b'{"q": '
        yield b'"chunked"}'

    http.post(fake.serper_base + "/search", content=body())
    req = fake.requests[-1]
    assert req.headers["transfer-encoding"] == "chunked" and req.json == {"q": "chunked"}
    response = http.post(fake.openai_base + "/chat/completions", content=b"not json")
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    assert fake.requests[-1].body == b"not json" and fake.requests[-1].json is None


def test_concurrent_requests_all_recorded_with_unique_ids(fake, oai):
    ids: list[str] = []

    def call() -> None:
        ids.append(oai.chat.completions.create(model="gpt-4o", messages=MSG).id)

    threads = [threading.Thread(target=call) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 16 and len(fake.requests) == 16


def test_start_stop_releases_port():
    fake = FakeProviders().start()
    port = fake.port
    assert fake.openai_base == f"http://127.0.0.1:{port}/openai/v1"
    assert fake.anthropic_base.endswith("/anthropic") and fake.azure_base.endswith("/azure")
    fake.stop()
    fake.stop()  # idempotent
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    with pytest.raises(RuntimeError):
        _ = fake.url


def test_groq_vertex_gateway_and_error_200(fake):
    """The Groq stream's usage in ``x_groq``; Vertex chunks with ``trafficType`` only until the
    last; one gateway serving both wire formats; an error object with HTTP 200."""
    groq = openai.OpenAI(base_url=fake.groq_base, api_key="gsk_test", max_retries=0)
    chunks = list(groq.chat.completions.create(model="llama-3.1-8b-instant", messages=MSG, stream=True))
    assert chunks[0].model_extra["x_groq"]["id"].startswith("req_")
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop" and last.usage is None
    assert last.model_extra["x_groq"]["usage"]["prompt_tokens"] == 18
    vertex = (
        f"{fake.vertex_base}/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash"
        ":streamGenerateContent"
    )
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    parts = httpx.post(vertex, json=body).json()
    assert [c["usageMetadata"] for c in parts[:-1]] == [{"trafficType": "ON_DEMAND"}] * (len(parts) - 1)
    assert parts[-1]["usageMetadata"]["promptTokenCount"] == 12
    gw = openai.OpenAI(base_url=f"{fake.gateway_base}/v1", api_key="sk-test", max_retries=0)
    assert gw.chat.completions.create(model="gpt-4o", messages=MSG).usage.prompt_tokens == 11
    an = anthropic.Anthropic(base_url=fake.gateway_base, api_key="sk-ant-test", max_retries=0)
    assert an.messages.create(model=CLAUDE, max_tokens=5, messages=MSG).usage.input_tokens == 9
    r = httpx.post(
        f"{fake.azure_base}/openai/deployments/d/chat/completions?api-version=1",
        json={},
        headers={"x-fake-fault": "error_200"},
    )
    assert r.status_code == 200 and r.json()["error"]["code"] == "content_filter"
