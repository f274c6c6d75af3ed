"""A response's content type and encoding, read in one pass from httpx's headers, are what each
client's own case-insensitive ``get`` answers."""

from __future__ import annotations

import httpx
import httpx2
import pytest
from requests.structures import CaseInsensitiveDict

from aispend.instrumentation.exchange import body_headers

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
