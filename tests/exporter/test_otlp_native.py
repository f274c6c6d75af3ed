"""The compiled OTLP span reader (native/) against the Python reader, its reference: for any request
it reads, it gives the same span views; for anything it is not sure of (malformed, over the limits,
unknown fields, protobuf's merge rules) it gives up and the Python reader decides."""

from __future__ import annotations

import math
import random
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from aispend import semconv as sc
from aispend.exporter import otlp, otlp_native, reading
from aispend.exporter.config import ConfigError, ExporterConfig
from tests.exporter.spans import llm, new_id, otlp_request

INSTALL = (
    "the compiled span reader is not installed: `make native` (or `.venv/bin/pip install ./native`) builds it, "
    "with a Rust toolchain (rustup, or Debian's cargo)"
)


@pytest.fixture(autouse=True)
def _installed() -> None:
    assert otlp_native.available(), INSTALL


def python_views(body: bytes, limits: otlp.Limits = otlp.DEFAULT_LIMITS) -> list[otlp.SpanView]:
    return list(otlp.spans(otlp.decode_protobuf(body, limits)[0]))


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN and the types alike (True is not 1)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, otlp.SpanView):
        return all(same(getattr(a, f), getattr(b, f)) for f in otlp.SpanView.__slots__)
    return a == b


# -- requests of every shape ----------------------------------------------------------------------
WANTED = sorted(sc.READ_BY_EXPORTER)
texts = st.text(max_size=12)
keys = st.one_of(st.sampled_from([*WANTED[:20], sc.SERVICE_NAME]), texts)
scalars = st.one_of(
    st.builds(lambda v: AnyValue(string_value=v), texts),
    st.builds(lambda v: AnyValue(int_value=v), st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda v: AnyValue(double_value=v), st.floats()),
    st.builds(lambda v: AnyValue(bool_value=v), st.booleans()),
    st.builds(lambda v: AnyValue(bytes_value=v), st.binary(max_size=6)),
    st.just(AnyValue()),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.builds(lambda vs: AnyValue(array_value=ArrayValue(values=vs)), st.lists(inner, max_size=3)),
        st.builds(
            lambda kvs: AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in kvs])),
            st.lists(st.tuples(texts, inner), max_size=3),
        ),
    ),
    max_leaves=6,
)
key_values = st.lists(
    st.one_of(st.builds(lambda k, v: KeyValue(key=k, value=v), keys, values), st.builds(KeyValue, key=keys)),
    max_size=6,
)


@st.composite
def spans(draw: st.DrawFn) -> Span:
    span = Span(
        trace_id=draw(st.sampled_from([b"", new_id(16), b"\x01" * 3])),
        span_id=draw(st.sampled_from([b"", new_id(8)])),
        parent_span_id=draw(st.sampled_from([b"", new_id(8)])),
        name=draw(texts),
        kind=draw(st.integers(-3, 7)),
        start_time_unix_nano=draw(st.integers(0, 2**64 - 1)),
        end_time_unix_nano=draw(st.integers(0, 2**64 - 1)),
        trace_state=draw(texts),
        flags=draw(st.integers(0, 2**32 - 1)),
        dropped_attributes_count=draw(st.integers(0, 3)),
    )
    span.attributes.extend(draw(key_values))
    if draw(st.booleans()):
        span.status.CopyFrom(Status(code=draw(st.integers(-1, 3)), message=draw(texts)))
    for _ in range(draw(st.integers(0, 2))):
        event = span.events.add(name=draw(texts), time_unix_nano=draw(st.integers(0, 2**64 - 1)))
        event.attributes.extend(draw(key_values))
    for _ in range(draw(st.integers(0, 1))):
        link = span.links.add(trace_id=new_id(16), span_id=new_id(8), trace_state=draw(texts), flags=1)
        link.attributes.extend(draw(key_values))
    return span


