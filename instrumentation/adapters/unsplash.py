"""Unsplash API: image search; free of charge but rate limited, so calls are still counted."""

from __future__ import annotations

from aispend.instrumentation.adapters.per_request import Endpoint, PerRequestAdapter


def unsplash() -> PerRequestAdapter:
    return PerRequestAdapter(
        provider="unsplash",
        methods=("GET",),
        endpoints=(
            Endpoint("/search/photos", "search-photos", "image_search"),
            Endpoint("/search/collections", "search-collections", "image_search"),
            Endpoint("/photos/random", "photos-random", "image_search"),
            Endpoint("/photos", "photos", "image_search"),
        ),
        key_params=("client_id",),
        key_auth_schemes=("client-id", "bearer"),
    )
