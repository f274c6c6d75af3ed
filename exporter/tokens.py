"""Bearer tokens: which ones may read, and comparing what a request carries in constant time.

Reads (``GET /metrics``, ``/v1/usage``, ``/v1/calls``, ``/v1/budgets``) are open only while no
token is configured at all. With ``read_token`` set, it and the admin token read. Without it, the
admin token and the OTLP ``auth_token`` read, so that setting either one closes the read side too
(a deployment that protects its receivers no longer publishes per-customer spend).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from aispend.exporter.config import ExporterConfig


def bearer_matches(header: str | None, tokens: Iterable[str | None]) -> bool:
    """True when ``header`` is ``Bearer <one of tokens>``. Compares against every token, each in
    constant time, so the time taken says nothing about which one (or how much of it) matched."""
    given = (header or "").encode()
    matched = False
    for token in tokens:
        if token:
            matched |= hmac.compare_digest(given, f"Bearer {token}".encode())
    return matched


def read_tokens(config: ExporterConfig) -> tuple[str, ...]:
    """The tokens that may read; empty: reads are open."""
    chosen = (config.read_token, config.admin_token) if config.read_token else (config.admin_token, config.auth_token)
    return tuple(token for token in chosen if token)
