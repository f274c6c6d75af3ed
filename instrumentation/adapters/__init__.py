"""Provider adapters and the router that picks one for a request (host first, then path)."""

from __future__ import annotations

from collections.abc import Iterable

from aispend.instrumentation.adapters.anthropic import AnthropicAdapter
from aispend.instrumentation.adapters.base import Adapter, CallStart, Observed
from aispend.instrumentation.adapters.bedrock import BedrockAdapter
from aispend.instrumentation.adapters.brave import brave
from aispend.instrumentation.adapters.cohere import CohereAdapter
from aispend.instrumentation.adapters.gemini import GeminiAdapter
from aispend.instrumentation.adapters.ollama import OllamaAdapter
from aispend.instrumentation.adapters.openai import OpenAIAdapter
from aispend.instrumentation.adapters.serper import serper
from aispend.instrumentation.adapters.tavily import tavily
from aispend.instrumentation.adapters.unsplash import unsplash
from aispend.instrumentation.config import ProviderURL
from aispend.instrumentation.exchange import HttpRequest
from aispend.providers import HOST_PATTERNS, HOST_SUFFIXES, HOSTS


def adapter_for(provider: str) -> Adapter:
    """The adapter that speaks ``provider``'s wire format; unknown names are OpenAI-compatible."""
    match provider:
        case "anthropic":
            return AnthropicAdapter()
        case "gcp.gemini" | "gcp.vertex_ai":
            return GeminiAdapter(provider=provider)
        case "serper":
            return serper()
        case "tavily":
            return tavily()
        case "brave":
            return brave()
        case "unsplash":
            return unsplash()
        case "aws.bedrock":
            return BedrockAdapter()
        case "cohere":
            return CohereAdapter()
        case "ollama":
            return OllamaAdapter()
        case "azure.ai.openai":
            return OpenAIAdapter(provider=provider, azure=True)
        case _:
            return OpenAIAdapter(provider=provider)


class Router:
    """Finds the adapter for a request in a dict lookup; non-AI traffic costs one miss."""

    def __init__(self, provider_urls: Iterable[ProviderURL] = ()) -> None:
        self._hosts = {host: adapter_for(p) for host, p in HOSTS.items()}
        self._suffixes = tuple((suffix, adapter_for(p)) for suffix, p in HOST_SUFFIXES)
        self._patterns = tuple((pattern, adapter_for(p)) for pattern, p in HOST_PATTERNS)
        self._configured: dict[tuple[str, int | None], list[tuple[str, Adapter]]] = {}
        for url in provider_urls:
            self._configured.setdefault((url.host, url.port), []).append((url.path_prefix, adapter_for(url.provider)))
        for routes in self._configured.values():
            routes.sort(key=lambda r: len(r[0]), reverse=True)  # longest prefix first

    def route(self, request: HttpRequest) -> Adapter | None:
        routes = self._configured.get((request.host, request.port))
        if routes:
            for prefix, adapter in routes:
                if request.path.startswith(prefix):
                    return adapter if adapter.matches(request) else None
        adapter = self._hosts.get(request.host)
        if adapter is None:
            for suffix, candidate in self._suffixes:
                if request.host.endswith(suffix):
                    adapter = candidate
                    break
        if adapter is None and "amazonaws.com" in request.host:  # only AWS hosts pay for the patterns
            for pattern, candidate in self._patterns:
                if pattern.search(request.host):
                    adapter = candidate
                    break
        return adapter if adapter is not None and adapter.matches(request) else None


__all__ = ["Adapter", "CallStart", "Observed", "Router", "adapter_for"]
