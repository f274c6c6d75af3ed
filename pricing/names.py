"""Provider and model names as users and instrumentations write them -> canonical forms. Pure."""

from __future__ import annotations

import re

# OpenTelemetry GenAI provider names (and older / vendor spellings) -> genai-prices provider ids.
_PROVIDER_IDS = {
    "openai": "openai",
    "azure.ai.openai": "azure",
    "az.ai.openai": "azure",
    "azure_openai": "azure",
    "azure": "azure",
    "azure.ai.inference": "azure",
    "anthropic": "anthropic",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "gemini": "google",
    "google": "google",
    "aws.bedrock": "aws",
    "bedrock": "aws",
    "aws": "aws",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "x-ai": "x-ai",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "mistral": "mistral",
    "groq": "groq",
    "deepseek": "deepseek",
    "perplexity": "perplexity",
    "cohere": "cohere",
    "together": "together",
    "together_ai": "together",
    "fireworks": "fireworks",
    "fireworks_ai": "fireworks",
    "openrouter": "openrouter",
    "cerebras": "cerebras",
    "ollama": "ollama",  # self-hosted: priced by the price book ($0) or an override, never by another vendor
}

# Routers whose model ids carry the upstream provider as a prefix that must be kept.
_PREFIXED_PROVIDERS = {"openrouter", "together", "fireworks", "huggingface", "groq"}

# "openai/gpt-4o", "bedrock/anthropic.claude…", "vertex_ai/gemini-1.5-pro" (LiteLLM style).
_PREFIX_RE = re.compile(
    r"^(openai|azure|anthropic|google|gemini|vertex_ai|vertex|bedrock|aws|mistral|xai|x-ai|groq|deepseek|"
    r"cohere|perplexity)/"
)
_GOOGLE_PATH_RE = re.compile(r"^(?:projects/[^/]+/locations/[^/]+/)?(?:publishers/[^/]+/)?models/")
_BEDROCK_RE = re.compile(r"^(?:(?:us|eu|apac|us-gov|global)\.)?[a-z0-9-]+\.[a-z0-9.-]+(?:-v\d+(?::\d+)?)?$")


def provider_id(provider: str | None) -> str | None:
    """The genai-prices provider id for an OTel provider name, or the lowercased name itself."""
    if not provider:
        return None
    key = provider.strip().lower()
    return _PROVIDER_IDS.get(key, key)


def is_known_provider(provider: str | None) -> bool:
    return bool(provider) and provider.strip().lower() in _PROVIDER_IDS


def canonical_model(model: str, provider: str | None = None) -> str:
    """Lower-case, trimmed, without router-style or Google resource-path prefixes."""
    name = model.strip().lower()
    name = _GOOGLE_PATH_RE.sub("", name)
    if provider_id(provider) not in _PREFIXED_PROVIDERS:
        name = _PREFIX_RE.sub("", name)
    return name


def looks_like_bedrock(model: str) -> bool:
    """``anthropic.claude-3-5-sonnet-20240620-v1:0``, ``us.meta.llama3-…``: vendor.model ids."""
    return "." in model and ":" in model and bool(_BEDROCK_RE.match(model))


def candidates(provider: str | None, model: str) -> list[tuple[str | None, str]]:
    """(provider id, model) pairs to try in order: as given, then inferred from the model alone."""
    pid = provider_id(provider)
    name = canonical_model(model, provider)
    out: list[tuple[str | None, str]] = []
    if pid is not None:
        out.append((pid, name))
    if looks_like_bedrock(name) and pid != "aws":
        out.append(("aws", name))
    raw = model.strip().lower()
    if pid is not None and raw != name:
        out.append((pid, raw))
    # An unknown provider string (e.g. a self-hosted OpenAI-compatible host) falls back to the
    # model name alone; a known provider does not, so Azure or Bedrock prices never silently
    # become another vendor's.
    if pid is None or not is_known_provider(provider):
        out.append((None, name))
    seen: set[tuple[str | None, str]] = set()
    return [c for c in out if not (c in seen or seen.add(c))]
