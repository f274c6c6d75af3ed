"""aiohttp.ClientSession against the fake providers: the same spans as httpx/requests calls, the
body observed only as the app reads it, and the app seeing what it sees without aispend."""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import logging
import socket

import aiohttp
import pytest

from aispend.instrumentation.calls import Call
from tests.instrumentation.conftest import ANTHROPIC_KEY, OPENAI_KEY, instrument, provider_urls

MESSAGES = [{"role": "user", "content": "Say hello to the fake server, please."}]
CHAT = {"model": "gpt-4o", "messages": MESSAGES}
STREAM = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
AUTH = {"Authorization": f"Bearer {OPENAI_KEY}"}
SERPER_KEY = "0123456789abcdef0123456789abcdef01234567"

OPENAI_CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.response.finish_reasons": ("stop",),
    "gen_ai.usage.input_tokens": 11,
    "gen_ai.usage.output_tokens": 7,
    "gen_ai.usage.cache_read.input_tokens": 4,
    "gen_ai.usage.reasoning.output_tokens": 2,
    "aispend.service.kind": "llm",
    "aispend.key": "prod-backend",
    "server.address": "127.0.0.1",
    "http.response.status_code": 200,
}


def run(make):
    """Run ``make(session)`` in a fresh event loop with a fresh ClientSession."""

    async def main():
        async with aiohttp.ClientSession() as session:
            return await make(session)

    return asyncio.run(main())


def settings(fake, **extra):
    return {"provider_urls": provider_urls(fake), "key_aliases": {"sk-proj-…a1b2": "prod-backend"}, **extra}


def outcome(make):
    try:
        return ("returned", run(make))
    except Exception as exc:
        return ("raised", type(exc), str(exc))


def compare(harness, make, **extra):
    """What the app sees without aispend, then with it: the same."""
    harness.instrumentor.uninstrument()
    bare = outcome(make)
    harness.instrumentor.instrument(tracer_provider=harness.provider, **settings(harness.fake, **extra))
    observed = outcome(make)
    assert observed == bare
    return observed


def attrs_without_timing(span):
    attrs = dict(span.attributes)
    first_chunk = attrs.pop("gen_ai.response.time_to_first_chunk", None)
    return attrs, first_chunk


def test_openai_chat_read_as_json(harness):
    async def call(session):
        async with session.post(f"{harness.fake.openai_base}/chat/completions", json=CHAT, headers=AUTH) as resp:
            assert isinstance(resp, aiohttp.ClientResponse) and repr(resp).startswith("<ClientResponse(")
            return await resp.json()

    data = run(call)
    assert data["usage"]["prompt_tokens"] == 11
    span = harness.span()
    assert span.name == "chat gpt-4o" and span.kind.name == "CLIENT" and span.status.status_code.name == "UNSET"
    assert dict(span.attributes) == {
        **OPENAI_CHAT,
        "server.port": harness.fake.port,
        "gen_ai.response.id": data["id"],
    }
    assert harness.fake.requests[-1].json == CHAT


def test_openai_stream_with_include_usage_read_by_line(harness):
    async def call(session):
        async with session.post(f"{harness.fake.openai_base}/chat/completions", json=STREAM, headers=AUTH) as resp:
            lines = [line async for line in resp.content]
            assert len(harness.spans()) == 1  # ended at the end of the body, before the release
            return lines

    lines = run(call)
    assert lines[-2:] == [b"data: [DONE]\n", b"\n"]
    span = harness.span()
    attrs, first_chunk = attrs_without_timing(span)
    assert attrs == {
        **OPENAI_CHAT,
        "server.port": harness.fake.port,
        "gen_ai.request.stream": True,
        "gen_ai.response.id": json.loads(lines[0][len(b"data: ") :])["id"],
    }
    assert first_chunk is not None and first_chunk > 0


async def _lines(resp):
    return [line async for line in resp.content]


async def _iter_chunked(resp):
    return [chunk async for chunk in resp.content.iter_chunked(7)]


async def _iter_any(resp):
    return [chunk async for chunk in resp.content.iter_any()]


async def _iter_chunks(resp):
    return [chunk async for chunk, _ in resp.content.iter_chunks()]


async def _readline(resp):
    out = []
    while line := await resp.content.readline():
        out.append(line)
    return out


async def _read_n(resp):
    out = []
    while data := await resp.content.read(5):
        out.append(data)
    return out


async def _readchunk(resp):
    out = []
    while True:
        data, end_of_chunk = await resp.content.readchunk()
        if not data and not end_of_chunk:
            return out
        out.append(data)


