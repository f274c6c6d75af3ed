"""Brave Search API: one billable request per call (only successful calls are billed)."""

from __future__ import annotations

from aispend.instrumentation.adapters.per_request import Endpoint, PerRequestAdapter


def brave() -> PerRequestAdapter:
    return PerRequestAdapter(
        provider="brave",
        methods=("GET", "POST"),
        endpoints=(
            Endpoint("/web/search", "web-search"),
            Endpoint("/images/search", "image-search", "image_search"),
            Endpoint("/news/search", "news-search"),
            Endpoint("/videos/search", "video-search"),
            Endpoint("/summarizer/search", "summarizer"),
            Endpoint("/suggest/search", "suggest"),
            Endpoint("/spellcheck/search", "spellcheck"),
        ),
        key_headers=("x-subscription-token",),
    )
