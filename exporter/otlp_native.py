"""The compiled OTLP span reader, when it is installed (the optional package ``aispend-native``,
built from ``native/``; ``pip install ./native`` needs a Rust toolchain).

It turns a protobuf export request into the same ``SpanView``s as
``otlp.spans(otlp.decode_protobuf(body)[0])`` in about a quarter of the time, or answers None: for
anything malformed, over the limits or unusual it gives up, and the Python reader, which stays the
reference, takes the payload and decides what it is. ``native_reader: false`` turns it off.
"""

from __future__ import annotations

import logging

from aispend import semconv as sc
from aispend.exporter.otlp import Limits, SpanView

logger = logging.getLogger("aispend.exporter")

try:
    import aispend_native
except ImportError:  # not built here: the Python reader does it all
    aispend_native = None

_reader = aispend_native.SpanReader(sc.READ_BY_EXPORTER) if aispend_native is not None else None


def available() -> bool:
    return _reader is not None


def read(body: bytes, limits: Limits) -> list[SpanView] | None:
    """The request's spans, or None: then ``otlp.decode_protobuf`` reads it."""
    if _reader is None:
        return None
    try:
        rows = _reader.read(bytes(body), limits.resource_spans, limits.spans)
    except BaseException as exc:
        # a bug in it (a Rust panic arrives as PanicException, a BaseException) costs its speed, not the payload
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        _failed(exc)
        return None
    return None if rows is None else [SpanView(*row) for row in rows]


_logged: set[str] = set()


def _failed(exc: BaseException) -> None:
    what = type(exc).__name__
    if what not in _logged:  # once per kind: the Python reader goes on reading every payload
        _logged.add(what)
        logger.error("the compiled span reader failed (%s: %s); the Python reader read the payload", what, exc)
