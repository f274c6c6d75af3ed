//! aispend's compiled OTLP reader: an `ExportTraceServiceRequest` in protobuf -> the rows of
//! `aispend.exporter.otlp.SpanView`, with exactly the values the pure-Python reader gives
//! (`otlp.spans(otlp.decode_protobuf(body))`), or `None` whenever it cannot be sure to: a payload
//! that is malformed, over the limits, or has a field or shape this reader does not know is left
//! to the Python reader, which decides what it is (lenient decoding, rejections and their reasons).
//!
//! Every field of the schema is checked as protobuf's own decoder checks it (strings are UTF-8,
//! lengths stay inside their message); only the fields the exporter reads become Python objects.
//! The wire is parsed without the GIL; the objects are made with it.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyList, PyString, PyTuple};
use std::collections::HashMap;

/// The reader gives up: the Python reader takes the payload.
struct Unsure;
type R<T> = Result<T, Unsure>;

/// Arrays and maps nested deeper than this are left to the Python reader.
const MAX_DEPTH: u32 = 16;

enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32,
    Len(&'a [u8]),
}

/// The fields of one message, in wire order.
struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn fields(buf: &[u8]) -> Fields<'_> {
    Fields { buf, pos: 0 }
}

impl<'a> Fields<'a> {
    fn varint(&mut self) -> R<u64> {
        let mut result: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *self.buf.get(self.pos).ok_or(Unsure)?;
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err(Unsure); // more than 64 bits
            }
            result |= u64::from(byte & 0x7F) << shift;
            if byte < 0x80 {
                return Ok(result);
            }
        }
        Err(Unsure)
    }

    /// A tag or a length: protobuf reads these in at most 5 bytes, as 32 bits, and fails beyond.
    fn short_varint(&mut self) -> R<u64> {
        let start = self.pos;
        let value = self.varint()?;
        if self.pos - start > 5 || value > u64::from(u32::MAX) {
            return Err(Unsure);
        }
        Ok(value)
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(Unsure)?;
        let bytes = self.buf.get(self.pos..end).ok_or(Unsure)?;
        self.pos = end;
        Ok(bytes)
    }

    fn field(&mut self) -> R<(u64, Wire<'a>)> {
        let key = self.short_varint()?;
        let number = key >> 3;
        if number == 0 || number >= 1 << 29 {
            return Err(Unsure);
        }
        let value = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| Unsure)?)),
            2 => {
                let n = usize::try_from(self.short_varint()?).map_err(|_| Unsure)?;
                Wire::Len(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed32
            }
            _ => return Err(Unsure), // groups: nothing in OTLP
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = R<(u64, Wire<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        (self.pos < self.buf.len()).then(|| self.field())
    }
}

fn text(bytes: &[u8]) -> R<&str> {
    std::str::from_utf8(bytes).map_err(|_| Unsure)
}

/// A singular message field seen twice would be merged by protobuf: not worth mirroring.
fn once<'a>(slot: &mut Option<&'a [u8]>, bytes: &'a [u8]) -> R<()> {
    if slot.replace(bytes).is_some() {
        return Err(Unsure);
    }
    Ok(())
}

enum Any<'a> {
    Unset,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    Array(Vec<Any<'a>>),
    Map(Vec<(&'a str, Any<'a>)>),
}

fn any_value(buf: &[u8], depth: u32) -> R<Any<'_>> {
    if depth > MAX_DEPTH {
        return Err(Unsure);
    }
    let mut value = Any::Unset;
    for field in fields(buf) {
        if !matches!(value, Any::Unset) {
            return Err(Unsure); // a oneof set twice: last-wins and merging are protobuf's to decide
        }
        value = match field? {
            (1, Wire::Len(b)) => Any::Str(text(b)?),
            (2, Wire::Varint(v)) => Any::Bool(v != 0),
            (3, Wire::Varint(v)) => Any::Int(v as i64),
            (4, Wire::Fixed64(v)) => Any::Double(f64::from_bits(v)),
            (5, Wire::Len(b)) => Any::Array(
                fields(b)
                    .map(|f| match f? {
                        (1, Wire::Len(v)) => any_value(v, depth + 1),
                        _ => Err(Unsure),
                    })
                    .collect::<R<_>>()?,
            ),
            (6, Wire::Len(b)) => Any::Map(key_values(b, depth + 1)?),
            (7, Wire::Len(b)) => Any::Bytes(b),
            _ => return Err(Unsure), // string_value_strindex and the like: profiles only
        };
    }
    Ok(value)
}

