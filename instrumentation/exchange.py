"""What the adapters see of an HTTP exchange: small immutable values, independent of the client."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

MAX_BODY = 16 * 1024 * 1024  # bodies larger than this are passed through unparsed


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    scheme: str
    host: str
    port: int | None
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes | None = None

    def json(self) -> Any:
        """The body as JSON, or None when absent or not JSON."""
        return parse_json(self.body)

    def query_params(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.query).items()}


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None

    def json(self) -> Any:
        return parse_json(self.body)


def parse_json(body: bytes | None) -> Any:
    if not body or len(body) > MAX_BODY:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80