@st.composite
def requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 3))):
        rs = ResourceSpans(schema_url=draw(texts))
        if draw(st.booleans()):
            rs.resource.attributes.extend(draw(key_values))
            rs.resource.dropped_attributes_count = draw(st.integers(0, 2))
            if draw(st.booleans()):
                rs.resource.entity_refs.add(type=draw(texts), id_keys=[draw(texts)])
        for _ in range(draw(st.integers(0, 2))):
            ss = ScopeSpans(schema_url=draw(texts))
            if draw(st.booleans()):
                ss.scope.name, ss.scope.version = draw(texts), draw(texts)
                ss.scope.attributes.extend(draw(key_values))
            ss.spans.extend(draw(st.lists(spans(), max_size=3)))
            rs.scope_spans.append(ss)
        request.resource_spans.append(rs)
    return request


SLOW = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SLOW
@given(requests())
def test_any_request_reads_as_the_python_reader_reads_it(request: ExportTraceServiceRequest) -> None:
    body = request.SerializeToString()
    native = otlp_native.read(body, otlp.DEFAULT_LIMITS)
    assert native is not None  # everything a protobuf encoder writes from this schema
    assert same(native, python_views(body))


@SLOW
@given(requests(), st.data())
def test_a_damaged_request_is_read_alike_or_left_to_the_python_reader(request: Any, data: st.DataObject) -> None:
    body = bytearray(request.SerializeToString())
    if not body:
        return
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(body) - 1))
        how = data.draw(st.sampled_from(["flip", "cut", "insert", "high"]))
        if how == "flip":
            body[at] ^= 1 << data.draw(st.integers(0, 7))
        elif how == "cut":
            del body[at:]
        elif how == "insert":
            body[at:at] = data.draw(st.binary(min_size=1, max_size=3))
        else:
            body[at] |= 0x80  # invalid UTF-8 or a longer varint
        if not body:
            return
    native = otlp_native.read(bytes(body), otlp.DEFAULT_LIMITS)
    if native is None:
        return
    # it read the payload: then protobuf decodes it whole, to the same spans
    decoded, undecodable = otlp.decode_protobuf(bytes(body))
    assert undecodable == []
    assert same(native, list(otlp.spans(decoded)))


def _varint(n: int, extra: int) -> bytes:
    """``n`` as a varint padded with ``extra`` more bytes (valid protobuf, which no encoder writes)."""
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if not n and not extra:
            return bytes(out + bytes([low]))
        out.append(low | 0x80)
        if not n:
            extra -= 1


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        value, pos, shift = value | (byte & 0x7F) << shift, pos + 1, shift + 7
        if byte < 0x80:
            return value, pos


def _reencoded(buf: bytes, descriptor: Any, rnd: random.Random) -> bytes:
    """The same message with longer varints here and there (tags, lengths, values), now and then a
    field repeated and the fields shuffled: what protobuf may accept or refuse, but no encoder writes."""
    pad = lambda: 0 if rnd.random() < 0.8 else rnd.randint(1, 9)  # noqa: E731
    out, pos = [], 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
            body = _varint(value, pad())
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            body, pos = buf[pos : pos + size], pos + size
        else:
            size, pos = _read_varint(buf, pos)
            inner, pos = buf[pos : pos + size], pos + size
            field = descriptor.fields_by_number.get(number)
            if field is not None and field.message_type is not None:
                inner = _reencoded(inner, field.message_type, rnd)
            body = _varint(len(inner), pad()) + inner
        out.append(_varint(key, pad()) + body)
        if rnd.random() < 0.03:
            out.append(out[-1])
    if rnd.random() < 0.1:
        rnd.shuffle(out)
    return b"".join(out)


@SLOW
@given(requests(), st.integers(0, 2**32))
def test_unusual_encodings_are_read_alike_or_left_to_the_python_reader(request: Any, seed: int) -> None:
    body = _reencoded(request.SerializeToString(), ExportTraceServiceRequest.DESCRIPTOR, random.Random(seed))
    native = otlp_native.read(body, otlp.DEFAULT_LIMITS)
    if native is not None:  # then protobuf reads it whole, to the same spans
        assert same(native, list(otlp.spans(ExportTraceServiceRequest.FromString(body))))


