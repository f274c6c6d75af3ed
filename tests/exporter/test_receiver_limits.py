"""What the receivers refuse, and how: a body they cannot read is a 4xx (INVALID_ARGUMENT /
RESOURCE_EXHAUSTED on gRPC) counted in aispend_spans_rejected_total with its reason, never a
retryable answer and never an acknowledgement of something not recorded; one undecodable span
costs that span only."""

from __future__ import annotations

import gzip
import http.client
import json
import socket

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aispend.exporter import otlp
from aispend.exporter.grpc_receiver import EXPORT_METHOD
from tests.exporter.server import running, scrape, value
from tests.exporter.spans import llm, otlp_request
from tests.exporter.test_receivers import _hex_json, post

PROTOBUF = "application/x-protobuf"


def gpt(**extra):
    return llm("openai", "gpt-4", 150, 75, **extra)


def recorded(exporter) -> float:
    return value(scrape(exporter.ports["metrics"]), "aispend_requests_total")


def rejected(exporter, reason: str) -> float:
    return value(scrape(exporter.ports["metrics"]), "aispend_spans_rejected_total", reason=reason)


def traces_url(exporter) -> str:
    return f"http://127.0.0.1:{exporter.ports['otlp_http']}/v1/traces"


def grpc_export(exporter, body: bytes):
    with grpc.insecure_channel(f"127.0.0.1:{exporter.ports['otlp_grpc']}") as channel:
        return channel.unary_unary(EXPORT_METHOD)(body, timeout=30)


def with_bad_utf8() -> bytes:
    """Three spans in one resource, the middle one with invalid UTF-8 in an attribute; and a
    second resource whose service.name is invalid UTF-8 (its one span cannot be attributed)."""
    request = otlp_request([gpt(), gpt(**{"gen_ai.response.id": "RESPID"}), gpt()], service="good")
    request.resource_spans.append(otlp_request([gpt()], service="BADSVC").resource_spans[0])
    body = request.SerializeToString()
    return body.replace(b"RESPID", b"RE\xffPID").replace(b"BADSVC", b"BAD\xc3(C")


def test_invalid_utf8_in_one_span_rejects_that_span_only():
    with running() as exporter:
        status, reply = post(traces_url(exporter), with_bad_utf8(), PROTOBUF)
        assert status == 200
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        partial = ExportTraceServiceResponse.FromString(reply).partial_success
        assert partial.rejected_spans == 2 and "invalid_utf8" in partial.error_message
        response = grpc_export(exporter, with_bad_utf8())
        assert b"invalid_utf8" in response
        text = scrape(exporter.ports["metrics"])
        assert value(text, "aispend_requests_total", service="good") == 4
        assert value(text, "aispend_spans_rejected_total", reason="invalid_utf8") == 4
        assert value(text, "aispend_spans_received_total") == 8


