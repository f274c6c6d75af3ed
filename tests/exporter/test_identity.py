"""identity.independent: when a batch's spans may each be decided alone (the ledger's fast path),
and when they must be compared because two of them may be one call."""

from __future__ import annotations

from aispend.exporter import identity
from aispend.exporter.reading import read_request
from tests.exporter.spans import llm, new_id, otlp_request


def calls(*specs: dict) -> list:
    return read_request(otlp_request(list(specs)), 50_000_000, {}).calls


def span(provider: str = "openai", response_id: str = "", trace_id: bytes | None = None) -> dict:
    extra = {"gen_ai.response.id": response_id} if response_id else {}
    return {"attributes": llm(provider, "gpt-4o", 10, 1, **extra), "trace_id": trace_id or new_id(16)}


def test_spans_of_different_traces_and_responses_are_independent():
    assert identity.independent(calls(span(response_id="a"), span(response_id="b"), span(), span()))


def test_two_spans_of_one_trace_are_not():
    trace = new_id(16)
    assert not identity.independent(calls(span(trace_id=trace), span(trace_id=trace)))


def test_one_provider_response_id_in_two_traces_is_not():
    assert not identity.independent(calls(span(response_id="same"), span(response_id="same")))


def test_one_response_id_at_two_providers_is():
    assert identity.independent(calls(span("openai", "same"), span("anthropic", "same")))


def test_spans_called_independent_are_never_one_call():
    # independent is conservative (two unrelated spans of one trace are compared anyway), never wrong
    trace = new_id(16)
    batch = calls(span(trace_id=trace), span(trace_id=trace, response_id="r"), span(response_id="r"), span())
    pairs = 0
    for i, a in enumerate(batch):
        for b in batch[i + 1 :]:
            ka, kb = identity.known(a, counted=False), identity.known(b, counted=False)
            related = identity.same_span(ka, kb) or identity.same_call(ka, kb) is not None
            assert not (identity.independent([a, b]) and related)
            if related:
                pairs += 1
                assert not identity.independent(batch)
    assert pairs == 1  # the two spans with response id "r"