def test_a_tag_or_length_longer_than_protobuf_reads_is_left_to_it() -> None:
    name = b"\x2a" + _varint(4, 0) + b"chat"  # Span.name
    for body in (b"\xaa\x80\x80\x80\x80\x00\x04chat", b"\x2a\x84\x80\x80\x80\x80\x00chat"):  # 6-byte tag, length
        with pytest.raises(Exception):  # noqa: B017 - protobuf's error type varies by backend
            ExportTraceServiceRequest.FromString(_wrap(body))
        assert otlp_native.read(_wrap(body), otlp.DEFAULT_LIMITS) is None
    five = b"\xaa\x80\x80\x80\x00\x04chat"  # 5 bytes: protobuf reads it, so does this reader
    assert [v.name for v in python_views(_wrap(five))] == ["chat"]
    assert [v.name for v in otlp_native.read(_wrap(five), otlp.DEFAULT_LIMITS) or []] == ["chat"]
    assert [v.name for v in otlp_native.read(_wrap(name), otlp.DEFAULT_LIMITS) or []] == ["chat"]


def test_what_it_is_not_sure_of_is_left_to_the_python_reader() -> None:
    span = Span(trace_id=new_id(16), span_id=new_id(8), name="chat")
    good = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])])
    body = good.SerializeToString()
    assert otlp_native.read(body, otlp.DEFAULT_LIMITS) is not None
    bad_event = Span(trace_id=new_id(16), span_id=new_id(8))
    bad_event.events.add(name="x")
    event_body = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[bad_event])])]
    ).SerializeToString()
    unknown_field = body + b"\xa0\x06\x01"  # field 100, a varint: unknown to the schema
    status = Span(status=Status(code=2)).SerializeToString()
    assert status.startswith(b"\x7a")  # field 15 (status), length-delimited
    merged = _wrap(status + status)  # protobuf merges the two; not mirrored
    assert otlp_native.read(_wrap(status), otlp.DEFAULT_LIMITS) is not None
    cases = {
        "invalid UTF-8 in an event's name": event_body.replace(b"\x12\x01x", b"\x12\x01\xff"),
        "a field protobuf does not know": unknown_field,
        "a message field twice": merged,
        "truncated": body[:-1],
    }
    for what, payload in cases.items():
        assert otlp_native.read(payload, otlp.DEFAULT_LIMITS) is None, what
        if _decodes(payload):  # the Python reader's answer, rejections included, whichever is asked
            native = reading.read_payload(payload, False, 10**6, {}, native=True)
            assert native == reading.read_payload(payload, False, 10**6, {}, native=False), what
    assert reading.read_payload(event_body.replace(b"\x12\x01x", b"\x12\x01\xff"), False, 10**6, {}).rejected == {
        "invalid_utf8": 1
    }


MARK = "\u00e9MARK"  # é: two bytes in UTF-8; with its second byte changed, not UTF-8 at all


def _nested(value: AnyValue) -> AnyValue:
    return AnyValue(
        array_value=ArrayValue(values=[AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key="k", value=value)]))])
    )


