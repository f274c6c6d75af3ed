"""Provider names: the public API hosts aispend knows, and the spellings peers use for them.

Shared by the instrumentation (which host is which provider) and the exporter (normalising
``gen_ai.provider.name`` / ``gen_ai.system`` values and inferring a provider from
``server.address``), so a provider is named the same way everywhere.
"""

from __future__ import annotations

import re

# Public API hosts -> provider name (gen_ai.provider.name).
HOSTS = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "generativelanguage.googleapis.com": "gcp.gemini",
    "google.serper.dev": "serper",
    "scrape.serper.dev": "serper",
    "api.tavily.com": "tavily",
    "api.search.brave.com": "brave",
    "api.unsplash.com": "unsplash",
    "api.groq.com": "groq",
    "api.together.xyz": "together",
    "api.deepseek.com": "deepseek",
    "api.mistral.ai": "mistral_ai",
    "openrouter.ai": "openrouter",
    "api.x.ai": "x_ai",
    "api.fireworks.ai": "fireworks",
    "api.perplexity.ai": "perplexity",
    "api.cohere.com": "cohere",
    "api.cohere.ai": "cohere",
    # Vertex AI's hosts other than the regional {location}-aiplatform ones, as google-genai (and
    # anthropic's Vertex client) pick them: location "global" (or an API key and no location),
    # the multi-region locations "us" / "eu", and the mTLS twin of the global host.
    "aiplatform.googleapis.com": "gcp.vertex_ai",
    "aiplatform.mtls.googleapis.com": "gcp.vertex_ai",
    "aiplatform.us.rep.googleapis.com": "gcp.vertex_ai",
    "aiplatform.eu.rep.googleapis.com": "gcp.vertex_ai",
}
HOST_SUFFIXES = (
    (".openai.azure.com", "azure.ai.openai"),
    (".cognitiveservices.azure.com", "azure.ai.openai"),
    ("-aiplatform.googleapis.com", "gcp.vertex_ai"),
    ("-aiplatform.mtls.googleapis.com", "gcp.vertex_ai"),  # a regional host with a client certificate
)
# Regional hosts matched by pattern: bedrock-runtime.{region}.amazonaws.com, its -fips twin,
# VPC endpoints (vpce-….bedrock-runtime.{region}.vpce.amazonaws.com) and China (.amazonaws.com.cn).
HOST_PATTERNS = (
    (re.compile(r"(?:^|\.)bedrock-runtime(?:-fips)?\.[a-z0-9-]+\.(?:vpce\.)?amazonaws\.com(?:\.cn)?$"), "aws.bedrock"),
)

# Older or vendor spellings of provider names -> the GenAI convention's names.
ALIASES = {
    "az.ai.openai": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "azure": "azure.ai.openai",
    "az.ai.inference": "azure.ai.inference",
    "vertex_ai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "google": "gcp.gemini",
    "google_genai": "gcp.gen_ai",
    "xai": "x_ai",
    "x-ai": "x_ai",
    "mistralai": "mistral_ai",
    "mistral": "mistral_ai",
    "bedrock": "aws.bedrock",
    "aws_bedrock": "aws.bedrock",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
}


def canonical(name: str | None) -> str:
    """Lower-cased convention name (``Anthropic`` -> ``anthropic``, ``az.ai.openai`` -> ``azure.ai.openai``)."""
    if not name:
        return ""
    key = name.strip().lower()
    return ALIASES.get(key, key)


def from_host(host: str | None) -> str:
    """The provider behind an API host, or "" (accepts URLs: some peers put one in server.address)."""
    if not host:
        return ""
    host = host.strip().lower()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0].rsplit(":", 1)[0] if host.count(":") <= 1 else host
    found = HOSTS.get(host)
    if found:
        return found
    for suffix, provider in HOST_SUFFIXES:
        if host.endswith(suffix):
            return provider
    for pattern, provider in HOST_PATTERNS:
        if pattern.search(host):
            return provider
    return ""
