"""Serper.dev Google Search API: one billable query per request, or per item of a batch list."""

from __future__ import annotations

from aispend.instrumentation.adapters.per_request import Endpoint, PerRequestAdapter, count_field
from aispend.instrumentation.exchange import HttpRequest


def queries(request: HttpRequest, body: object) -> int:
    return len(body) if isinstance(body, list) and body else 1


def serper() -> PerRequestAdapter:
    kinds = {"images": "image_search", "lens": "image_search"}
    names = (
        "search",
        "images",
        "news",
        "places",
        "maps",
        "videos",
        "shopping",
        "scholar",
        "patents",
        "autocomplete",
        "reviews",
        "lens",
        "webpage",
    )
    return PerRequestAdapter(
        provider="serper",
        methods=("POST", "GET"),
        endpoints=tuple(Endpoint(f"/{n}", n, kinds.get(n, "search"), queries) for n in names),
        key_headers=("x-api-key",),
        key_params=("apiKey",),
        units_from_response=count_field("credits"),
    )