async def _content_read(resp):
    return [await resp.content.read()]


async def _text(resp):
    return [(await resp.text()).encode()]


@pytest.mark.parametrize(
    "reader",
    [_lines, _iter_chunked, _iter_any, _iter_chunks, _readline, _read_n, _readchunk, _content_read, _text],
    ids=lambda f: f.__name__.strip("_"),
)
def test_every_way_of_reading_a_stream_is_observed(harness, reader):
    async def call(session):
        async with session.post(f"{harness.fake.openai_base}/chat/completions", json=STREAM, headers=AUTH) as resp:
            body = b"".join(await reader(resp))
            assert len(harness.spans()) == 1  # ended at the end of the body
            return body

    body = run(call)
    assert body.endswith(b"data: [DONE]\n\n") and body.count(b"data:") == 7
    attrs, _ = attrs_without_timing(harness.span())
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (11, 7)
    assert "aispend.usage.estimated" not in attrs


def test_stream_seen_the_same_with_and_without_aispend(harness):
    async def call(session):
        async with session.post(f"{harness.fake.openai_base}/chat/completions", json=STREAM, headers=AUTH) as resp:
            lines = [line async for line in resp.content]
            return resp.status, resp.headers["content-type"], len(lines), lines[-2:]

    assert compare(harness, call)[1] == (200, "text/event-stream; charset=utf-8", 14, [b"data: [DONE]\n", b"\n"])
    assert len(harness.spans()) == 1


def test_anthropic_stream(harness):
    body = {"model": "claude-haiku-4-5", "max_tokens": 100, "messages": MESSAGES, "stream": True}
    headers = {"x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"}

    async def call(session):
        async with session.post(f"{harness.fake.anthropic_base}/v1/messages", json=body, headers=headers) as resp:
            return b"".join([chunk async for chunk in resp.content.iter_any()])

    raw = run(call)
    assert b"event: message_stop" in raw
    span = harness.span()
    attrs, first_chunk = attrs_without_timing(span)
    message_id = json.loads(raw.split(b"data: ", 1)[1].split(b"\n", 1)[0])["message"]["id"]
    assert span.name == "chat claude-haiku-4-5"
    assert attrs == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-haiku-4-5",
        "gen_ai.request.stream": True,
        "gen_ai.response.model": "claude-haiku-4-5-20251001",
        "gen_ai.response.id": message_id,
        "gen_ai.response.finish_reasons": ("end_turn",),
        # Anthropic's input_tokens (9) exclude the cache: the span carries 9 + 3 + 5
        "gen_ai.usage.input_tokens": 17,
        "gen_ai.usage.output_tokens": 6,
        "gen_ai.usage.cache_read.input_tokens": 3,
        "gen_ai.usage.cache_creation.input_tokens": 5,
        "gen_ai.usage.cache_write.input_tokens": 5,
        "aispend.service.kind": "llm",
        "aispend.key": "sk-ant-…ZZZZ",
        "server.address": "127.0.0.1",
        "server.port": harness.fake.port,
        "http.response.status_code": 200,
    }
    assert first_chunk is not None and first_chunk > 0


def test_serper_search_read_as_text(harness):
    async def call(session):
        url = f"{harness.fake.serper_base}/search"
        async with session.post(url, json={"q": "opentelemetry"}, headers={"X-API-KEY": SERPER_KEY}) as resp:
            return json.loads(await resp.text())

    assert run(call)["searchParameters"]["q"] == "opentelemetry"
    span = harness.span()
    assert span.name == "search serper"
    assert dict(span.attributes) == {
        "gen_ai.operation.name": "search",
        "gen_ai.provider.name": "serper",
        "gen_ai.request.model": "search",
        "aispend.service.kind": "search",
        "aispend.usage.requests": 1,
        "aispend.key": "…4567",
        "server.address": "127.0.0.1",
        "server.port": harness.fake.port,
        "http.response.status_code": 200,
    }


def test_query_params_base_url_and_session_headers_are_read(harness):
    async def call():
        async with aiohttp.ClientSession(base_url=harness.fake.url + "/unsplash/") as session:
            params = {"query": "cat", "client_id": "abcdefghijklmnop9999"}
            async with session.get("search/photos", params=params) as resp:
                await resp.read()
        async with (
            aiohttp.ClientSession(base_url=harness.fake.openai_base + "/", headers=AUTH) as session,
            session.post("chat/completions", json=CHAT) as resp,
        ):
            await resp.read()

    asyncio.run(call())
    unsplash, chat = harness.spans()
    assert (unsplash.name, unsplash.attributes["aispend.key"]) == ("search unsplash", "…9999")
    assert chat.attributes["aispend.key"] == "prod-backend"  # from the session's default Authorization