fn key_value(buf: &[u8], depth: u32) -> R<(&str, Any<'_>)> {
    let mut key = "";
    let mut value = None;
    for field in fields(buf) {
        match field? {
            (1, Wire::Len(b)) => key = text(b)?,
            (2, Wire::Len(b)) => once(&mut value, b)?,
            _ => return Err(Unsure),
        }
    }
    Ok((key, value.map_or(Ok(Any::Unset), |b| any_value(b, depth))?))
}

/// The entries of a `KeyValueList`.
fn key_values(buf: &[u8], depth: u32) -> R<Vec<(&str, Any<'_>)>> {
    fields(buf)
        .map(|f| match f? {
            (1, Wire::Len(b)) => key_value(b, depth),
            _ => Err(Unsure),
        })
        .collect()
}

/// Fields read only to be checked: the parts of a span and its resource the exporter ignores.
fn check(buf: &[u8], strings: &[u64], key_values_at: u64, varints: &[u64], fixed: &[u64]) -> R<()> {
    for field in fields(buf) {
        match field? {
            (n, Wire::Len(b)) if n == key_values_at => {
                key_value(b, 0)?;
            }
            (n, Wire::Len(b)) if strings.contains(&n) => {
                text(b)?;
            }
            (n, Wire::Varint(_)) if varints.contains(&n) => {}
            (n, Wire::Fixed64(_) | Wire::Fixed32) if fixed.contains(&n) => {}
            _ => return Err(Unsure),
        }
    }
    Ok(())
}

fn check_event(buf: &[u8]) -> R<()> {
    check(buf, &[2], 3, &[4], &[1]) // time (fixed64), name, attributes, dropped count
}

fn check_link(buf: &[u8]) -> R<()> {
    for field in fields(buf) {
        match field? {
            (1 | 2, Wire::Len(_)) | (5, Wire::Varint(_)) => {}
            (3, Wire::Len(b)) => {
                text(b)?;
            }
            (4, Wire::Len(b)) => {
                key_value(b, 0)?;
            }
            (6, Wire::Fixed32) => {}
            _ => return Err(Unsure),
        }
    }
    Ok(())
}

fn check_entity_ref(buf: &[u8]) -> R<()> {
    check(buf, &[1, 2, 3, 4], 0, &[], &[])
}

struct Span<'a> {
    trace_id: &'a [u8],
    span_id: &'a [u8],
    parent_span_id: &'a [u8],
    name: &'a str,
    kind: i32,
    start_ns: u64,
    end_ns: u64,
    status_code: i32,
    attributes: Vec<(&'a str, Any<'a>)>,
}

fn span(buf: &[u8]) -> R<Span<'_>> {
    let mut s = Span {
        trace_id: b"",
        span_id: b"",
        parent_span_id: b"",
        name: "",
        kind: 0,
        start_ns: 0,
        end_ns: 0,
        status_code: 0,
        attributes: Vec::new(), // a reserve per span would cost ~0.8 KB for each empty span sent
    };
    let mut status = None;
    for field in fields(buf) {
        match field? {
            (1, Wire::Len(b)) => s.trace_id = b,
            (2, Wire::Len(b)) => s.span_id = b,
            (3, Wire::Len(b)) => {
                text(b)?; // trace_state
            }
            (4, Wire::Len(b)) => s.parent_span_id = b,
            (5, Wire::Len(b)) => s.name = text(b)?,
            (6, Wire::Varint(v)) => s.kind = v as i32, // an enum is 32 bits: the low ones count
            (7, Wire::Fixed64(v)) => s.start_ns = v,
            (8, Wire::Fixed64(v)) => s.end_ns = v,
            (9, Wire::Len(b)) => s.attributes.push(key_value(b, 0)?),
            (10 | 12 | 14, Wire::Varint(_)) => {} // dropped counts
            (11, Wire::Len(b)) => check_event(b)?,
            (13, Wire::Len(b)) => check_link(b)?,
            (15, Wire::Len(b)) => once(&mut status, b)?,
            (16, Wire::Fixed32) => {} // flags
            _ => return Err(Unsure),
        }
    }
    if let Some(b) = status {
        for field in fields(b) {
            match field? {
                (2, Wire::Len(m)) => {
                    text(m)?;
                }
                (3, Wire::Varint(v)) => s.status_code = v as i32,
                _ => return Err(Unsure),
            }
        }
    }
    Ok(s)
}