# every string field of the schema, each where a request carries it
STRING_FIELDS = {
    "span name": lambda rs, ss, span: setattr(span, "name", MARK),
    "trace_state": lambda rs, ss, span: setattr(span, "trace_state", MARK),
    "wanted attribute value": lambda rs, ss, span: span.attributes.add(key=sc.GEN_AI_REQUEST_MODEL).value.MergeFrom(
        AnyValue(string_value=MARK)
    ),
    "other attribute value": lambda rs, ss, span: span.attributes.add(key="x").value.MergeFrom(
        AnyValue(string_value=MARK)
    ),
    "attribute key": lambda rs, ss, span: span.attributes.add(key=MARK),
    "nested value": lambda rs, ss, span: span.attributes.add(key="x").value.MergeFrom(
        _nested(AnyValue(string_value=MARK))
    ),
    "nested key": lambda rs, ss, span: span.attributes.add(key="x").value.MergeFrom(
        AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=MARK)]))
    ),
    "event name": lambda rs, ss, span: span.events.add(name=MARK),
    "event attribute": lambda rs, ss, span: span.events.add().attributes.add(key=MARK),
    "link trace_state": lambda rs, ss, span: span.links.add(trace_state=MARK),
    "link attribute": lambda rs, ss, span: span.links.add().attributes.add(key=MARK),
    "status message": lambda rs, ss, span: setattr(span.status, "message", MARK),
    "resource attribute": lambda rs, ss, span: rs.resource.attributes.add(key=sc.SERVICE_NAME).value.MergeFrom(
        AnyValue(string_value=MARK)
    ),
    "entity ref type": lambda rs, ss, span: rs.resource.entity_refs.add(type=MARK),
    "entity ref id key": lambda rs, ss, span: rs.resource.entity_refs.add(id_keys=[MARK]),
    "entity ref schema url": lambda rs, ss, span: rs.resource.entity_refs.add(schema_url=MARK),
    "entity ref description key": lambda rs, ss, span: rs.resource.entity_refs.add(description_keys=[MARK]),
    "resource schema url": lambda rs, ss, span: setattr(rs, "schema_url", MARK),
    "scope name": lambda rs, ss, span: setattr(ss.scope, "name", MARK),
    "scope version": lambda rs, ss, span: setattr(ss.scope, "version", MARK),
    "scope attribute": lambda rs, ss, span: ss.scope.attributes.add(key=MARK),
    "scope schema url": lambda rs, ss, span: setattr(ss, "schema_url", MARK),
}


@pytest.mark.parametrize("where", sorted(STRING_FIELDS))
def test_invalid_utf8_in_any_string_is_left_to_the_python_reader(where: str) -> None:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    ss = rs.scope_spans.add()
    span = ss.spans.add(trace_id=new_id(16), span_id=new_id(8))
    STRING_FIELDS[where](rs, ss, span)
    body = request.SerializeToString()
    assert otlp_native.read(body, otlp.DEFAULT_LIMITS) is not None  # valid: read
    assert body.count(MARK.encode()) == 1
    broken = body.replace(MARK.encode(), b"\xc3\x28MARK")
    with pytest.raises(Exception):  # noqa: B017 - protobuf's own error type varies by backend
        ExportTraceServiceRequest.FromString(broken)
    assert otlp_native.read(broken, otlp.DEFAULT_LIMITS) is None


def _wrap(span: bytes) -> bytes:
    """A request of one resource, one scope and this Span message."""
    scope = b"\x12" + _len(span) + span
    return b"\x0a" + _len(b"\x12" + _len(scope) + scope) + b"\x12" + _len(scope) + scope


def _len(b: bytes) -> bytes:
    assert len(b) < 128
    return bytes([len(b)])


def _decodes(payload: bytes) -> bool:
    try:
        otlp.decode_protobuf(payload)
    except otlp.MalformedPayload:
        return False
    return True


def test_over_the_limits_the_python_reader_says_which() -> None:
    spans = [llm("openai", "gpt-4o", 10, 5) for _ in range(6)]
    body = otlp_request(spans).SerializeToString()
    assert otlp_native.read(body, otlp.Limits(resource_spans=1, spans=6)) is not None
    assert otlp_native.read(body, otlp.Limits(resource_spans=1, spans=5)) is None
    body += body  # two resource spans
    assert otlp_native.read(body, otlp.Limits(resource_spans=1, spans=100)) is None
    with pytest.raises(otlp.TooManySpans, match="resource spans"):
        reading.read_payload(body, False, 10**6, {}, otlp.Limits(resource_spans=1, spans=100))


def test_read_payload_gives_the_same_batch_either_way() -> None:
    spans = [
        llm("openai", "gpt-4o", 120, 30, **{sc.AISPEND_CUSTOMER: "acme", sc.AISPEND_FEATURE: "chat"}),
        llm("anthropic", "claude-sonnet-4-0", 10, -5),  # rejected: a negative count
        {"name": "GET /", "attributes": {"http.method": "GET"}},  # not a billable call
        llm("serper", "search", 0, 0, **{sc.AISPEND_KEY: "sk-" + "a" * 40}),  # a raw key: fingerprinted
    ]
    body = otlp_request(spans).SerializeToString()
    native = reading.read_payload(body, False, 10**6, {})
    python = reading.read_payload(body, False, 10**6, {}, native=False)
    assert native.calls and native.rejected
    assert native == python


