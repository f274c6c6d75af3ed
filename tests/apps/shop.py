"""A small app that pays for AI calls, written as users write them: no aispend code except the
attribution blocks. Run it under `opentelemetry-instrument`; base URLs point at local fakes.

Environment: FAKE_URL (the fake provider server), optional SHOP_ROUNDS (default 1).
"""

from __future__ import annotations

import asyncio
import os

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
        requests.post(f"{FAKE}/serper/search", json={"q": "opentelemetry genai"}, headers={"X-API-KEY": SERPER_KEY},
                      timeout=10)  # fmt: skip
        httpx.get(f"{FAKE}/unsplash/search/photos", params={"query": "graphs"},
                  headers={"Authorization": "Client-ID unsplash0000000000000000key1"})  # fmt: skip


def main() -> None:
    oai = openai.OpenAI(base_url=f"{FAKE}/openai/v1", api_key=OPENAI_KEY, max_retries=0)
    claude = anthropic.AsyncAnthropic(base_url=f"{FAKE}/anthropic", api_key=ANTHROPIC_KEY, max_retries=0)
    for _ in range(int(os.environ.get("SHOP_ROUNDS", "1"))):
        summarise(oai)
        asyncio.run(chat(claude))
        research()
    print("shop: done")


if __name__ == "__main__":
    main()