def test_invalid_utf8_in_otlp_json_rejects_that_span_only():
    with running() as exporter:

        def body() -> bytes:
            return _hex_json(otlp_request([gpt(), gpt(**{"gen_ai.response.id": "RESPID"})], service="good"))

        for bad in (body().replace(b"RESPID", b"RE\xffPID"), body().replace(b"RESPID", b"RE\\ud800PID")):
            status, reply = post(traces_url(exporter), bad, "application/json")
            assert status == 200 and json.loads(reply)["partialSuccess"]["rejectedSpans"] == "1"
        # an id that is not hex costs its span (bad_trace_id), not the request
        spans = json.loads(body())
        spans["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = "zz"
        status, reply = post(traces_url(exporter), json.dumps(spans).encode(), "application/json")
        assert status == 200 and "bad_trace_id" in json.loads(reply)["partialSuccess"]["errorMessage"]
        text = scrape(exporter.ports["metrics"])
        assert value(text, "aispend_requests_total", service="good") == 3
        assert value(text, "aispend_spans_rejected_total", reason="invalid_utf8") == 2
        assert value(text, "aispend_spans_rejected_total", reason="bad_trace_id") == 1


def test_deeply_nested_json_is_a_counted_400_not_a_retry():
    with running() as exporter:
        deep = b'{"resourceSpans": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        assert post(traces_url(exporter), deep, "application/json")[0] == 400
        assert rejected(exporter, "malformed_payload") == 1
        # nesting json.loads takes but protobuf's parser does not: that span alone is rejected
        value_json: dict = {"stringValue": "x"}
        for _ in range(150):
            value_json = {"kvlistValue": {"values": [{"key": "k", "value": value_json}]}}
        body = json.loads(_hex_json(otlp_request([gpt(), gpt()])))
        body["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["attributes"].append({"key": "x", "value": value_json})
        status, reply = post(traces_url(exporter), json.dumps(body).encode(), "application/json")
        assert status == 200 and json.loads(reply)["partialSuccess"]["rejectedSpans"] == "1"
        assert recorded(exporter) == 1


def raw_request(port: int, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send bytes as they are (http.client would fix the framing) and read the response."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.read()


def head(length: str | None = None, **headers: str) -> bytes:
    lines = ["POST /v1/traces HTTP/1.1", "Host: x", f"Content-Type: {PROTOBUF}"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines += [f"{name.replace('_', '-')}: {v}" for name, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(data: bytes, size: int = 1000) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(data[i : i + size]), data[i : i + size]) for i in range(0, len(data), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def test_chunked_bodies_are_read_and_recorded():
    with running() as exporter:
        port = exporter.ports["otlp_http"]
        body = otlp_request([gpt(), gpt()]).SerializeToString()
        assert raw_request(port, head(Transfer_Encoding="chunked"), chunked(body))[0] == 200
        gz = gzip.compress(otlp_request([gpt(), gpt()]).SerializeToString())
        assert raw_request(port, head(Transfer_Encoding="chunked", Content_Encoding="gzip"), chunked(gz, 7))[0] == 200
        assert recorded(exporter) == 4
        assert raw_request(port, head(Transfer_Encoding="chunked"), b"zz\r\n")[0] == 400
        assert raw_request(port, head(Transfer_Encoding="gzip"), body)[0] == 501
        # a sender that does not say how long its body is
        assert raw_request(port, head(None), body)[0] == 411
        assert raw_request(port, head("-1"), body)[0] == 400  # read(-1) would read without a limit
        assert raw_request(port, head(str(65 * 1024 * 1024)))[0] == 413  # refused before reading
        text = scrape(exporter.ports["metrics"])
        assert value(text, "aispend_spans_rejected_total", reason="malformed_payload") == 2
        assert value(text, "aispend_spans_rejected_total", reason="unsupported_encoding") == 1
        assert value(text, "aispend_spans_rejected_total", reason="length_required") == 1
        assert value(text, "aispend_spans_rejected_total", reason="payload_too_large") == 1
        assert recorded(exporter) == 4


def test_compression_errors_and_oversized_bodies_are_counted():
    with running() as exporter:
        url = traces_url(exporter)
        assert post(url, b"not gzip", PROTOBUF, "gzip")[0] == 400
        assert post(url, b"whatever", PROTOBUF, "br")[0] == 415
        bomb = gzip.compress(b"\0" * (65 * 1024 * 1024))
        assert post(url, bomb, PROTOBUF, "gzip")[0] == 413
        text = scrape(exporter.ports["metrics"])
        assert value(text, "aispend_spans_rejected_total", reason="bad_compression") == 1
        assert value(text, "aispend_spans_rejected_total", reason="unsupported_encoding") == 1
        assert value(text, "aispend_spans_rejected_total", reason="payload_too_large") == 1


def empty_resource_spans(n: int) -> bytes:
    return b"\x0a\x00" * n  # field 1 (resource_spans), length 0


@pytest.mark.parametrize("workers", [0, 1])
def test_spans_and_resource_spans_per_request_are_capped(workers):
    with running(max_spans_per_request=50, max_resource_spans_per_request=5, decode_workers=workers) as exporter:
        url = traces_url(exporter)
        assert post(url, otlp_request([gpt()] * 50).SerializeToString(), PROTOBUF)[0] == 200
        status, reply = post(url, otlp_request([gpt()] * 51).SerializeToString(), PROTOBUF)
        assert status == 413 and b"max_spans_per_request" in reply
        many = otlp_request([gpt()])
        for _ in range(5):
            many.resource_spans.append(otlp_request([gpt()]).resource_spans[0])
        assert post(url, many.SerializeToString(), PROTOBUF)[0] == 413
        assert post(url, _hex_json(otlp_request([gpt()] * 51)), "application/json")[0] == 413
        with pytest.raises(grpc.RpcError) as err:
            grpc_export(exporter, otlp_request([gpt()] * 51).SerializeToString())
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_spans_per_request" in err.value.details()
        assert rejected(exporter, "too_many_spans") == 4
        assert recorded(exporter) == 50


def test_millions_of_empty_resource_spans_are_refused_before_decoding():
    with running() as exporter:  # the default limits
        body = empty_resource_spans(4_000_000)  # 8 MB that would decode into 4 million messages
        status, reply = post(traces_url(exporter), body, PROTOBUF)
        assert status == 413 and b"max_resource_spans_per_request" in reply
        with pytest.raises(grpc.RpcError) as err:
            grpc_export(exporter, body)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=20_000), min_size=1, max_size=40), st.integers(1, 3))
def test_the_wire_count_is_exact(sizes, resources):
    """The span count read off the wire (before decoding) is the number of spans, whatever their
    sizes (one- to three-byte lengths)."""
    request = otlp_request([gpt(**{"pad": "x" * size}) for size in sizes])
    for _ in range(resources - 1):
        request.resource_spans.append(otlp_request([gpt()]).resource_spans[0])
    body = request.SerializeToString()
    total = len(sizes) + resources - 1
    otlp.check_limits(body, otlp.Limits(resource_spans=resources, spans=total))
    if total > 1:
        with pytest.raises(otlp.TooManySpans):
            otlp.check_limits(body, otlp.Limits(resource_spans=resources, spans=total - 1))
