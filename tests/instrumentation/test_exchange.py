"""A response's content type and encoding, read in one pass from httpx's headers, are what each
client's own case-insensitive ``get`` answers; the request header readers keep the same headers."""

from __future__ import annotations

import httpx
import httpx2
import pytest
from requests.structures import CaseInsensitiveDict

from aispend.instrumentation.exchange import HeaderNames, body_headers, read_headers, read_lowered_headers

CASES = [
    [("Content-Type", "text/event-stream; charset=utf-8"), ("Content-Encoding", "gzip"), ("X-Other", "1")],
    [("content-type", "application/json")],
    [("CONTENT-ENCODING", "br")],
    [("Content-Encoding", "gzip"), ("content-encoding", "br"), ("Content-Type", "a"), ("content-type", "b")],
    [],
]


@pytest.mark.parametrize("pairs", CASES)
@pytest.mark.parametrize("make", [httpx.Headers, httpx2.Headers])
def test_httpx_headers_read_in_one_pass_as_get_reads_them(make, pairs):
    headers = make(pairs)
    assert body_headers(headers) == (headers.get("content-type", ""), headers.get("content-encoding"))


@pytest.mark.parametrize("pairs", CASES[:3] + CASES[4:])
def test_other_mappings_are_asked_with_get(pairs):
    headers = CaseInsensitiveDict(dict(pairs))
    assert body_headers(headers) == (headers.get("content-type", ""), headers.get("content-encoding"))


def test_every_header_reader_keeps_the_same_headers() -> None:
    wanted = HeaderNames.of({"authorization", "x-aispend-customer", "x-customer-id"})
    headers = httpx.Headers(
        [
            ("Authorization", "Bearer sk-1"),
            ("X-Aispend-Customer", "acme"),
            ("X-Aispend-Unknown", "not read by anything"),
            ("x-customer-id", "c-9"),
            ("Content-Type", "application/json"),
        ]
    )
    expected = {"authorization": "Bearer sk-1", "x-aispend-customer": "acme", "x-customer-id": "c-9"}
    assert read_lowered_headers(headers._list, wanted) == expected
    assert read_headers(headers.raw, wanted) == expected  # bytes pairs
    assert read_headers(headers.items(), wanted) == expected  # str pairs (requests, botocore, aiohttp)
