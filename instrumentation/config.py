"""Instrumentation settings: keyword argument > environment variable > default, read once."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aispend import semconv as sc
from aispend.instrumentation.attribution import Attribution, env_defaults
from aispend.instrumentation.safety import log_once
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
        value = _pairs(value)
    return tuple(ProviderURL.parse(p, u) for p, u in value)


def _pairs(value: str) -> list[tuple[str, str]]:
    """``"a=b, c=d"`` (``;`` also separates) as stripped (a, b) pairs; parts without ``=`` are skipped."""
    pairs = []
    for part in value.replace(";", ",").split(","):
        left, sep, right = part.strip().partition("=")
        if sep and left.strip() and right.strip():
            pairs.append((left.strip(), right.strip()))
    return pairs


def parse_attribution_headers(value: str | Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    """(header, field) pairs read for attribution, in order of precedence: ``x-aispend-*`` first,
    then ``value`` (``"x-customer-id=customer,x-feature=feature"``; None: those two, the
    headers other cost tools document; "": none). An entry naming an unknown field is logged
    once and skipped, so a typo never breaks the app."""
    extra = sc.OTHER_ATTRIBUTION_HEADERS if value is None else value
    pairs = list(extra.items()) if isinstance(extra, Mapping) else _pairs(extra)
    out = [(header, name) for name, header in sc.ATTRIBUTION_HEADERS.items()]
    for header, name in pairs:
        if name not in sc.ATTRIBUTION_FIELDS:
            log_once(
                "reading AISPEND_ATTRIBUTION_HEADERS",
                message=f"{header}={name}: the field must be one of {', '.join(sc.ATTRIBUTION_FIELDS)}",
            )
            continue
        if header.lower() not in dict(out):
            out.append((header.lower(), name))
    return tuple(out)


def parse_provider_names(value: str | Mapping[str, str] | None) -> dict[str, str]:
    """``"gateway.internal=corp-gateway,10.0.0.5:8000=vllm"``: the provider name of SDK calls to a
    host (or host:port) aispend does not know."""
    if not value:
        return {}
    pairs = value.items() if isinstance(value, Mapping) else _pairs(value)
    return {host.lower(): name for host, name in pairs}


def ollama_urls(env: Mapping[str, str]) -> tuple[ProviderURL, ...]:
    """Where Ollama's native API is: ``OLLAMA_HOST`` (read as the ollama client reads it: bare
    ``host[:port]`` is http on 11434; a bind address adds the loopback names on its port) and the
    default ``127.0.0.1`` / ``localhost`` :11434."""
    urls = [ProviderURL("ollama", "127.0.0.1", 11434, ""), ProviderURL("ollama", "localhost", 11434, "")]
    configured = (env.get("OLLAMA_HOST") or "").strip()
    if configured:
        try:
            urls = [*_ollama_host(configured), *urls]
        except ValueError as exc:  # a value the ollama client could not use either: the defaults
            log_once("reading OLLAMA_HOST", message=f"{configured!r}: {exc}; using 127.0.0.1:11434")
    return tuple(dict.fromkeys(urls))  # OLLAMA_HOST=127.0.0.1:11434 is a default route already


def _ollama_host(value: str) -> list[ProviderURL]:
    """The routes ``OLLAMA_HOST`` names; ValueError for one that is not a URL."""
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "http", value
    hostport, slash, path = rest.partition("/")
    if "[" not in hostport and hostport.count(":") > 1 and _is_ipv6(hostport):  # ``::``: no port
        rest = f"[{hostport}]{slash}{path}"
    parts = urlsplit(f"{scheme}://{rest}")
    port = parts.port or (11434 if not sep else 443 if scheme == "https" else 80)
    host = (parts.hostname or "127.0.0.1").lower()
    # A bind address (0.0.0.0, ::) is also what the ollama client connects to, so it stays a
    # route; the loopback names cover other clients that read it as "this machine".
    hosts = (host, "127.0.0.1", "localhost") if host in ("0.0.0.0", "::") else (host,)
    return [ProviderURL("ollama", h, port, parts.path.rstrip("/")) for h in hosts]


def _is_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class InstrumentationConfig:
    provider_urls: tuple[ProviderURL, ...] = ()
    provider_names: Mapping[str, str] = field(default_factory=dict)  # host[:port] -> provider, for SDK calls
    attribution_headers: tuple[tuple[str, str], ...] = field(default_factory=lambda: parse_attribution_headers(None))
    key_aliases: Mapping[str, str] = field(default_factory=dict)
    capture_content: bool = False
    defaults: Attribution = field(default_factory=Attribution)
    budgets_url: str | None = None
    budgets_token: str | None = None  # the exporter's read token, when it has one
    budgets_refresh_seconds: float = 10.0
    budgets_fail_closed: bool = False
    record_inline: bool = True  # parse and make spans on the calling thread (False: on aispend-recorder)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **kwargs: object) -> InstrumentationConfig:
        env = os.environ if environ is None else environ
        aliases = kwargs.get("key_aliases")
        return cls(
            provider_urls=parse_provider_urls(kwargs.get("provider_urls") or env.get("AISPEND_PROVIDER_URLS"))  # type: ignore[arg-type]
            + ollama_urls(env),
            provider_names=parse_provider_names(
                kwargs.get("provider_names") or env.get("AISPEND_PROVIDER_NAMES")  # type: ignore[arg-type]
            ),
            attribution_headers=parse_attribution_headers(
                kwargs["attribution_headers"]  # type: ignore[arg-type]
                if kwargs.get("attribution_headers") is not None
                else env.get("AISPEND_ATTRIBUTION_HEADERS")
            ),
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
            record_inline=_flag(kwargs.get("record_inline"), env.get("AISPEND_RECORD_INLINE"), default=True),
        )


def _flag(explicit: object, env_value: str | None, default: bool = False) -> bool:
    if explicit is not None:
        return bool(explicit)
    value = (env_value or "").strip().lower()
    if not value:
        return default
    return value in _TRUE
