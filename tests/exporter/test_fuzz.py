"""Property tests of the receivers with malformed input: the service answers, never crashes,
counts what it rejects, and still records the good spans of a mixed batch."""

from __future__ import annotations

import contextlib
import json

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aispend.exporter.grpc_receiver import EXPORT_METHOD
from tests.exporter.server import running, scrape, value
from tests.exporter.spans import llm, otlp_request
from tests.exporter.test_receivers import post

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def exporter():
    with running() as exp:
        yield exp


@pytest.fixture(scope="module")
def export(exporter):
    channel = grpc.insecure_channel(f"127.0.0.1:{exporter.ports['otlp_grpc']}")
    yield channel.unary_unary(EXPORT_METHOD)
    channel.close()


@FUZZ
@given(st.binary(max_size=2048))
def test_grpc_random_bytes(exporter, export, body):
    with contextlib.suppress(grpc.RpcError):
        export(body, timeout=10)
    # still alive and answering
    export(otlp_request([llm("openai", "gpt-4", 1, 1)]).SerializeToString(), timeout=10)


@FUZZ
@given(st.binary(max_size=2048), st.sampled_from(["application/x-protobuf", "application/json"]))
def test_http_random_bytes(exporter, body, content_type):
    status, _ = post(f"http://127.0.0.1:{exporter.ports['otlp_http']}/v1/traces", body, content_type)
    assert status in (200, 400)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@FUZZ
@given(json_values)
def test_http_json_shapes(exporter, document):
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [document]}]}]}, allow_nan=True).encode()
    status, _ = post(f"http://127.0.0.1:{exporter.ports['otlp_http']}/v1/traces", body, "application/json")
    assert status in (200, 400)


attr_values = (
    st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=300)
    | st.booleans()
    | st.lists(st.text(max_size=5), max_size=3)
)
attr_names = st.sampled_from(
    [
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.provider.name",
        "gen_ai.system",
        "gen_ai.operation.name",
        "aispend.customer",
        "aispend.feature",
        "aispend.key",
        "aispend.usage.requests",
        "aispend.usage.images",
        "error.type",
        "http.response.status_code",
        "gen_ai.usage.cost",
        "gen_ai.response.id",
        "aispend.service.kind",
    ]
)


@FUZZ
@given(st.lists(st.dictionaries(attr_names, attr_values, max_size=8), min_size=1, max_size=6))
def test_hostile_attributes_never_lose_the_good_span(exporter, export, hostile):
    before = value(scrape(exporter.ports["metrics"]), "aispend_cost_usd_total", service="fuzz-good")
    good = llm("openai", "gpt-4", 150, 75)
    mixed = [*({"gen_ai.provider.name": "openai", **h} for h in hostile), good]
    request = otlp_request(mixed, service="fuzz")
    request.resource_spans.append(otlp_request([good], service="fuzz-good").resource_spans[0])
    export(request.SerializeToString(), timeout=10)
    after = value(scrape(exporter.ports["metrics"]), "aispend_cost_usd_total", service="fuzz-good")
    assert after - before == pytest.approx(0.009, abs=1e-9)