struct Resource<'a> {
    attributes: Vec<(&'a str, Any<'a>)>,
    spans: Vec<(&'a str, Span<'a>)>, // with their scope's name
}

struct Limits {
    resource_spans: usize,
    spans: usize,
}

type Holder<'a> = (Option<&'a [u8]>, Vec<&'a [u8]>);

/// A `ResourceSpans` or a `ScopeSpans`, which have one shape: (1) the resource or scope, (2) the
/// scope spans or spans, (3) a schema URL (checked).
fn holder(buf: &[u8]) -> R<Holder<'_>> {
    let mut head = None;
    let mut items = Vec::new();
    for field in fields(buf) {
        match field? {
            (1, Wire::Len(b)) => once(&mut head, b)?,
            (2, Wire::Len(b)) => items.push(b),
            (3, Wire::Len(b)) => {
                text(b)?;
            }
            _ => return Err(Unsure),
        }
    }
    Ok((head, items))
}

fn request<'a>(buf: &'a [u8], limits: &Limits) -> R<Vec<Resource<'a>>> {
    let mut out = Vec::new();
    let mut total = 0usize;
    for field in fields(buf) {
        let rs = match field? {
            (1, Wire::Len(b)) => b,
            _ => return Err(Unsure),
        };
        if out.len() >= limits.resource_spans {
            return Err(Unsure); // the Python reader says which limit, and how to stay under it
        }
        let (resource, scopes) = holder(rs)?;
        let mut attributes = Vec::new();
        for field in fields(resource.unwrap_or(b"")) {
            match field? {
                (1, Wire::Len(b)) => attributes.push(key_value(b, 0)?),
                (2, Wire::Varint(_)) => {}
                (3, Wire::Len(b)) => check_entity_ref(b)?,
                _ => return Err(Unsure),
            }
        }
        let mut spans = Vec::new();
        for ss in scopes {
            let (scope, bodies) = holder(ss)?;
            let mut scope_name = "";
            for field in fields(scope.unwrap_or(b"")) {
                match field? {
                    (1, Wire::Len(b)) => scope_name = text(b)?,
                    (2, Wire::Len(b)) => {
                        text(b)?;
                    }
                    (3, Wire::Len(b)) => {
                        key_value(b, 0)?;
                    }
                    (4, Wire::Varint(_)) => {}
                    _ => return Err(Unsure),
                }
            }
            total += bodies.len();
            if total > limits.spans {
                return Err(Unsure);
            }
            for b in bodies {
                spans.push((scope_name, span(b)?));
            }
        }
        out.push(Resource { attributes, spans });
    }
    Ok(out)
}

