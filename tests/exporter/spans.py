"""Building OTLP payloads and span views for exporter tests."""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from aispend.exporter.otlp import SpanView

_ids = itertools.count(1)
# when this module was imported, for tests that place spans relative to one fixed instant; spans
# built without a time "happen" when they are built instead, so that a run crossing midnight UTC
# still finds them in the current day (budgets and "today" count the current period only)
NOW_NS = time.time_ns()


def new_id(n: int = 8) -> bytes:
    return os.urandom(n)


def view(attrs: dict[str, Any], service: str = "app", **kw: Any) -> SpanView:
    now = time.time_ns()
    defaults = dict(
        trace_id=new_id(16),
        span_id=new_id(8),
        parent_span_id=b"",
        name="chat",
        kind=3,
        start_ns=now,
        end_ns=now + 250_000_000,
        status_code=0,
        attributes=attrs,
        service=service,
        resource={"service.name": service},
        scope="test",
    )
    defaults.update(kw)
    return SpanView(**defaults)


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list | tuple):
        out = AnyValue()
        out.array_value.values.extend(any_value(v) for v in value)
        return out
    return AnyValue(string_value=str(value))


def otlp_request(spans: list[dict[str, Any]], service: str = "app") -> ExportTraceServiceRequest:
    """Each dict: attributes, plus optional trace_id/span_id/parent/status/name/start/duration keys."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=any_value(service)))
    ss = rs.scope_spans.add()
    ss.scope.name = "test"
    for spec in spans:
        spec = dict(spec)
        start = spec.pop("start", None)
        span = Span(
            trace_id=spec.pop("trace_id", None) or new_id(16),
            span_id=spec.pop("span_id", None) or new_id(8),
            parent_span_id=spec.pop("parent", b""),
            name=spec.pop("name", "chat"),
            kind=Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=time.time_ns() if start is None else start,
        )
        span.end_time_unix_nano = span.start_time_unix_nano + spec.pop("duration", 500_000_000)
        status = spec.pop("status", None)
        if status == "error":
            span.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR))
        for key, value in spec.pop("attributes", spec).items():
            span.attributes.append(KeyValue(key=key, value=any_value(value)))
        ss.spans.append(span)
    return request


def llm(provider: str, model: str, inp: int, out: int, **extra: Any) -> dict[str, Any]:
    attrs = {
        "gen_ai.provider.name": provider,
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": inp,
        "gen_ai.usage.output_tokens": out,
        "aispend.service.kind": "llm",
    }
    attrs.update(extra)
    return attrs


def stored_call(ts_ns: int | None = None, **values: Any) -> dict[str, Any]:
    """A row of the ledger's ``calls`` table as aispend writes it (a GPT-4 call of 150 + 75 tokens,
    $0.009), for tests that fill or fake a ledger directly; ``values`` override columns."""
    from aispend.exporter.ledger import CALL_COLUMNS, utc_day

    if ts_ns is None:
        ts_ns = time.time_ns()
    row = dict.fromkeys(CALL_COLUMNS, 0)
    row.update(
        ts_ns=ts_ns,
        day=utc_day(ts_ns),
        duration_s=0.5,
        service="app",
        provider="openai",
        model="gpt-4",
        operation="chat",
        feature="",
        customer="",
        key="",
        response_model="",
        kind="llm",
        status="ok",
        error_type="",
        input_tokens=150,
        output_tokens=75,
        requests=1,
        cost_nusd=9_000_000,
        priced=1,
        trace_id=new_id(16).hex(),
        span_id=new_id(8).hex(),
        parent_span_id="",
        response_id="",
        instance="",
        cost_source="",
    )
    row.update(values)
    return row
