"""Bodies and events decode to the same values with jiter as with the standard library, and to
the same answer (a value, or "not JSON") on any bytes at all."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aispend.instrumentation import fastjson
from aispend.instrumentation.adapters.base import event_json
from aispend.instrumentation.exchange import parse_json

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(),  # lone surrogates included: jiter rejects their escapes, json decides
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)


def _stdlib_body(body: bytes):
    """What parse_json answered before jiter: UTF-8 text through json, else json.loads' detection."""
    try:
        return json.JSONDecoder().decode(body.decode("utf-8"))
    except ValueError:
        pass
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _stdlib_event(data: bytes):
    try:
        return json.JSONDecoder().decode(data.decode("utf-8", "replace"))
    except ValueError:
        return None


def test_jiter_is_used_here():
    assert fastjson._jiter is not None, "jiter comes with the openai SDK in the dev extra"


@settings(max_examples=300, deadline=None)
@given(values, st.booleans())
def test_any_json_value_decodes_as_json_loads_does(value, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only)
    body = text.encode("utf-8", "surrogatepass")
    assert repr(parse_json(body)) == repr(_stdlib_body(body))
    assert repr(event_json(body)) == repr(_stdlib_event(body))
    assert fastjson.loads(text) == json.loads(text)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=60) | st.sampled_from([b'{"a":NaN}', b"[1,]", b"\xef\xbb\xbf{}", b'"\\ud800"', b"1e400"]))
def test_any_bytes_get_the_standard_librarys_answer(data):
    assert repr(parse_json(data)) == repr(_stdlib_body(data) if data else None)
    assert repr(event_json(data)) == repr(_stdlib_event(data) if data and data != b"[DONE]" else None)


@pytest.mark.parametrize(
    "body", [b'{"a": 1, "a": 2}', '{"é": "ü"}'.encode("utf-16"), b'{"x": "\\ud83d\\ude00"}', b'{"n": 1e2}']
)
def test_without_jiter_the_values_are_the_same(monkeypatch, body):
    with_jiter = parse_json(body), event_json(body)
    monkeypatch.setattr(fastjson, "_jiter", None)
    assert repr((parse_json(body), event_json(body))) == repr(with_jiter)
