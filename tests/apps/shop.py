"""A small app that pays for AI calls, written as users write them: no aispend code except the
attribution blocks. Run it under `opentelemetry-instrument`; base URLs point at local fakes.

Environment: FAKE_URL (the fake provider server), optional SHOP_ROUNDS (default 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

import anthropic
import httpx
import openai
import requests

import aispend

FAKE = os.environ["FAKE_URL"]
OPENAI_KEY = "sk-proj-shopapp0000000000000000000000000000a1b2"
ANTHROPIC_KEY = "sk-ant-api03-shopapp00000000000000000000000000-c3d4"
SERPER_KEY = "0000000000000000000000000000000000serp"


def summarise(client: openai.OpenAI) -> None:
    with aispend.attribute(feature="summary", customer="acme"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Summarise this."}])
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "And briefly."}],
            stream=True,
            stream_options={"include_usage": True},
        )
        for _ in stream:
            pass


async def chat(client: anthropic.AsyncAnthropic) -> None:
    with aispend.attribute(feature="chat", customer="globex"):
        await client.messages.create(
            model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "Hello!"}]
        )


def research() -> None:
    with aispend.attribute(feature="research", customer="acme"):
        requests.post(
            f"{FAKE}/serper/search", json={"q": "opentelemetry genai"}, headers={"X-API-KEY": SERPER_KEY}, timeout=10
        )
        httpx.get(
            f"{FAKE}/unsplash/search/photos",
            params={"query": "graphs"},
            headers={"Authorization": "Client-ID unsplash0000000000000000key1"},
        )


def mishaps(client: openai.OpenAI) -> None:
    """What production also has: a rate-limited call and a model no price list knows yet."""
    with aispend.attribute(feature="summary", customer="acme"):
        with contextlib.suppress(openai.RateLimitError):
            client.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": "again"}],
                extra_headers={"x-fake-fault": "http_429"},
            )
        client.chat.completions.create(model="gpt-9-preview", messages=[{"role": "user", "content": "new model"}])


def main() -> None:
    oai = openai.OpenAI(base_url=f"{FAKE}/openai/v1", api_key=OPENAI_KEY, max_retries=0)
    for _ in range(int(os.environ.get("SHOP_ROUNDS", "1"))):
        summarise(oai)
        # an async client belongs to one event loop: each round's loop gets its own
        claude = anthropic.AsyncAnthropic(base_url=f"{FAKE}/anthropic", api_key=ANTHROPIC_KEY, max_retries=0)
        asyncio.run(chat(claude))
        research()
        if os.environ.get("SHOP_MISHAPS"):
            mishaps(oai)
    print(f"shop: done at {time.time():.3f}", flush=True)


if __name__ == "__main__":
    main()
