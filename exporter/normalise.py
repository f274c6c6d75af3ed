"""Any span -> one normalised billable call, "not a call" (None), or a rejection with a reason.

Pure: reads a ``SpanView`` and nothing else. It accepts aispend's own spans and those of
opentelemetry-instrumentation-openai-v2, OpenLLMetry and OpenLIT, with current and older GenAI
attribute names, reading each field through the fallback chains in ``aispend.semconv`` and
applying the corrections listed in shared/GENAI_SPANS.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aispend import providers
from aispend import semconv as sc
from aispend.exporter.otlp import SpanView
from aispend.keys import redacted

STATUS_ERROR = 2
MAX_CALL_COST = 100_000  # USD; a pre-computed span cost above this is treated as corrupt
MAX_TIMESTAMP_NS = 2**63 - 1  # the ledger's BIGINT (OTLP's fixed64 goes further)
_ZERO_TRACE, _ZERO_SPAN = bytes(16), bytes(8)

# Operations that wrap calls rather than being one (their usage, if any, is a sum of children).
NOT_BILLABLE = frozenset({"invoke_agent", "create_agent", "execute_tool", "invoke_workflow", "workflow", "task"})
_OPERATIONS = {
    "completion": "text_completion",
    "completions": "text_completion",
    "embedding": "embeddings",
    "image": "image_generation",
    "images": "image_generation",
    "rerank": "rerank",
}
_KIND_BY_OPERATION = {"embeddings": "embedding", "image_generation": "image", "search": "search"}
_RATE_LIMITED = frozenset(
    {"429", "rate_limit_exceeded", "rate_limit_error", "ratelimiterror", "resource_exhausted", "too_many_requests"}
)


@dataclass(slots=True)
class Call:
    """One billable provider call, as the exporter records it."""

    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    start_ns: int
    duration_s: float
    service: str
    provider: str
    model: str  # the label: the model the app asked for (else the one that answered)
    price_model: str  # the model to price: the dated snapshot that answered (else requested)
    response_model: str
    operation: str
    kind: str
    feature: str
    customer: str
    key: str
    status: str  # ok | error | rate_limited
    error_type: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    requests: int = 0  # billable request units (0 when the call failed)
    images: int = 0
    image_size: str | None = None
    image_quality: str | None = None
    estimated: bool = False
    response_id: str = ""
    span_cost: float | None = None  # a cost the span already carried (OpenLIT); fallback only
    usage_known: bool = True  # False: an LLM call whose span carried no token counts at all
    from_aispend: bool = False
    scope: str = ""  # the instrumentation scope (tells an SDK's own span from a peer's)
    # filled in by pricing
    cost: Any = None  # Decimal
    priced: bool = False
    free_units: int = 0


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str  # a short label value for aispend_spans_rejected_total{reason}
    detail: str


def _first(attrs: Mapping[str, Any], chain: tuple[str, ...]) -> Any:
    for name in chain:
        value = attrs.get(name)
        if value is not None and value != "":
            return value
    return None


def _text(value: Any) -> str:
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, tuple):
        value = value[0] if value else ""
    return value if isinstance(value, str) else str(value)


class _BadCount(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _count(attrs: Mapping[str, Any], chain: tuple[str, ...], limit: int) -> int | None:
    for name in chain:
        value = attrs.get(name)
        if value is None or value == "":
            continue
        if type(value) is int and 0 <= value <= limit:  # the common case, checked first
            return value
        return _checked_count(name, value, limit)
    return None


def _checked_count(name: str, value: Any, limit: int) -> int:
    if isinstance(value, bool):
        raise _BadCount("bad_token_count", f"{name} is a boolean")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise _BadCount("bad_token_count", f"{name} is not a number: {redacted(value)}") from None
    if not isinstance(value, int | float) or value != value:  # NaN
        raise _BadCount("bad_token_count", f"{name} is not a number")
    if isinstance(value, float) and not value.is_integer():
        raise _BadCount("bad_token_count", f"{name} is not a whole number: {value}")
    if value < 0:
        raise _BadCount("negative_tokens", f"{name} is negative: {int(value)}")
    if value > limit:
        raise _BadCount("absurd_token_count", f"{name} = {int(value)} exceeds max_tokens_per_call ({limit})")
    return int(value)


def _openlit_guess(attrs: Mapping[str, Any], sdk: object) -> bool:
    """OpenLIT fills a stream that reported no usage with ceil(len/2) guesses and says so only by
    leaving out the cache counts it sets whenever the provider reported usage."""
    return (
        sdk == "openlit"
        and attrs.get(sc.GEN_AI_REQUEST_STREAM) is True
        and _first(attrs, sc.INPUT_TOKENS_CHAIN) is not None
        and _first(attrs, sc.CACHE_READ_CHAIN) is None
    )


def is_genai(attrs: Mapping[str, Any]) -> bool:
    return (
        _first(attrs, sc.PROVIDER_CHAIN) is not None
        or _first(attrs, sc.OPERATION_CHAIN) is not None
        or attrs.get(sc.OPENINFERENCE_SPAN_KIND) == "LLM"
    )


def _status(span: SpanView, attrs: Mapping[str, Any]) -> tuple[str, str]:
    error_type = _text(attrs.get(sc.ERROR_TYPE))
    http_status = attrs.get(sc.HTTP_RESPONSE_STATUS_CODE)
    if http_status == 429 or error_type.lower() in _RATE_LIMITED:
        return "rate_limited", error_type or "429"
    if error_type or span.status_code == STATUS_ERROR or (isinstance(http_status, int) and http_status >= 400):
        return "error", error_type or (str(http_status) if isinstance(http_status, int) else "_OTHER")
    return "ok", ""


def _identity(span: SpanView) -> Rejected | None:
    """What the ledger keys a call by and stores as BIGINT: valid OTLP ids and timestamps."""
    name = span.name[:60]
    if len(span.trace_id) != 16 or span.trace_id == _ZERO_TRACE:
        detail = f"span {name!r}: a trace id is 16 bytes, not all zero (got {len(span.trace_id)} bytes)"
        return Rejected("bad_trace_id", detail)
    if len(span.span_id) != 8 or span.span_id == _ZERO_SPAN or len(span.parent_span_id) not in (0, 8):
        detail = f"span {name!r}: a span id is 8 bytes, not all zero, and a parent span id 8 bytes or none"
        return Rejected("bad_span_id", detail)
    if not 0 < span.start_ns <= MAX_TIMESTAMP_NS or span.end_ns > MAX_TIMESTAMP_NS:
        detail = f"span {name!r}: start {span.start_ns} / end {span.end_ns} ns must be above 0 and below 2^63"
        return Rejected("bad_timestamp", detail)
    return None


def normalise(
    span: SpanView, max_tokens: int = 50_000_000, key_aliases: Mapping[str, str] | None = None
) -> Call | Rejected | None:
    attrs = span.attributes
    if not is_genai(attrs):
        return None
    bad_identity = _identity(span)
    if bad_identity is not None:
        return bad_identity
    operation = _text(_first(attrs, sc.OPERATION_CHAIN)).lower()
    operation = _OPERATIONS.get(operation, operation)
    if operation in NOT_BILLABLE:
        return None
    provider = providers.canonical(_text(_first(attrs, sc.PROVIDER_CHAIN))) or providers.from_host(
        _text(attrs.get(sc.SERVER_ADDRESS) or attrs.get(sc.OPENAI_API_BASE) or attrs.get(sc.URL_FULL))
    )
    request_model = _text(_first(attrs, sc.REQUEST_MODEL_CHAIN))
    response_model = _text(_first(attrs, sc.RESPONSE_MODEL_CHAIN))
    kind = _text(attrs.get(sc.AISPEND_SERVICE_KIND)) or _KIND_BY_OPERATION.get(operation, "llm")
    try:
        input_tokens = _count(attrs, sc.INPUT_TOKENS_CHAIN, max_tokens)
        output_tokens = _count(attrs, sc.OUTPUT_TOKENS_CHAIN, max_tokens)
        cache_read = _count(attrs, sc.CACHE_READ_CHAIN, max_tokens) or 0
        cache_write = _count(attrs, sc.CACHE_WRITE_CHAIN, max_tokens) or 0
        reasoning = _count(attrs, sc.REASONING_CHAIN, max_tokens) or 0
        requests = _count(attrs, (sc.AISPEND_USAGE_REQUESTS,), max_tokens)
        images = _count(attrs, (sc.AISPEND_USAGE_IMAGES,), max_tokens) or 0
    except _BadCount as bad:
        return Rejected(bad.reason, str(bad))
    if not provider and not request_model and not response_model:
        return Rejected("no_provider_or_model", f"GenAI span {span.name!r} names neither provider nor model")
    status, error_type = _status(span, attrs)
    usage_known = input_tokens is not None or output_tokens is not None or kind not in ("llm", "embedding")
    input_tokens = input_tokens or 0
    output_tokens = output_tokens or 0
    # Input includes cache tokens by convention. OpenLIT's Anthropic spans (and any span whose
    # cache counts exceed its input) report input without them: add them back.
    sdk = attrs.get(sc.TELEMETRY_SDK_NAME) or span.resource.get(sc.TELEMETRY_SDK_NAME)
    if cache_read + cache_write > input_tokens or (sdk == "openlit" and provider == "anthropic"):
        input_tokens += cache_read + cache_write
    if reasoning > output_tokens:  # reported beside output rather than inside it
        output_tokens += reasoning
    span_cost = _first(attrs, sc.COST_CHAIN)
    if span_cost is not None:
        if isinstance(span_cost, bool) or not isinstance(span_cost, int | float):
            return Rejected("bad_cost", f"{sc.GEN_AI_USAGE_COST} is not a number")
        if not 0 <= span_cost <= MAX_CALL_COST:  # also false for NaN
            return Rejected("bad_cost", f"span cost {span_cost!r} is negative, not finite or over ${MAX_CALL_COST:,}")
    key = _text(attrs.get(sc.AISPEND_KEY))
    if key and key_aliases:
        key = key_aliases.get(key, key)
    return Call(
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_span_id=span.parent_span_id,
        start_ns=span.start_ns,
        duration_s=max(span.end_ns - span.start_ns, 0) / 1e9,
        service=span.service,
        provider=provider,
        model=request_model or response_model,
        price_model=response_model or request_model,
        response_model=response_model,
        operation=operation or ("search" if kind in ("search", "image_search") else "chat"),
        kind=kind,
        feature=_text(_first(attrs, sc.FEATURE_CHAIN)),
        customer=_text(_first(attrs, sc.CUSTOMER_CHAIN)),
        key=key,
        status=status,
        error_type=error_type,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
        requests=(1 if requests is None else requests) if status == "ok" else 0,
        images=images if status == "ok" else 0,
        image_size=_text(attrs.get(sc.AISPEND_IMAGE_SIZE)) or None,
        image_quality=_text(attrs.get(sc.AISPEND_IMAGE_QUALITY)) or None,
        estimated=attrs.get(sc.AISPEND_USAGE_ESTIMATED) is True or _openlit_guess(attrs, sdk),
        response_id=_text(attrs.get(sc.GEN_AI_RESPONSE_ID)),
        span_cost=float(span_cost) if span_cost is not None else None,
        usage_known=usage_known or status != "ok",
        from_aispend=sc.AISPEND_SERVICE_KIND in attrs,
        scope=span.scope,
    )
