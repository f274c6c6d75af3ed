"""What the adapters see of an HTTP exchange: small values, independent of the client.

They are treated as immutable once complete (a request's content is filled in once, by
``with_content``, before any adapter reads it) but are not ``frozen`` dataclasses: a frozen one
costs ~2.5 µs to build (a ``object.__setattr__`` per field), and every call builds a request and
a response.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from aispend.instrumentation import fastjson

MAX_BODY = 16 * 1024 * 1024  # bodies larger than this are passed through unparsed


@dataclass(slots=True)
class HttpRequest:
    method: str
    scheme: str
    host: str
    port: int | None
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)  # read_headers(): lower-case names
    body: bytes | None = None

    def json(self) -> Any:
        """The body as JSON, or None when absent or not JSON."""
        return parse_json(self.body)

    def with_content(self, query: str, headers: Mapping[str, str], body: bytes | None) -> HttpRequest:
        """This head, with what is read only for a request an adapter recognised. Filled in
        place: a head is its hook's own, made for this one request, and nothing has read its
        content before (the router reads method, host, port and path only)."""
        self.query, self.headers, self.body = query, headers, body
        return self

    def query_params(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.query).items()}


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None

    def json(self) -> Any:
        return parse_json(self.body)


# The only request headers anything here reads (keys, the SDK's user agent, attribution); copying
# just these is much cheaper than materialising every header of every request.
READ_HEADERS = frozenset(
    {"authorization", "api-key", "x-api-key", "x-goog-api-key", "x-subscription-token", "user-agent"}
)


@dataclass(frozen=True, slots=True)
class HeaderNames:
    """Header names to copy from a request (lower-case), as str and as bytes (httpx's raw headers)."""

    names: frozenset[str]
    raw: frozenset[bytes]

    @classmethod
    def of(cls, names: Iterable[str]) -> HeaderNames:
        lower = frozenset(n.lower() for n in names)
        return cls(lower, frozenset(n.encode("latin-1") for n in lower))


DEFAULT_HEADERS = HeaderNames.of(READ_HEADERS)


def read_headers(pairs: Iterable[tuple[Any, Any]], wanted: HeaderNames = DEFAULT_HEADERS) -> dict[str, str]:
    """The headers in ``wanted`` (which holds every attribution header read), lower-cased names."""
    out = {}
    names, raw = wanted.names, wanted.raw
    for name, value in pairs:
        if isinstance(name, bytes):  # httpx's raw headers: compare bytes, decode only the few we keep
            lower = name.lower()
            if lower in raw:
                out[lower.decode("latin-1")] = value.decode("latin-1")
            continue
        lower = name.lower()
        if lower in names:
            out[lower] = value
    return out


def read_lowered_headers(
    items: Iterable[tuple[bytes, bytes, bytes]], wanted: HeaderNames = DEFAULT_HEADERS
) -> dict[str, str]:
    """The headers in ``wanted`` (which holds every attribution header read), from httpx's own
    (raw name, lower-case name, value) triples: no lower-casing, no copy of ``Headers.raw``, one
    set lookup a header (a ``startswith`` each cost as much again as the whole lookup)."""
    raw = wanted.raw
    return {lower.decode("latin-1"): value.decode("latin-1") for _, lower, value in items if lower in raw}


def parse_json(body: bytes | None) -> Any:
    if not body or len(body) > MAX_BODY:
        return None
    try:  # UTF-8, as every provider sends: skips json.loads' encoding detection
        return fastjson.loads(body)
    except (ValueError, TypeError):  # UnicodeDecodeError is a ValueError
        pass
    try:  # a BOM, UTF-16 or UTF-32
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def body_headers(headers: Mapping[str, str]) -> tuple[str, str | None]:
    """A response's ``content-type`` ("" if absent) and ``content-encoding`` (None if absent).
    httpx's headers are read in one pass over their (raw, lower-case name, value) triples: each
    ``get`` on them lower-cases the name, works out the encoding and scans every header."""
    items = getattr(headers, "_list", None)
    if isinstance(items, list) and (not items or len(items[0]) == 3):
        content_type: bytes | None = None
        encoding: bytes | None = None
        for _, lower, value in items:  # a repeated header is joined with ", ", as get() joins it
            if lower == b"content-type":
                content_type = value if content_type is None else content_type + b", " + value
            elif lower == b"content-encoding":
                encoding = value if encoding is None else encoding + b", " + value
        return (
            "" if content_type is None else content_type.decode("latin-1"),
            None if encoding is None else encoding.decode("latin-1"),
        )
    return headers.get("content-type", ""), headers.get("content-encoding")


def default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80
