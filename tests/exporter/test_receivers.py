"""Real OTLP over gRPC and HTTP, sent by the OpenTelemetry SDK's own exporters, read back from
/metrics as Prometheus would, with exact costs."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.exporter.server import running, scrape, value
from tests.exporter.spans import llm, otlp_request

MIX = [
    # (attributes, expected cost)
    (
        llm(
            "openai",
            "gpt-4",
            150,
            75,
            **{"aispend.feature": "summary", "aispend.customer": "acme", "aispend.key": "sk-…a1b2"},
        ),
        0.009,
    ),
    (
        llm(
            "openai",
            "gpt-4o-2024-08-06",
            2000,
            300,
            **{"gen_ai.usage.cache_read.input_tokens": 1024, "aispend.feature": "chat", "aispend.customer": "acme"},
        ),
        0.00672,
    ),
    (
        llm(
            "anthropic",
            "claude-3-5-haiku-20241022",
            1000,
            50,
            **{
                "gen_ai.usage.cache_read.input_tokens": 400,
                "gen_ai.usage.cache_creation.input_tokens": 100,
                "aispend.feature": "chat",
                "aispend.customer": "globex",
            },
        ),
        0.000732,
    ),
    # under the 128k long-context tier: $0.075 / $0.30 per 1M
    (
        llm(
            "gcp.gemini",
            "gemini-1.5-flash",
            100_000,
            100_000,
            **{"aispend.feature": "summary", "aispend.customer": "globex"},
        ),
        0.0375,
    ),
    (
        {
            "gen_ai.provider.name": "openai",
            "gen_ai.operation.name": "image_generation",
            "gen_ai.request.model": "dall-e-3",
            "aispend.service.kind": "image",
            "aispend.usage.images": 2,
            "aispend.image.size": "1024x1024",
            "aispend.image.quality": "hd",
            "aispend.feature": "art",
            "aispend.customer": "acme",
        },
        0.16,
    ),
    (
        {
            "gen_ai.provider.name": "unsplash",
            "gen_ai.operation.name": "search",
            "gen_ai.request.model": "search-photos",
            "aispend.service.kind": "image_search",
            "aispend.feature": "art",
            "aispend.customer": "acme",
        },
        0.0,
    ),
]


def send_with_sdk(exporter, spans, service="shop"):
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    for attrs, *_ in spans:
        with tracer.start_as_current_span("call", kind=SpanKind.CLIENT, attributes=attrs) as span:
            if attrs.get("error.type"):
                span.set_status(Status(StatusCode.ERROR))
    provider.shutdown()


def check_mix(text, service="shop"):
    for attrs, expected in MIX:
        got = value(text, "aispend_cost_usd_total", service=service, model=attrs["gen_ai.request.model"])
        assert got == pytest.approx(expected, abs=1e-9), attrs["gen_ai.request.model"]
    cost = lambda **labels: value(text, "aispend_cost_usd_total", service=service, **labels)  # noqa: E731
    assert cost(customer="acme") == pytest.approx(0.009 + 0.00672 + 0.16, abs=1e-9)
    assert cost(feature="summary") == pytest.approx(0.009 + 0.0375, abs=1e-9)
    assert cost(key="sk-…a1b2") == pytest.approx(0.009, abs=1e-9)
    assert value(text, "aispend_tokens_total", service=service, model="gpt-4", type="input") == 150
    assert value(text, "aispend_tokens_total", service=service, provider="anthropic", type="cache_write") == 100
    assert value(text, "aispend_requests_total", service=service, status="ok") == len(MIX)


def test_grpc_with_the_sdk_exporter():
    with running() as exporter:
        send_with_sdk(GrpcExporter(endpoint=f"127.0.0.1:{exporter.ports['otlp_grpc']}", insecure=True), MIX)
        text = scrape(exporter.ports["metrics"])
        check_mix(text)
        assert value(text, "aispend_spans_received_total") == len(MIX)


def test_grpc_gzip_and_bearer_token():
    with running(auth_token="s3cret") as exporter:
        endpoint = f"127.0.0.1:{exporter.ports['otlp_grpc']}"
        send_with_sdk(
            GrpcExporter(
                endpoint=endpoint,
                insecure=True,
                compression=grpc.Compression.Gzip,
                headers={"authorization": "Bearer s3cret"},
            ),
            MIX,
        )
        check_mix(scrape(exporter.ports["metrics"], token="s3cret"))  # the OTLP token reads when no read token is set
        channel = grpc.insecure_channel(endpoint)
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as denied:
            export(otlp_request([llm("openai", "gpt-4", 1, 1)]).SerializeToString(), timeout=5)
        assert denied.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_http_protobuf_gzip_with_the_sdk_exporter():
    with running() as exporter:
        url = f"http://127.0.0.1:{exporter.ports['otlp_http']}/v1/traces"
        send_with_sdk(HttpExporter(endpoint=url, compression=Compression.Gzip), MIX)
        check_mix(scrape(exporter.ports["metrics"]))


def _hex_json(request) -> bytes:
    from google.protobuf import json_format

    data = json_format.MessageToDict(request)
    for rs in data["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        import base64

                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(data).encode()


def post(url, body, content_type, encoding=None, token=None):
    headers = {"Content-Type": content_type}
    if encoding:
        headers["Content-Encoding"] = encoding
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_http_json_with_hex_ids_and_partial_success():
    with running() as exporter:
        url = f"http://127.0.0.1:{exporter.ports['otlp_http']}/v1/traces"
        good = otlp_request([attrs for attrs, _ in MIX], service="shop")
        status, _ = post(url, gzip.compress(_hex_json(good)), "application/json", "gzip")
        assert status == 200
        bad = otlp_request([llm("openai", "gpt-4", -1, 1), llm("openai", "gpt-4", 150, 75)], service="other")
        status, body = post(url, _hex_json(bad), "application/json")
        reply = json.loads(body)
        assert status == 200 and reply["partialSuccess"]["rejectedSpans"] == "1"
        assert "negative_tokens" in reply["partialSuccess"]["errorMessage"]
        text = scrape(exporter.ports["metrics"])
        check_mix(text)
        assert value(text, "aispend_cost_usd_total", service="other") == pytest.approx(0.009, abs=1e-9)
        assert value(text, "aispend_spans_rejected_total", reason="negative_tokens") == 1


def test_http_malformed_bodies_get_400_and_are_counted():
    with running() as exporter:
        url = f"http://127.0.0.1:{exporter.ports['otlp_http']}/v1/traces"
        assert post(url, b"\xff\x00garbage", "application/x-protobuf")[0] == 400
        assert post(url, b"{not json", "application/json")[0] == 400
        not_a_list = b'{"resourceSpans":[{"scopeSpans":[{"spans":{"traceId":"zz"}}]}]}'
        assert post(url, not_a_list, "application/json")[0] == 400
        assert post(url, b"not gzip", "application/x-protobuf", "gzip")[0] == 400
        text = scrape(exporter.ports["metrics"])
        assert value(text, "aispend_spans_rejected_total", reason="malformed_payload") == 3
        assert value(text, "aispend_spans_rejected_total", reason="bad_compression") == 1


def test_openmetrics_exemplars_carry_the_trace_id():
    with running() as exporter:
        request = otlp_request([llm("openai", "gpt-4", 150, 75)])
        trace_hex = request.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
        status, _ = post(
            f"http://127.0.0.1:{exporter.ports['otlp_http']}/v1/traces",
            request.SerializeToString(),
            "application/x-protobuf",
        )
        assert status == 200
        text = scrape(exporter.ports["metrics"], openmetrics=True)
        line = next(line for line in text.splitlines() if line.startswith("aispend_cost_usd_total{"))
        assert f'# {{trace_id="{trace_hex}"}} 0.009' in line
