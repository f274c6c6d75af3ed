"""OTLP payload -> the billable calls in it, with what was rejected and why. Pure: no state.

This is the first half of an export (decode, read every span, normalise; and in decode workers also
clean labels and set prices that need no state), the half that needs nothing but the payload, so it
can run in another process (``decode_pool``); the pipeline does the rest (dedupe, free-tier prices,
record) under its lock.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from aispend.exporter import otlp, otlp_native
from aispend.exporter.costing import clean_labels, price_if_stateless
from aispend.exporter.normalise import Call, Rejected, normalise
from aispend.keys import fingerprint, looks_secret
from aispend.pricing import PriceEngine

logger = logging.getLogger("aispend.exporter")
MAX_MESSAGES = 5  # rejection details returned to the sender in the partial-success reply
# Values that name things, where a raw key must never end up (a peer instrumentation or a
# misconfigured app can put one in any of them).
SECRET_CHECKED = ("key", "customer", "feature", "error_type", "service", "model", "response_model", "operation")


@dataclass(slots=True)
class Batch:
    spans: int = 0
    calls: list[Call] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)  # reason -> the first detail seen
    messages: list[str] = field(default_factory=list)
    prepared: bool = False  # labels cleaned and stateless prices set (``prepare``)
    clamped: dict[str, int] = field(default_factory=dict)  # label values cleaned, by reason


def prepare(batch: Batch, engine: PriceEngine, label_max_length: int) -> Batch:
    """Clean labels and price every call whose price needs no free-tier state (decode workers)."""
    for call in batch.calls:
        clean_labels(call, label_max_length, batch.clamped)
        price_if_stateless(engine, call)
    batch.prepared = True
    return batch


def read_with(config: Any, body: bytes, as_json: bool) -> Batch:
    """``read_payload`` with an ``ExporterConfig``'s settings."""
    limits = otlp.Limits(config.max_resource_spans_per_request, config.max_spans_per_request)
    return read_payload(body, as_json, config.max_tokens_per_call, config.key_aliases, limits, config.native_reader)


def read_payload(
    body: bytes,
    as_json: bool,
    max_tokens: int,
    key_aliases: Mapping[str, str],
    limits: otlp.Limits = otlp.DEFAULT_LIMITS,
    native: bool = True,
) -> Batch:
    """Raises ``otlp.MalformedPayload`` when the payload as a whole cannot be decoded. With
    ``native``, the compiled reader reads protobuf when it is installed and sure (``otlp_native``)."""
    views = otlp_native.read(body, limits) if native and not as_json else None
    if views is not None:
        return read_views(views, max_tokens, key_aliases)
    request, undecodable = otlp.decode_json(body, limits) if as_json else otlp.decode_protobuf(body, limits)
    batch = read_request(request, max_tokens, key_aliases)
    for bad in undecodable:
        batch.spans += bad.count
        _reject(batch, Rejected(bad.reason, bad.detail), bad.count)
    return batch


def _reject(batch: Batch, found: Rejected, count: int = 1) -> None:
    batch.rejected[found.reason] = batch.rejected.get(found.reason, 0) + count
    batch.examples.setdefault(found.reason, found.detail)
    if len(batch.messages) < MAX_MESSAGES:
        batch.messages.append(f"{found.reason}: {found.detail}")


def read_request(request: ExportTraceServiceRequest, max_tokens: int, key_aliases: Mapping[str, str]) -> Batch:
    return read_views(otlp.spans(request), max_tokens, key_aliases)


def read_views(views: Iterable[otlp.SpanView], max_tokens: int, key_aliases: Mapping[str, str]) -> Batch:
    batch = Batch()
    calls = batch.calls
    for span in views:
        batch.spans += 1
        try:
            found = normalise(span, max_tokens, key_aliases)
        except Exception as exc:  # a bug must cost one span, not the batch
            logger.exception("normalising span %r failed", span.name[:60])
            found = Rejected("internal_error", f"{type(exc).__name__} while reading span {span.name[:60]!r}")
        if isinstance(found, Rejected):
            _reject(batch, found)
        elif found is not None:
            _fingerprint_secrets(found, key_aliases, batch.clamped)
            calls.append(found)
    return batch


_secret_fields = attrgetter(*SECRET_CHECKED)
# a value keys.looks_secret could take for a secret: 16+ characters of the kinds keys are made of
_CANDIDATE = re.compile(r"(?:^|\x1f)[A-Za-z0-9_\-+/=.]{16,}(?=\x1f|$)")


@functools.lru_cache(maxsize=8192)  # the same models, features and customers come again and again
def _hidden(value: str) -> str | None:
    return fingerprint(value) if looks_secret(value) else None


@functools.lru_cache(maxsize=4096)  # and so do whole label sets
def _any_secret(joined: str) -> bool:
    return _CANDIDATE.search(joined) is not None and any(map(_hidden, joined.split("\x1f")))


def _fingerprint_secrets(call: Call, key_aliases: Mapping[str, str], clamped: dict[str, int]) -> None:
    """Secret-looking values become fingerprints, as the instrumentation makes them (a key's alias
    applies to it), counted in ``clamped``."""
    values = _secret_fields(call)
    if not _any_secret("\x1f".join(values)):
        return  # the common case
    for name, value in zip(SECRET_CHECKED, values, strict=True):
        hidden = _hidden(value)
        if hidden is not None:
            setattr(call, name, key_aliases.get(hidden, hidden) if name == "key" else hidden)
            clamped["secret_fingerprinted"] = clamped.get("secret_fingerprinted", 0) + 1


# Crossing a process boundary, calls travel as plain tuples: pickling the dataclass costs 4x more.
_CALL_FIELDS = tuple(f.name for f in fields(Call))
_call_values = attrgetter(*_CALL_FIELDS)


def packed(batch: Batch) -> tuple[Any, ...]:
    calls = [_call_values(c) for c in batch.calls]
    return batch.spans, calls, batch.rejected, batch.examples, batch.messages, batch.prepared, batch.clamped


def unpacked(data: tuple[Any, ...]) -> Batch:
    spans, calls, rejected, examples, messages, prepared, clamped = data
    return Batch(spans, [Call(*values) for values in calls], rejected, examples, messages, prepared, clamped)