def test_rate_limited_response(harness):
    harness.fake.fault = "http_429"

    async def call(session):
        async with session.post(f"{harness.fake.openai_base}/chat/completions", json=CHAT, headers=AUTH) as resp:
            return resp.status, resp.headers.get("retry-after"), (await resp.json())["error"]["code"]

    assert compare(harness, call) == ("returned", (429, "0", "rate_limit_exceeded"))
    span = harness.span()
    assert span.status.status_code.name == "ERROR"
    assert (span.attributes["error.type"], span.attributes["http.response.status_code"]) == ("rate_limit_exceeded", 429)
    assert "gen_ai.usage.input_tokens" not in span.attributes  # a failed call is not estimated


def test_raise_for_status_errors_are_reraised_with_the_status_on_the_span(harness):
    harness.fake.fault = "http_429"

    def call_with(raise_in_session):
        async def call(_):
            async with aiohttp.ClientSession(raise_for_status=raise_in_session) as session:
                url = f"{harness.fake.openai_base}/chat/completions"
                resp = await session.post(url, json=CHAT, headers=AUTH)
                resp.raise_for_status()  # released by aiohttp when it raises outside `async with`

        return call

    for raise_in_session in (True, False):
        result = compare(harness, call_with(raise_in_session))
        assert result[:2] == ("raised", aiohttp.ClientResponseError) and result[2].startswith("429")
    by_session, by_app = harness.spans()
    for span, error_type in ((by_session, "ClientResponseError"), (by_app, "429")):
        assert span.status.status_code.name == "ERROR"
        assert (span.attributes["http.response.status_code"], span.attributes["error.type"]) == (429, error_type)


def _dead_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused_is_reraised_unchanged(harness):
    dead = f"http://127.0.0.1:{_dead_port()}/v1"
    extra = {"provider_urls": f"{provider_urls(harness.fake)},openai={dead}"}

    async def call(session):
        async with session.post(f"{dead}/chat/completions", json=CHAT, headers=AUTH) as resp:
            return resp.status

    result = compare(harness, call, **extra)
    assert result[:2] == ("raised", aiohttp.ClientConnectorError)
    span = harness.span()
    assert span.status.status_code.name == "ERROR" and span.attributes["error.type"] == "ClientConnectorError"
    assert "http.response.status_code" not in span.attributes


def test_timeout_is_reraised_unchanged(harness):
    harness.fake.fault, harness.fake.slow_seconds = "slow", 1.0

    async def call(session):
        url = f"{harness.fake.openai_base}/chat/completions"
        async with session.post(url, json=CHAT, headers=AUTH, timeout=aiohttp.ClientTimeout(total=0.2)) as resp:
            return resp.status

    result = compare(harness, call)
    assert result[0] == "raised"
    assert harness.span().attributes["error.type"] == result[1].__qualname__


def test_truncated_stream_raises_what_aiohttp_raises_and_ends_the_span(harness):
    harness.fake.fault = "truncate"

    async def call(session):
        async with session.post(f"{harness.fake.openai_base}/chat/completions", json=STREAM, headers=AUTH) as resp:
            return [line async for line in resp.content]

    result = compare(harness, call)
    assert result[0] == "raised"
    span = harness.span()
    assert span.status.status_code.name == "ERROR" and span.attributes["error.type"] == result[1].__qualname__


def test_a_cancelled_read_does_not_end_the_stream(harness):
    harness.fake.chunk_delay = 0.1

    async def call(session):
        async with session.post(f"{harness.fake.openai_base}/chat/completions", json=STREAM, headers=AUTH) as resp:
            lines = [await resp.content.readline(), await resp.content.readline()]  # the first event
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(resp.content.readline(), 0.001)
            return lines + [line async for line in resp.content]

    assert run(call)[-2:] == [b"data: [DONE]\n", b"\n"]
    attrs, _ = attrs_without_timing(harness.span())
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (11, 7)
    assert "error.type" not in attrs


def test_unread_response_ends_once_at_release(harness):
    async def call(session):
        resp = await session.post(f"{harness.fake.openai_base}/chat/completions", json=CHAT, headers=AUTH)
        assert resp.status == 200
        assert harness.spans() == []  # open while the app holds the unread response
        resp.release()
        resp.release()
        resp.close()
        async with session.post(f"{harness.fake.openai_base}/chat/completions", json=CHAT, headers=AUTH) as resp:
            pass
        resp.release()

    run(call)
    spans = harness.spans()
    assert len(spans) == 2
    for span in spans:
        assert span.end_time is not None and span.status.status_code.name == "UNSET"
        assert span.attributes["http.response.status_code"] == 200
        assert span.attributes["aispend.usage.estimated"] is True  # never read: usage unknown


