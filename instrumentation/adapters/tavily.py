"""Tavily search API: billed in API credits (basic search 1, advanced 2; extract per 5 URLs)."""

from __future__ import annotations

import math

from aispend.instrumentation.adapters.per_request import Endpoint, PerRequestAdapter, count_field
from aispend.instrumentation.exchange import HttpRequest


def search_credits(request: HttpRequest, body: object) -> int:
    depth = body.get("search_depth") if isinstance(body, dict) else None
    return 2 if depth == "advanced" else 1


def extract_credits(request: HttpRequest, body: object) -> int:
    urls = body.get("urls") if isinstance(body, dict) else None
    count = len(urls) if isinstance(urls, list) else 1
    per_five = 2 if isinstance(body, dict) and body.get("extract_depth") == "advanced" else 1
    return max(1, math.ceil(count / 5)) * per_five


def tavily() -> PerRequestAdapter:
    return PerRequestAdapter(
        provider="tavily",
        methods=("POST",),
        endpoints=(
            Endpoint("/search", "search", "search", search_credits),
            Endpoint("/extract", "extract", "search", extract_credits),
            Endpoint("/crawl", "crawl", "search"),
            Endpoint("/map", "map", "search"),
        ),
        key_body_field="api_key",
        units_from_response=count_field("usage", "credits"),
    )
