"""Attribution headers other tools use (``x-customer-id``, ``x-feature``) beside ``x-aispend-*``:
read, and removed before the request leaves, with every client; the list is configurable."""

from __future__ import annotations

import asyncio

import aiohttp
import anthropic
import openai
import requests

from aispend.instrumentation.config import InstrumentationConfig
from tests.instrumentation.conftest import ANTHROPIC_KEY, OPENAI_KEY, instrument

MESSAGES = [{"role": "user", "content": "Hello"}]
CHAT = {"model": "gpt-4o", "messages": MESSAGES}


def ours(h):
    return [dict(s.attributes) for s in h.spans() if "aispend.service.kind" in s.attributes]


def test_openai_sdk_headers_are_read_and_stripped(harness):
    c = openai.OpenAI(base_url=harness.fake.openai_base, api_key=OPENAI_KEY, max_retries=0)
    c.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, extra_headers={"X-Customer-Id": "acme", "x-feature": "search"}
    )
    attrs = harness.attrs()
    assert (attrs["aispend.customer"], attrs["aispend.feature"]) == ("acme", "search")
    sent = harness.fake.requests[-1].headers
    assert "x-customer-id" not in sent and "x-feature" not in sent


def test_x_aispend_wins_over_the_others(harness):
    c = anthropic.Anthropic(base_url=harness.fake.anthropic_base, api_key=ANTHROPIC_KEY, max_retries=0)
    c.messages.create(
        model="claude-haiku-4-5",
        max_tokens=10,
        messages=MESSAGES,
        extra_headers={"x-customer-id": "other", "x-aispend-customer": "acme"},
    )
    (attrs,) = ours(harness)
    assert attrs["aispend.customer"] == "acme"
    sent = harness.fake.requests[-1].headers
    assert "x-customer-id" not in sent and "x-aispend-customer" not in sent


def test_requests_and_aiohttp(harness):
    url = f"{harness.fake.openai_base}/chat/completions"
    auth = {"authorization": f"Bearer {OPENAI_KEY}"}
    requests.post(url, json=CHAT, headers={**auth, "x-customer-id": "globex"}, timeout=10)
    assert "x-customer-id" not in harness.fake.requests[-1].headers

    async def call():
        async with aiohttp.ClientSession() as s, s.post(url, json=CHAT, headers={**auth, "x-feature": "chatbot"}) as r:
            await r.read()

    asyncio.run(call())
    assert "x-feature" not in harness.fake.requests[-1].headers
    first, second = ours(harness)
    assert first["aispend.customer"] == "globex" and second["aispend.feature"] == "chatbot"


def test_configured_list_replaces_the_defaults(fake):
    fake.reset()
    h = instrument(fake, attribution_headers="x-team=feature,x-tenant=customer")
    try:
        c = openai.OpenAI(base_url=fake.openai_base, api_key=OPENAI_KEY, max_retries=0)
        c.chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,
            extra_headers={"x-team": "growth", "x-tenant": "acme", "x-feature": "kept"},
        )
        (attrs,) = ours(h)
        assert (attrs["aispend.feature"], attrs["aispend.customer"]) == ("growth", "acme")
        sent = fake.requests[-1].headers
        assert sent["x-feature"] == "kept"  # no longer on the list: neither read nor removed
        assert "x-team" not in sent and "x-tenant" not in sent
    finally:
        h.instrumentor.uninstrument()


def test_config_parsing(caplog):
    default = InstrumentationConfig.load({})
    assert default.attribution_headers[:3] == (
        ("x-aispend-feature", "feature"),
        ("x-aispend-customer", "customer"),
        ("x-aispend-key", "key"),
    )
    assert ("x-customer-id", "customer") in default.attribution_headers
    none = InstrumentationConfig.load({"AISPEND_ATTRIBUTION_HEADERS": ""})
    assert [h for h, _ in none.attribution_headers] == ["x-aispend-feature", "x-aispend-customer", "x-aispend-key"]
    bad = InstrumentationConfig.load({"AISPEND_ATTRIBUTION_HEADERS": "X-Team=team, x-org=customer"})
    assert bad.attribution_headers[-1] == ("x-org", "customer")  # the bad entry is skipped, with a warning
    assert "the field must be one of feature, customer, key" in caplog.text
