"""Provider adapters and the router that picks one for a request (host first, then path)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

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
from aispend.providers import HOST_PATTERNS, HOST_SUFFIXES, HOSTS, from_host


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


def sdk_wire_format(user_agent: str | None) -> str | None:
    """``openai``, ``azure`` or ``anthropic`` when the User-Agent is that vendor's own SDK
    (``OpenAI/Python 3.57.0``, ``AsyncAzureOpenAI/Python …``, ``Anthropic/Python 2.14.0``,
    ``OpenAI/JS …``), else None."""
    if not user_agent:
        return None
    name = user_agent.partition("/")[0]
    name = name.removeprefix("Async")
    return _SDK_NAMES.get(name)


_SDK_NAMES = {"OpenAI": "openai", "AzureOpenAI": "azure", "Anthropic": "anthropic"}
_SDK_ROUTES_KEPT = 256  # (host, port, SDK) adapters cached for hosts aispend does not know


class Router:
    """Finds the adapter for a request in a dict lookup; non-AI traffic costs one miss."""

    def __init__(
        self, provider_urls: Iterable[ProviderURL] = (), provider_names: Mapping[str, str] | None = None
    ) -> None:
        self._names = dict(provider_names or {})
        self._sdk_routes: dict[tuple[str, int | None, str], Adapter] = {}
        self._hosts = {host: adapter_for(p) for host, p in HOSTS.items()}
        self._suffixes = tuple((suffix, adapter_for(p)) for suffix, p in HOST_SUFFIXES)
        self._patterns = tuple((pattern, adapter_for(p)) for pattern, p in HOST_PATTERNS)
        # (host, port) -> (prefix without its trailing "/", its length, adapter): the length is
        # where the path must end or go on with "/", computed once rather than per request.
        self._configured: dict[tuple[str, int | None], list[tuple[str, int, Adapter]]] = {}
        for url in provider_urls:
            prefix = url.path_prefix.rstrip("/")
            route = (prefix, len(prefix), adapter_for(url.provider))
            self._configured.setdefault((url.host, url.port), []).append(route)
        for routes in self._configured.values():
            routes.sort(key=lambda r: r[1], reverse=True)  # longest prefix first

    def route(self, request: HttpRequest) -> Adapter | None:
        routes = self._configured.get((request.host, request.port))
        if routes:
            # A gateway serves several providers under one host:port: the longest prefix whose
            # adapter recognises the request wins; one that does not passes it to the next.
            # Prefixes match whole segments: /v1 claims /v1 and /v1/…, never /v10 or /v1beta/….
            path = request.path
            for prefix, size, adapter in routes:
                if (
                    not size or (path.startswith(prefix) and (len(path) == size or path.startswith("/", size)))
                ) and adapter.matches(request):
                    return adapter
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

    def route_sdk(self, request: HttpRequest, user_agent: str | None) -> Adapter | None:
        """For a request ``route`` found no adapter for: the adapter of the OpenAI or Anthropic
        SDK that sent it (known by its User-Agent), named for the host, if it recognises the call.
        Nothing else of such a request is read, and requests from any other client are ignored."""
        wire = sdk_wire_format(user_agent)
        if wire is None:
            return None
        key = (request.host, request.port, wire)
        adapter = self._sdk_routes.get(key)
        if adapter is None:
            if len(self._sdk_routes) >= _SDK_ROUTES_KEPT:
                self._sdk_routes.clear()
            name = self.provider_name(request.host, request.port)
            if wire == "anthropic":
                adapter = AnthropicAdapter(provider=name)
            else:
                adapter = OpenAIAdapter(provider=name, azure=wire == "azure")
            self._sdk_routes[key] = adapter
        return adapter if adapter.matches(request) else None

    def provider_name(self, host: str, port: int | None) -> str:
        """The provider an SDK call is named for: ``AISPEND_PROVIDER_NAMES`` (``host:port``, then
        ``host``), else the provider of a known host (the OpenAI SDK on Anthropic's or Gemini's
        OpenAI-compatible endpoint), else the host itself."""
        host = host.lower()
        return self._names.get(f"{host}:{port}") or self._names.get(host) or from_host(host) or host


__all__ = ["Adapter", "CallStart", "Observed", "Router", "adapter_for", "sdk_wire_format"]
