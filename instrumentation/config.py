"""Instrumentation settings: keyword argument > environment variable > default, read once."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aispend.instrumentation.attribution import Attribution, env_defaults
from aispend.keys import parse_aliases

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class ProviderURL:
    """A base URL whose calls belong to ``provider`` (an OpenAI-compatible host, a proxy, a test)."""

    provider: str
    host: str
    port: int | None
    path_prefix: str

    @classmethod
    def parse(cls, provider: str, url: str) -> ProviderURL:
        parts = urlsplit(url if "://" in url else f"https://{url}")
        if not parts.hostname:
            raise ValueError(f"not a URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(provider.strip(), parts.hostname.lower(), port, parts.path.rstrip("/"))


def parse_provider_urls(value: str | Iterable[tuple[str, str]] | None) -> tuple[ProviderURL, ...]:
    """``"groq=https://api.groq.com/openai/v1, openai=http://127.0.0.1:8080/v1"`` or (provider, url) pairs."""
    if not value:
        return ()
    if isinstance(value, str):
        pairs = []
        for part in value.replace(";", ",").split(","):
            provider, sep, url = part.strip().partition("=")
            if sep and provider and url:
                pairs.append((provider, url))
        value = pairs
    return tuple(ProviderURL.parse(p, u) for p, u in value)


@dataclass(frozen=True, slots=True)
class InstrumentationConfig:
    provider_urls: tuple[ProviderURL, ...] = ()
    key_aliases: Mapping[str, str] = field(default_factory=dict)
    capture_content: bool = False
    defaults: Attribution = field(default_factory=Attribution)
    budgets_url: str | None = None
    budgets_token: str | None = None  # the exporter's read token, when it has one
    budgets_refresh_seconds: float = 10.0
    budgets_fail_closed: bool = False
    record_inline: bool = False  # parse and make spans on the calling thread, not aispend-recorder

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **kwargs: object) -> InstrumentationConfig:
        env = os.environ if environ is None else environ
        aliases = kwargs.get("key_aliases")
        return cls(
            provider_urls=parse_provider_urls(kwargs.get("provider_urls") or env.get("AISPEND_PROVIDER_URLS")),  # type: ignore[arg-type]
            key_aliases=dict(aliases)
            if isinstance(aliases, Mapping)
            else parse_aliases(env.get("AISPEND_KEY_ALIASES", "")),
            capture_content=_flag(
                kwargs.get("capture_content"), env.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
            ),
            defaults=env_defaults(env),
            budgets_url=str(kwargs.get("budgets_url") or env.get("AISPEND_BUDGETS_URL") or "") or None,
            budgets_token=str(kwargs.get("budgets_token") or env.get("AISPEND_BUDGETS_TOKEN") or "") or None,
            budgets_refresh_seconds=float(
                kwargs.get("budgets_refresh_seconds") or env.get("AISPEND_BUDGETS_REFRESH_SECONDS") or 10.0  # type: ignore[arg-type]
            ),
            budgets_fail_closed=_flag(kwargs.get("budgets_fail_closed"), env.get("AISPEND_BUDGETS_FAIL_CLOSED")),
            record_inline=_flag(kwargs.get("record_inline"), env.get("AISPEND_RECORD_INLINE")),
        )


def _flag(explicit: object, env_value: str | None) -> bool:
    if explicit is not None:
        return bool(explicit)
    return (env_value or "").strip().lower() in _TRUE