def test_it_is_switched_off_by_the_native_reader_setting() -> None:
    assert ExporterConfig().native_reader is True
    assert ExporterConfig.load(environ={"AISPEND_NATIVE_READER": "false"}).native_reader is False
    assert ExporterConfig.load(environ={"AISPEND_NATIVE_READER": "on"}).native_reader is True
    with pytest.raises(ConfigError, match="native_reader: expected true or false"):
        ExporterConfig.load(environ={"AISPEND_NATIVE_READER": "maybe"})


def test_it_knows_only_fields_of_the_installed_schema() -> None:
    import aispend_native

    installed: dict[str, set[int]] = {}

    def walk(descriptor: Any) -> None:
        if descriptor.full_name not in installed:
            installed[descriptor.full_name] = {f.number for f in descriptor.fields}
            for f in descriptor.fields:
                if f.message_type is not None:
                    walk(f.message_type)

    walk(ExportTraceServiceRequest.DESCRIPTOR)
    known = {name: set(numbers) for name, numbers in aispend_native.schema().items()}
    assert set(known) == set(installed)
    for name, numbers in known.items():
        assert numbers <= installed[name], name  # a field it reads means what protobuf says it means
    left = {(name, n) for name, numbers in installed.items() for n in numbers - known[name]}
    # the profiles signal's string-table indexes: a request with them goes to the Python reader
    assert left == {("opentelemetry.proto.common.v1.KeyValue", 3), ("opentelemetry.proto.common.v1.AnyValue", 8)}


def test_a_failure_inside_it_costs_only_its_speed(monkeypatch, caplog) -> None:
    class PanicException(BaseException):  # how PyO3 raises a Rust panic
        pass

    class Broken:
        def read(self, *args: Any) -> None:
            raise PanicException("index out of bounds")

    body = otlp_request([llm("openai", "gpt-4o", 120, 30)]).SerializeToString()
    expected = reading.read_payload(body, False, 10**6, {}, native=False)
    monkeypatch.setattr(otlp_native, "_reader", Broken())
    monkeypatch.setattr(otlp_native, "_logged", set())
    assert reading.read_payload(body, False, 10**6, {}) == expected
    assert reading.read_payload(body, False, 10**6, {}) == expected
    logged = [r for r in caplog.records if "compiled span reader failed" in r.getMessage()]
    assert len(logged) == 1 and "PanicException: index out of bounds" in logged[0].getMessage()

    class Interrupted:
        def read(self, *args: Any) -> None:
            raise KeyboardInterrupt

    monkeypatch.setattr(otlp_native, "_reader", Interrupted())
    with pytest.raises(KeyboardInterrupt):
        reading.read_payload(body, False, 10**6, {})


def test_bytes_like_bodies_are_read_too() -> None:
    body = otlp_request([llm("openai", "gpt-4o", 120, 30)]).SerializeToString()
    for form in (bytearray(body), memoryview(body)):
        views = otlp_native.read(form, otlp.DEFAULT_LIMITS)  # type: ignore[arg-type]
        assert views is not None and same(views, python_views(body))


def test_without_the_package_the_python_reader_reads_everything() -> None:
    body = otlp_request([llm("openai", "gpt-4o", 120, 30)]).SerializeToString()
    code = (
        "import sys; sys.modules['aispend_native'] = None\n"  # as if never installed: import fails
        "from aispend.exporter import otlp_native, reading\n"
        "batch = reading.read_payload(sys.stdin.buffer.read(), False, 10**6, {})\n"
        "print(otlp_native.available(), [(c.provider, c.model, c.input_tokens) for c in batch.calls])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], input=body, capture_output=True, timeout=60, check=True)
    assert done.stdout.decode().strip() == "False [('openai', 'gpt-4o', 120)]"
