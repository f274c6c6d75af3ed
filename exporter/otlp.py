"""OTLP trace payloads -> plain span views. Protobuf and OTLP/JSON, nothing else.

OTLP/JSON differs from protobuf's canonical JSON in one place that matters: trace and span ids
are hex strings, not base64, so they are converted before ``json_format`` parses the body.

A request is decoded whole when it can be (the fast path). When it cannot, one bad span (invalid
UTF-8 in an attribute, say) must cost that span only: the request is split along its wire format
(protobuf) or its objects (JSON) and each resource, scope and span decoded on its own; what still
fails is reported per span as ``Undecodable``. Only a request whose structure is broken is
``MalformedPayload``. Before decoding, the number of resource spans and spans is checked against
``Limits`` (on the wire, so a small body of millions of empty messages is refused before it costs
seconds and gigabytes).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from aispend import semconv as sc


class MalformedPayload(ValueError):
    """The whole export request could not be decoded."""

    reason = "malformed_payload"  # aispend_spans_rejected_total{reason}, counted once per request


class TooManySpans(MalformedPayload):
    """More resource spans or spans in one request than ``Limits`` allows (413 / RESOURCE_EXHAUSTED)."""

    reason = "too_many_spans"


@dataclass(frozen=True, slots=True)
class Limits:
    resource_spans: int = 10_000  # max_resource_spans_per_request
    spans: int = 100_000  # max_spans_per_request


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Undecodable:
    """Spans of a request that could not be decoded on their own; the rest of it was."""

    reason: str  # invalid_utf8 | undecodable_span
    detail: str
    count: int


@dataclass(slots=True)
class SpanView:
    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    name: str
    kind: int
    start_ns: int
    end_ns: int
    status_code: int  # 0 unset, 1 ok, 2 error
    attributes: dict[str, Any]  # those in semconv.READ_BY_EXPORTER
    service: str
    resource: dict[str, Any]
    scope: str


def any_value(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return tuple(any_value(v) for v in value.array_value.values)
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which)


_SCALARS = {"string_value", "int_value", "double_value", "bool_value", "bytes_value"}


def attributes(kvs: Any, wanted: frozenset[str] | None = None) -> dict[str, Any]:
    """The attributes as a dict; with ``wanted``, only those names (others are not decoded)."""
    # The hot loop of the exporter. Most values are strings, then integers: reading ``string_value``
    # and ``int_value`` first (empty or 0 for any other type) saves the WhichOneof call for them.
    out = {}
    for kv in kvs:
        key = kv.key
        if wanted is not None and key not in wanted:
            continue
        value = kv.value
        text = value.string_value
        if text:
            out[key] = text
            continue
        number = value.int_value  # next most common (token counts); 0 also when unset or another type
        if number:
            out[key] = number
            continue
        which = value.WhichOneof("value")
        out[key] = getattr(value, which) if which in _SCALARS else any_value(value)
    return out


Decoded = tuple[ExportTraceServiceRequest, list[Undecodable]]
_DECODE_ERRORS = (DecodeError, ValueError, TypeError, RecursionError)


def _undecodable(exc: BaseException, count: int, what: str) -> Undecodable:
    text = str(exc)
    utf8 = "UTF-8" in text or "surrogate" in text
    reason = "invalid_utf8" if utf8 else "undecodable_span"
    detail = f"{what} has invalid UTF-8 in a string" if utf8 else f"{what} could not be decoded"
    return Undecodable(reason, detail + (f" ({count} spans)" if count > 1 else ""), count)


# -- protobuf -------------------------------------------------------------------------------------
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while shift < 64:
        if pos >= len(buf):
            raise MalformedPayload("not an OTLP ExportTraceServiceRequest: truncated")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
    raise MalformedPayload("not an OTLP ExportTraceServiceRequest: bad varint")


def _messages(buf: bytes, start: int, end: int, wanted: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each length-delimited field number ``wanted`` in buf[start:end]; other
    fields are skipped. Raises MalformedPayload where the wire format itself is broken."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        wire = key & 7
        if wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise MalformedPayload("not an OTLP ExportTraceServiceRequest: a field runs past its message")
            if key >> 3 == wanted:
                yield pos, pos + length
            pos += length
        elif wire == 0:
            pos = _varint(buf, pos)[1]
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise MalformedPayload(f"not an OTLP ExportTraceServiceRequest: wire type {wire}")
    if pos != end:
        raise MalformedPayload("not an OTLP ExportTraceServiceRequest: a field runs past its message")


def check_limits(body: bytes, limits: Limits) -> None:
    """Count resource spans and spans on the wire (every one takes at least 2 bytes, so a body
    smaller than twice a limit cannot exceed it and is not scanned)."""
    size = len(body)
    if size < 2 * min(limits.resource_spans, limits.spans):
        return
    spans = 0
    for resources, (rs_start, rs_end) in enumerate(_messages(body, 0, size, 1), 1):
        if resources > limits.resource_spans:
            raise _too_many("resource spans", limits.resource_spans)
        if size >= 2 * limits.spans:
            spans += sum(_count(body, start, end) for start, end in _messages(body, rs_start, rs_end, 2))
            if spans > limits.spans:
                raise _too_many("spans", limits.spans)


def _too_many(what: str, limit: int) -> TooManySpans:
    return TooManySpans(
        f"more than {limit} {what} in one request (max_{what.replace(' ', '_')}_per_request): send smaller batches"
    )


def _parse(message: Message, data: bytes) -> BaseException | None:
    try:
        message.MergeFromString(data)
    except _DECODE_ERRORS as exc:
        return exc
    return None


def _count(body: bytes, start: int, end: int) -> int:
    """Spans in a ScopeSpans: ``_messages`` unrolled for one- and two-byte keys and lengths (on the
    path of every large export, where a generator costs a third of protobuf's own decoding)."""
    count, pos = 0, start
    while pos < end:
        key = body[pos]
        if key & 0x80 or key & 7 != 2:  # a long key, or not length-delimited: the general reader
            return count + sum(1 for _ in _messages(body, pos, end, 2))
        length = body[pos + 1] if pos + 1 < end else 0x80
        if length < 0x80:
            pos += 2 + length
        elif pos + 2 < end and body[pos + 2] < 0x80:
            pos += 3 + (length & 0x7F) + (body[pos + 2] << 7)
        else:
            return count + sum(1 for _ in _messages(body, pos, end, 2))
        count += key == 0x12  # field 2 (spans); field 1 (scope) and 3 (schema_url) are skipped
    if pos != end:
        raise MalformedPayload("not an OTLP ExportTraceServiceRequest: a field runs past its message")
    return count


def _lenient_protobuf(body: bytes) -> Decoded:
    """Each resource, scope and span decoded on its own: a bad one costs only its own spans."""
    out = ExportTraceServiceRequest()
    bad: list[Undecodable] = []
    for rs_start, rs_end in _messages(body, 0, len(body), 1):
        rs = ResourceSpans()
        if _parse(rs, body[rs_start:rs_end]) is None:
            out.resource_spans.append(rs)
            continue
        rs = out.resource_spans.add()
        error = None
        for start, end in _messages(body, rs_start, rs_end, 1):
            error = error or _parse(rs.resource, body[start:end])
        scopes = list(_messages(body, rs_start, rs_end, 2))
        if error is not None:  # the resource (service.name, ...) is unreadable: so are its spans
            out.resource_spans.pop()
            count = sum(_count(body, start, end) for start, end in scopes)
            if count:
                bad.append(_undecodable(error, count, "a resource"))
            continue
        for ss_start, ss_end in scopes:
            ss = ScopeSpans()
            if _parse(ss, body[ss_start:ss_end]) is None:
                rs.scope_spans.append(ss)
                continue
            ss = rs.scope_spans.add()
            scope_error = None
            for start, end in _messages(body, ss_start, ss_end, 1):
                scope_error = scope_error or _parse(ss.scope, body[start:end])
            for start, end in _messages(body, ss_start, ss_end, 2):
                span = Span()
                error = scope_error or _parse(span, body[start:end])
                if error is None:
                    ss.spans.append(span)
                else:
                    bad.append(_undecodable(error, 1, "the instrumentation scope" if scope_error else "a span"))
    return out, bad


def decode_protobuf(body: bytes, limits: Limits = DEFAULT_LIMITS) -> Decoded:
    check_limits(body, limits)
    try:
        return ExportTraceServiceRequest.FromString(body), []
    except _DECODE_ERRORS as exc:
        whole = exc
    try:
        request, bad = _lenient_protobuf(body)
    except MalformedPayload:
        raise MalformedPayload(f"not an OTLP ExportTraceServiceRequest: {whole}") from None
    if not bad:  # decodable piece by piece but not whole: not something a sender produces
        raise MalformedPayload(f"not an OTLP ExportTraceServiceRequest: {whole}")
    return request, bad


# -- OTLP/JSON ------------------------------------------------------------------------------------
_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")
_NOT_AN_ID = base64.b64encode(b"\0").decode()  # one byte: the reader rejects it as bad_trace_id / bad_span_id


def _hex_ids_to_base64(span: dict[str, Any]) -> None:
    for key in _ID_FIELDS:
        value = span.get(key)
        if isinstance(value, str) and value:
            try:
                span[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
            except ValueError:
                span[key] = _NOT_AN_ID  # costs this span, not the request
    for link in span.get("links") or ():
        if isinstance(link, dict):
            _hex_ids_to_base64(link)


def _items(data: Any, camel: str, snake: str) -> list[Any]:
    if not isinstance(data, dict):
        raise MalformedPayload("not an OTLP/JSON trace export: resource and scope spans must be objects")
    items = data.get(camel) or data.get(snake) or []
    if not isinstance(items, list):
        raise MalformedPayload(f"{camel} must be a list")
    return items


def _lenient_json(resource_spans: list[Any], whole: BaseException) -> Decoded:
    out = ExportTraceServiceRequest()
    bad: list[Undecodable] = []

    def parse(data: Any, message: Message, drop: tuple[str, ...]) -> BaseException | None:
        if not isinstance(data, dict):
            raise MalformedPayload(f"not an OTLP/JSON trace export: {whole}")
        try:
            json_format.ParseDict({k: v for k, v in data.items() if k not in drop}, message, ignore_unknown_fields=True)
        except (json_format.ParseError, *_DECODE_ERRORS) as exc:
            return exc
        return None

    for rs_data in resource_spans:
        rs = out.resource_spans.add()
        error = parse(rs_data, rs, ("scopeSpans", "scope_spans"))
        for ss_data in _items(rs_data, "scopeSpans", "scope_spans"):
            ss = rs.scope_spans.add()
            scope_error = error or parse(ss_data, ss, ("spans",))
            for span_data in _items(ss_data, "spans", "spans"):
                span = Span()
                span_error = scope_error or parse(span_data, span, ())
                if span_error is None:
                    ss.spans.append(span)
                else:
                    what = "a resource" if error else "the instrumentation scope" if scope_error else "a span"
                    bad.append(_undecodable(span_error, 1, what))
    return out, bad


def decode_json(body: bytes, limits: Limits = DEFAULT_LIMITS) -> Decoded:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:  # bad bytes become lone surrogates: only the spans holding them fail
        text = body.decode("utf-8", "surrogateescape")
    try:
        data = json.loads(text)
    except RecursionError:
        raise MalformedPayload("not JSON: nested too deeply") from None
    except ValueError as exc:
        raise MalformedPayload(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedPayload("an OTLP/JSON body must be an object")
    resource_spans = _items(data, "resourceSpans", "resource_spans")
    if len(resource_spans) > limits.resource_spans:
        raise _too_many("resource spans", limits.resource_spans)
    spans = 0
    for rs in resource_spans:
        for ss in _items(rs, "scopeSpans", "scope_spans"):
            for span in _items(ss, "spans", "spans"):
                spans += 1
                if isinstance(span, dict):
                    _hex_ids_to_base64(span)
    if spans > limits.spans:
        raise _too_many("spans", limits.spans)
    try:
        return json_format.ParseDict(data, ExportTraceServiceRequest(), ignore_unknown_fields=True), []
    except (json_format.ParseError, *_DECODE_ERRORS) as exc:
        whole = exc
    request, bad = _lenient_json(resource_spans, whole)
    if not bad:
        raise MalformedPayload(f"not an OTLP/JSON trace export: {whole}")
    return request, bad


def spans(request: ExportTraceServiceRequest) -> Iterator[SpanView]:
    for rs in request.resource_spans:
        resource = attributes(rs.resource.attributes)
        service = resource.get(sc.SERVICE_NAME)
        service = service if isinstance(service, str) and service else "unknown_service"
        for ss in rs.scope_spans:
            scope = ss.scope.name
            for span in ss.spans:
                yield SpanView(
                    trace_id=span.trace_id,
                    span_id=span.span_id,
                    parent_span_id=span.parent_span_id,
                    name=span.name,
                    kind=span.kind,
                    start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano,
                    status_code=span.status.code,
                    attributes=attributes(span.attributes, sc.READ_BY_EXPORTER),
                    service=service,
                    resource=resource,
                    scope=scope,
                )


def response(rejected: int = 0, message: str = "") -> ExportTraceServiceResponse:
    out = ExportTraceServiceResponse()
    if rejected or message:
        out.partial_success.rejected_spans = rejected
        out.partial_success.error_message = message
    return out