fn to_python<'py>(py: Python<'py>, value: &Any) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Any::Unset => py.None().into_bound(py),
        Any::Str(s) => PyString::new(py, s).into_any(),
        Any::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Any::Int(i) => i.into_pyobject(py)?.into_any(),
        Any::Double(d) => PyFloat::new(py, *d).into_any(),
        Any::Bytes(b) => PyBytes::new(py, b).into_any(),
        Any::Array(items) => PyTuple::new(
            py,
            items.iter().map(|v| to_python(py, v)).collect::<PyResult<Vec<_>>>()?,
        )?
        .into_any(),
        Any::Map(entries) => {
            let dict = PyDict::new(py);
            for (k, v) in entries {
                dict.set_item(k, to_python(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// Reads OTLP protobuf requests into span rows; holds the attribute names the exporter reads.
#[pyclass(frozen)]
struct SpanReader {
    wanted: HashMap<String, Py<PyString>>,
}

#[pymethods]
impl SpanReader {
    #[new]
    fn new(wanted: &Bound<'_, PyAny>) -> PyResult<Self> {
        let mut names = HashMap::new();
        for name in wanted.try_iter()? {
            let name = name?.downcast_into::<PyString>()?;
            names.insert(name.to_str()?.to_owned(), name.unbind());
        }
        Ok(SpanReader { wanted: names })
    }

    /// One tuple per span, in SpanView's field order: (trace_id, span_id, parent_span_id, name,
    /// kind, start_ns, end_ns, status_code, attributes, service, resource, scope); or None.
    fn read<'py>(
        &self,
        py: Python<'py>,
        body: &[u8],
        max_resource_spans: usize,
        max_spans: usize,
    ) -> PyResult<Option<Bound<'py, PyList>>> {
        let limits = Limits {
            resource_spans: max_resource_spans,
            spans: max_spans,
        };
        let Ok(resources) = py.allow_threads(|| request(body, &limits)) else {
            return Ok(None);
        };
        let out = PyList::empty(py);
        for resource in &resources {
            let attributes = PyDict::new(py);
            let mut service = None;
            for (key, value) in &resource.attributes {
                let value = to_python(py, value)?;
                attributes.set_item(key, &value)?;
                if *key == "service.name" {
                    service = Some(value); // the last one, as the dict keeps it
                }
            }
            let service = match service {
                Some(s)
                    if s.downcast::<PyString>()
                        .is_ok_and(|s| s.to_str().is_ok_and(|t| !t.is_empty())) =>
                {
                    s
                }
                _ => PyString::new(py, "unknown_service").into_any(),
            };
            for (scope, s) in &resource.spans {
                let span_attributes = PyDict::new(py);
                for (key, value) in &s.attributes {
                    if let Some(name) = self.wanted.get(*key) {
                        span_attributes.set_item(name.bind(py), to_python(py, value)?)?;
                    }
                }
                let row: [Bound<'py, PyAny>; 12] = [
                    PyBytes::new(py, s.trace_id).into_any(),
                    PyBytes::new(py, s.span_id).into_any(),
                    PyBytes::new(py, s.parent_span_id).into_any(),
                    PyString::new(py, s.name).into_any(),
                    s.kind.into_pyobject(py)?.into_any(),
                    s.start_ns.into_pyobject(py)?.into_any(),
                    s.end_ns.into_pyobject(py)?.into_any(),
                    s.status_code.into_pyobject(py)?.into_any(),
                    span_attributes.into_any(),
                    service.clone(),
                    attributes.clone().into_any(),
                    PyString::new(py, scope).into_any(),
                ];
                out.append(PyTuple::new(py, row)?)?;
            }
        }
        Ok(Some(out))
    }
}

/// The fields this reader knows, by message: a test holds them to the installed protobuf schema.
#[pyfunction]
fn schema() -> HashMap<&'static str, Vec<u32>> {
    HashMap::from([
        (
            "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest",
            vec![1],
        ),
        ("opentelemetry.proto.trace.v1.ResourceSpans", vec![1, 2, 3]),
        ("opentelemetry.proto.resource.v1.Resource", vec![1, 2, 3]),
        ("opentelemetry.proto.common.v1.EntityRef", vec![1, 2, 3, 4]),
        ("opentelemetry.proto.trace.v1.ScopeSpans", vec![1, 2, 3]),
        ("opentelemetry.proto.common.v1.InstrumentationScope", vec![1, 2, 3, 4]),
        ("opentelemetry.proto.trace.v1.Span", (1..=16).collect()),
        ("opentelemetry.proto.trace.v1.Span.Event", vec![1, 2, 3, 4]),
        ("opentelemetry.proto.trace.v1.Span.Link", vec![1, 2, 3, 4, 5, 6]),
        ("opentelemetry.proto.trace.v1.Status", vec![2, 3]),
        ("opentelemetry.proto.common.v1.KeyValue", vec![1, 2]),
        ("opentelemetry.proto.common.v1.AnyValue", vec![1, 2, 3, 4, 5, 6, 7]),
        ("opentelemetry.proto.common.v1.ArrayValue", vec![1]),
        ("opentelemetry.proto.common.v1.KeyValueList", vec![1]),
    ])
}

#[pymodule]
fn aispend_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SpanReader>()?;
    m.add_function(wrap_pyfunction!(schema, m)?)?;
    Ok(())
}