def test_dropped_response_ends_when_collected(harness):
    async def call(session):
        resp = await session.post(f"{harness.fake.openai_base}/chat/completions", json=STREAM, headers=AUTH)
        await resp.content.readline()
        assert harness.spans() == []
        del resp
        gc.collect()
        assert len(harness.spans()) == 1

    run(call)
    span = harness.span()
    assert span.end_time is not None and span.attributes["aispend.usage.estimated"] is True


def test_attribution_headers_are_read_then_removed(harness):
    async def call():
        session_headers = {"x-aispend-customer": "globex", **AUTH}
        async with aiohttp.ClientSession(headers=session_headers) as session:
            url = f"{harness.fake.openai_base}/chat/completions"
            request_headers = {"x-aispend-feature": "summaries"}
            async with session.post(url, json=CHAT, headers=request_headers) as resp:
                await resp.read()
            assert request_headers == {"x-aispend-feature": "summaries"}  # the app's dict is not changed
            async with session.post(url, json=CHAT, headers=[("X-Aispend-Customer", "acme")]) as resp:
                await resp.read()
            assert session.headers["x-aispend-customer"] == "globex"  # nor the session

    asyncio.run(call())
    sent = harness.fake.requests
    assert len(sent) == 2
    for request in sent:
        assert not [name for name in request.headers if name.startswith("x-aispend-")], request.headers
        assert request.headers["authorization"] == AUTH["Authorization"]
    first, second = harness.spans()
    assert (first.attributes["aispend.feature"], first.attributes["aispend.customer"]) == ("summaries", "globex")
    assert "aispend.feature" not in second.attributes and second.attributes["aispend.customer"] == "acme"


def test_gzip_bodies_with_and_without_auto_decompress(harness):
    harness.fake.gzip = True

    async def call():
        url = f"{harness.fake.openai_base}/chat/completions"
        async with aiohttp.ClientSession() as session, session.post(url, json=CHAT, headers=AUTH) as resp:
            decoded = await resp.json()
        async with (
            aiohttp.ClientSession(auto_decompress=False) as session,
            session.post(url, json=CHAT, headers=AUTH) as resp,
        ):
            raw = await resp.read()
        return decoded, raw

    decoded, raw = asyncio.run(call())
    assert json.loads(gzip.decompress(raw))["usage"] == decoded["usage"]
    for span in harness.spans():
        assert span.attributes["gen_ai.usage.input_tokens"] == 11 and "aispend.usage.estimated" not in span.attributes


def test_failure_inside_aispend_is_logged_once_and_the_stream_flows(harness, monkeypatch, caplog):
    def broken(self, status, headers, already_decoded=False):
        raise RuntimeError("aispend bug")

    async def call(session):
        async with session.post(f"{harness.fake.openai_base}/chat/completions", json=STREAM, headers=AUTH) as resp:
            return [line async for line in resp.content][-2:]

    monkeypatch.setattr(Call, "tap", broken)
    with caplog.at_level(logging.DEBUG, logger="aispend.instrumentation"):
        assert compare(harness, call) == ("returned", [b"data: [DONE]\n", b"\n"])
        run(call)
    spans = harness.spans()
    assert len(spans) == 2 and all(s.end_time is not None for s in spans)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "the call proceeds unchanged" in warnings[0].getMessage()


def test_other_hosts_are_not_touched(harness):
    async def call(session):
        async with session.get(f"{harness.fake.url}/not-an-ai-api") as resp:
            return type(resp), resp.status

    assert run(call) == (aiohttp.ClientResponse, 404)
    assert harness.spans() == []


def test_uninstrument_leaves_aiohttp_untouched(fake):
    fake.reset()
    original = aiohttp.ClientSession._request
    h = instrument(fake)
    try:
        assert aiohttp.ClientSession._request is not original
    finally:
        h.instrumentor.uninstrument()
    assert aiohttp.ClientSession._request is original

    async def call(session):
        url = f"{fake.openai_base}/chat/completions"
        async with session.post(url, json=CHAT, headers={**AUTH, "x-aispend-feature": "kept"}) as resp:
            return type(resp), await resp.json()

    kind, data = run(call)
    assert kind is aiohttp.ClientResponse and data["usage"]["prompt_tokens"] == 11
    assert fake.requests[-1].headers["x-aispend-feature"] == "kept"
    assert h.spans() == []
