"""One provider call's span, from the request leaving the process to the last byte of its answer.

The HTTP hooks hand us client-independent ``HttpRequest``/``HttpResponse`` values and raw body
chunks; adapters turn them into attributes; ``Call.finish`` records the span exactly once,
whichever of end-of-stream, close, garbage collection or an error comes first.

Two halves. While the call is in flight: route the request, strip the ``x-aispend-*`` headers,
note the time, the OTel context and the ``attribute()`` scope, and keep references to the body
bytes (each streamed chunk as it passes). When it ends, as one job: parse the request, the
response and the stream, resolve attribution, and make the span with the noted start time and
parent. Made in one go it is the same span the SDK would export had it been started when the
request left; aispend never makes its span current, so nothing can tell the difference while
the call is in flight. The job runs on the calling thread (``worker.inline``, the default) or
on the recording thread (``worker.background``, ``AISPEND_RECORD_INLINE=false``). With the
budget guard on, the request is read before the call is sent, since the guard needs the model
and the attribution.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from aispend import semconv as sc
from aispend.errors import BudgetExceededError
from aispend.instrumentation import attribution
from aispend.instrumentation.adapters import Adapter, CallStart, Observed, Router
from aispend.instrumentation.adapters.base import StreamObserver, set_usage
from aispend.instrumentation.config import InstrumentationConfig
from aispend.instrumentation.decoding import IDENTITY, Decoder, decoder_for
from aispend.instrumentation.exchange import (
    MAX_BODY,
    READ_HEADERS,
    HeaderNames,
    HttpRequest,
    HttpResponse,
    body_headers,
)
from aispend.instrumentation.framing import StreamParser, framed, parser_for
from aispend.instrumentation.safety import log_once
from aispend.instrumentation.sdk_errors import for_sdk
from aispend.instrumentation.sse import SSEParser
from aispend.instrumentation.tokens import estimate
from aispend.instrumentation.worker import Worker, background
from aispend.keys import alias_for

try:  # what is_instrumentation_enabled() looks up, read here from the context already at hand
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY as _SUPPRESS
except ImportError:  # pragma: no cover - a future API without the private name
    _SUPPRESS = "suppress_instrumentation"
_SUPPRESS_PLAIN = "suppress_instrumentation"

R = TypeVar("R")
BudgetCheck = Callable[[str, str | None, attribution.Attribution, str], None]
_NAMED_BY_PROVIDER = {"image", "search", "image_search"}
BATCH_BYTES = 64 * 1024  # streamed bytes held (by reference) before the worker is handed them


class Recorder:
    """Starts a ``Call`` for requests an adapter recognises; everything else passes untouched."""

    def __init__(
        self,
        tracer: Tracer,
        config: InstrumentationConfig,
        router: Router | None = None,
        budget_check: BudgetCheck | None = None,
        jobs: Worker | None = None,
    ) -> None:
        self.tracer = tracer
        self.config = config
        self.router = router or Router(config.provider_urls, config.provider_names)
        self.budget_check = budget_check
        self.jobs = jobs or background
        # key -> (alias, attribution when nothing else names anyone), so each key is fingerprinted once
        self._aliases: dict[str | None, tuple[str | None, attribution.Attribution]] = {}
        self.attribution_headers = config.attribution_headers
        self.header_names = HeaderNames.of(READ_HEADERS | {header for header, _ in config.attribution_headers})

    def begin(
        self,
        head: HttpRequest,
        complete: Callable[[], HttpRequest],
        strip_header: Callable[[str], None],
        user_agent: Callable[[], str | None] | None = None,
    ) -> Call | None:
        """A Call for this request, or None. Raises only ``BudgetExceededError``, on purpose.

        ``head`` carries method, host, port and path only, so traffic that is not an AI call
        costs one dict lookup (and, to a host aispend does not know, a look at its User-Agent:
        the OpenAI and Anthropic SDKs name themselves there); ``complete()`` adds headers and
        body once an adapter wants it.
        """
        try:
            context = otel_context.get_current()
            if context.get(_SUPPRESS) or context.get(_SUPPRESS_PLAIN):  # is_instrumentation_enabled(), one lookup
                return None
            adapter = self.router.route(head)
            if adapter is None:
                if user_agent is None:
                    return None
                adapter = self.router.route_sdk(head, user_agent())
                if adapter is None:
                    return None
            request = complete()
            headers = _attribution_headers(request, strip_header, self.attribution_headers)
            call = Call(self, adapter, request, headers, context)
        except Exception as exc:
            log_once("reading the request", exc)
            return None
        if self.budget_check is not None:
            try:
                ready = call.prepare()
            except Exception as exc:
                log_once("reading the request", exc)
                return None
            if not ready:
                return None
            self._check_budget(call)
        return call

    def who(self, call: Call) -> attribution.Attribution:
        """Who caused the call, from its headers, scope, baggage and key (see ``attribution``)."""
        secret = call.adapter.api_key(call.request) or None
        known = self._aliases.get(secret)
        if known is None:
            if len(self._aliases) > 256:
                self._aliases.clear()
            detected = alias_for(secret, self.config.key_aliases) if secret else None
            # what resolve() gives when nothing but the key says who: most calls, so kept per key
            alone = attribution.resolve(attribution.EMPTY, detected, self.config.defaults, attribution.EMPTY, Context())
            known = self._aliases[secret] = (detected, alone)
        detected, alone = known
        if not call.headers and call.scoped is attribution.EMPTY and not baggage.get_all(call.context):
            return alone
        from_request = attribution.Attribution(**call.headers) if call.headers else attribution.EMPTY
        return attribution.resolve(from_request, detected, self.config.defaults, call.scoped, call.context)

    def _check_budget(self, call: Call) -> None:
        assert self.budget_check is not None and call.start is not None and call.who is not None
        try:
            self.budget_check(call.adapter.provider, call.start.model, call.who, call.start.operation)
        except BudgetExceededError as exc:
            call.blocked()
            raise for_sdk(exc, call.request.headers) from None
        except Exception as exc:
            log_once("checking budgets", exc)


def _attribution_headers(
    request: HttpRequest, strip_header: Callable[[str], None], wanted: tuple[tuple[str, str], ...]
) -> dict[str, str]:
    """Attribution header values (``x-aispend-*``, ``x-customer-id``, ... : ``wanted``, first found
    wins per field), each removed from the request before it is sent."""
    found: dict[str, str] = {}
    if not request.headers:
        return found
    for header, field in wanted:
        value = request.headers.get(header)
        if value is not None:
            found.setdefault(field, value)
            strip_header(header)
    return found


def _span_name(adapter: Adapter, start: CallStart) -> str:
    if start.kind in _NAMED_BY_PROVIDER or not start.model:
        return f"{start.operation} {adapter.provider}"
    return f"{start.operation} {start.model}"


_STARTS_KEPT = 256
# (adapter, operation, kind, model, stream, host, port, who) -> the attributes they make: most
# calls of a process repeat a few of them, and building the dict is half the cost of copying it
_starts: dict[tuple[Any, ...], tuple[Adapter, dict[str, Any]]] = {}


def _start_attributes(
    adapter: Adapter, start: CallStart, request: HttpRequest, who: attribution.Attribution
) -> dict[str, Any]:
    """The span's attributes known from the request (a new dict: the caller adds to it)."""
    key = (id(adapter), start.operation, start.kind, start.model, start.stream, request.host, request.port, who)
    known = _starts.get(key)
    if known is not None and known[0] is adapter:  # the adapter itself: an id is reused once it is gone
        attrs = known[1].copy()
    else:
        if len(_starts) >= _STARTS_KEPT:
            _starts.clear()
        made = _build_start_attributes(adapter, start, request, who)
        _starts[key] = (adapter, made)
        attrs = made.copy()
    if start.attributes:
        attrs.update(start.attributes)
    return attrs


def _build_start_attributes(
    adapter: Adapter, start: CallStart, request: HttpRequest, who: attribution.Attribution
) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: start.operation,
        sc.GEN_AI_PROVIDER_NAME: adapter.provider,
        sc.AISPEND_SERVICE_KIND: start.kind,
        sc.SERVER_ADDRESS: request.host,
    }
    if request.port is not None:
        attrs[sc.SERVER_PORT] = request.port
    if start.model:
        attrs[sc.GEN_AI_REQUEST_MODEL] = start.model
    if start.stream:
        attrs[sc.GEN_AI_REQUEST_STREAM] = True
    for field, name in sc.ATTRIBUTION_ATTRIBUTES.items():
        value = getattr(who, field)
        if value:
            attrs[name] = value
    return attrs


class Call:
    """One call in flight. Its public methods run on the calling thread and only queue work;
    ``finish`` is idempotent and thread-safe and queues the span's recording exactly once."""

    __slots__ = (
        "_done",
        "_first_chunk",
        "_lock",
        "_start_ns",
        "_started",
        "adapter",
        "context",
        "headers",
        "observed",
        "recorder",
        "request",
        "scoped",
        "start",
        "who",
    )

    def __init__(
        self,
        recorder: Recorder,
        adapter: Adapter,
        request: HttpRequest,
        headers: dict[str, str],
        context: Context | None = None,
    ) -> None:
        self.recorder = recorder
        self.adapter = adapter
        self.request = request
        self.headers = headers
        # the parent, as it was when the request left
        self.context: Context = otel_context.get_current() if context is None else context
        self.scoped = attribution.current()
        self.start: CallStart | None = None  # filled in by prepare(), on the worker
        self.who: attribution.Attribution | None = None
        self.observed: Observed | None = None
        self._start_ns = time.time_ns()
        self._started = time.monotonic()
        self._first_chunk: float | None = None
        self._done = False
        self._lock = threading.Lock()

    # -- calling thread -----------------------------------------------------------------------
    def run(self, send: Callable[[], R]) -> R:
        """Make the real request; an exception it raises is recorded, then re-raised unchanged."""
        try:
            return send()
        except BaseException as exc:
            self.fail(exc)
            raise

    async def run_async(self, send: Callable[[], Awaitable[R]]) -> R:
        try:
            return await send()
        except BaseException as exc:
            self.fail(exc)
            raise

    def fail(self, exc: BaseException) -> None:
        """The request raised (timeout, connection error, cancellation): the user's exception
        propagates unchanged; the span records its type."""
        self.finish(error_type=type(exc).__qualname__)

    def respond(self, status: int, headers: Mapping[str, str], body: bytes | None) -> None:
        """A fully read response (non-streaming)."""
        self.finish(status=status, read=(self._read_response, (status, headers, body)))

    def tap(self, status: int, headers: Mapping[str, str], already_decoded: bool = False) -> Tap | None:
        """An observer for a body the user will stream; None if there is nothing to observe."""
        if self._done:
            return None
        return Tap(self, status, headers, already_decoded)

    def finish(
        self,
        status: int | None = None,
        error_type: str | None = None,
        read: tuple[Callable[..., None], tuple[Any, ...]] | None = None,
    ) -> None:
        """End the call (once); ``read`` is the last reading of the response to do before the
        span is made, queued with it as one job."""
        end_ns = time.time_ns()
        with self._lock:
            if self._done:
                return
            self._done = True
        self.recorder.jobs.submit(self._record, status, error_type, end_ns, read)

    def blocked(self) -> None:
        """The call that was not sent: an error span with no usage, so it is counted at $0."""
        with self._lock:
            self._done = True
        try:
            self._make_span({sc.ERROR_TYPE: sc.ERROR_BUDGET_EXCEEDED}, sc.ERROR_BUDGET_EXCEEDED, time.time_ns())
        except Exception as exc:
            log_once("recording a blocked call", exc)

    # -- worker ---------------------------------------------------------------------------------
    def prepare(self) -> bool:
        """Read the request (once); False if the adapter says this is not a call it tracks."""
        if self.observed is None:
            self.observed = Observed(output_text=[] if self.recorder.config.capture_content else None)
            self.start = self.adapter.request_attributes(self.request)
            if self.start is not None:
                self.who = self.recorder.who(self)
        return self.start is not None

    def _read_response(self, status: int, headers: Mapping[str, str], body: bytes | None) -> None:
        try:
            if self.prepare():
                assert self.start is not None and self.observed is not None
                self.adapter.response_attributes(self.start, HttpResponse(status, headers, body), self.observed)
        except Exception as exc:
            log_once(f"{self.adapter.provider} response", exc)

    def _record(
        self,
        status: int | None,
        error_type: str | None,
        end_ns: int,
        read: tuple[Callable[..., None], tuple[Any, ...]] | None = None,
    ) -> None:
        if read is not None:
            try:
                read[0](*read[1])  # catches its own failures; this is the last line
            except Exception as exc:
                log_once(f"{self.adapter.provider} response", exc)
        try:
            if not self.prepare():
                return
        except Exception as exc:
            log_once("reading the request", exc)
            return
        attrs: dict[str, Any] = {}
        failure: str | None = None
        try:
            attrs = self._attributes(status, error_type)
            failure = attrs.get(sc.ERROR_TYPE)
        except Exception as exc:
            log_once("finishing the span", exc)
        try:
            self._make_span(attrs, failure, end_ns)
        except Exception as exc:
            log_once("recording the span", exc)

    def _make_span(self, attrs: dict[str, Any], failure: str | None, end_ns: int) -> None:
        """Only for a prepared call (``_record`` and the budget guard prepare it first)."""
        assert self.start is not None and self.who is not None
        all_attrs = _start_attributes(self.adapter, self.start, self.request, self.who)
        all_attrs.update(attrs)
        span = self.recorder.tracer.start_span(
            _span_name(self.adapter, self.start),
            context=self.context,
            kind=SpanKind.CLIENT,
            attributes=all_attrs,
            start_time=self._start_ns,
        )
        if failure is not None:
            span.set_status(Status(StatusCode.ERROR, failure))
        span.end(end_time=end_ns)

    def _attributes(self, status: int | None, error_type: str | None) -> dict[str, Any]:
        """What the response said, plus the outcome; ``error.type`` set if the call failed."""
        observed, start = self.observed, self.start
        assert observed is not None and start is not None
        attrs = observed.attributes  # finished: nothing else writes to it
        if status is not None:
            attrs[sc.HTTP_RESPONSE_STATUS_CODE] = status
        # An exception while an answer was being read (the app cancelled its task, a read timed
        # out, the SDK raised on an error event) is an error, but the provider had the request
        # and bills what it read and generated: estimated like an abandoned stream.
        interrupted = error_type is not None and status is not None and status < 400
        failed = (error_type is not None and not interrupted) or (status is not None and status >= 400)
        failure = error_type or observed.error_type  # the call's own error, else an error event or body
        if failed and failure is None:
            failure = str(status) if status else sc.ERROR_OTHER
        if failure is not None:
            attrs[sc.ERROR_TYPE] = failure
        if (
            start.kind in ("llm", "embedding")
            and not observed.usage_reported
            and not failed
            and (failure is None or interrupted or observed.output_chars or observed.input_known)
        ):
            # No final usage from the provider (stream without include_usage, truncated,
            # abandoned or interrupted stream, a host that omits it): estimate, and say so and
            # how. An error answer (a 200 whose body is an error object) is estimated only for
            # what it sent: output, or the counts a stream began with (Anthropic's message_start).
            model = attrs.get(sc.GEN_AI_RESPONSE_MODEL) or start.model
            input_tokens, output_tokens, estimator = estimate(
                model, start.prompt, observed.texts, observed.output_chars
            )
            if observed.input_known:  # the provider counted the prompt already (it bills all of it)
                input_tokens = None
            reported = attrs.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS)
            if isinstance(reported, int) and reported > output_tokens:
                output_tokens = reported  # a running total the provider sent is a floor
            set_usage(attrs, input_tokens, output_tokens)
            attrs[sc.AISPEND_USAGE_ESTIMATED] = True
            attrs[sc.AISPEND_USAGE_ESTIMATOR] = estimator
        if self._first_chunk is not None:
            attrs[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = self._first_chunk - self._started
        if self.recorder.config.capture_content:
            _capture(attrs, start, observed)
        return attrs


def _capture(attrs: dict[str, Any], start: CallStart, observed: Observed) -> None:
    if start.input_messages is not None:
        attrs[sc.GEN_AI_INPUT_MESSAGES] = json.dumps(start.input_messages, ensure_ascii=False, default=str)
    if observed.output_text:
        text = "".join(observed.output_text)
        message = [{"role": "assistant", "parts": [{"type": "text", "content": text}]}]
        attrs[sc.GEN_AI_OUTPUT_MESSAGES] = json.dumps(message, ensure_ascii=False)


class Tap:
    """Sees each streamed chunk on its way to the user. ``feed`` only keeps a reference to the
    chunk (bytes are immutable) and hands them to the worker in batches of up to ``BATCH_BYTES``;
    the decoder and SSE parser live on the worker."""

    __slots__ = (
        "_body",
        "_call",
        "_decoder",
        "_headers",
        "_jobs",
        "_observer",
        "_pending",
        "_sse",
        "_status",
        "held",
    )

    def __init__(self, call: Call, status: int, headers: Mapping[str, str], already_decoded: bool) -> None:
        self._call = call
        self._status = status
        self._headers = headers  # for a body read whole at the end (Bedrock's usage headers)
        self._jobs = call.recorder.jobs
        self._decoder: Decoder | None = None
        self._sse: SSEParser | StreamParser | None = None
        self._observer: StreamObserver | None = None
        self._body: bytearray | None = None
        self.held: list[bytes] = []  # chunks not yet handed to the worker (``feed``, ``hooks.streams._tapped``)
        self._pending = 0
        content_type, encoding = body_headers(headers)
        self._jobs.submit(self._open, content_type, None if already_decoded else encoding)

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self._call._first_chunk is None:
            self.first_chunk()
        self.held.append(chunk)
        self._pending += len(chunk)
        if self._pending > BATCH_BYTES:
            self.hand_over()

    def first_chunk(self) -> bool:
        """Note the first chunk's time (once); False, for the caller's flag."""
        call = self._call
        if call._first_chunk is None:
            call._first_chunk = time.monotonic()
        return False

    def hand_over(self) -> list[bytes]:
        """Give the chunks held so far to the worker; the new (empty) ``held`` list."""
        self._jobs.submit(self._feed, self.held)
        self.held, self._pending = [], 0
        return self.held

    def finish(self, error: BaseException | None = None) -> None:
        """End of stream, close, garbage collection or an error while reading."""
        call = self._call
        if call._done:
            return
        chunks, self.held = self.held, []
        error_type = type(error).__qualname__ if error is not None else None
        call.finish(status=self._status, error_type=error_type, read=(self._close, (chunks,)))

    # -- worker ---------------------------------------------------------------------------------
    def _open(self, content_type: str, encoding: str | None) -> None:
        call = self._call
        try:
            if not call.prepare():
                return
            assert call.start is not None and call.observed is not None
            self._decoder = decoder_for(encoding)
            sse = "text/event-stream" in content_type
            if self._decoder is not None and self._status < 400 and (sse or framed(content_type)):
                self._observer = call.adapter.stream_observer(call.start, call.observed)
                if self._observer is not None:  # SSE, or NDJSON / AWS event stream (see framing)
                    on_event = self._observer.on_event
                    batch = getattr(self._observer, "on_batch", None)  # observers that hold unnamed events
                    self._sse = SSEParser(on_event, batch) if sse else parser_for(content_type, on_event)
            if self._sse is None and self._decoder is not None:
                self._body = bytearray()
        except Exception as exc:
            log_once("observing a stream", exc)
            self._decoder = None

    def _feed(self, chunks: list[bytes]) -> None:
        if self._decoder is None or not chunks:
            return
        try:
            # one buffer for the batch (at most BATCH_BYTES and a chunk): one parser pass, not one a chunk
            if self._decoder is IDENTITY:
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            else:
                decode = self._decoder.decode
                data = decode(chunks[0]) if len(chunks) == 1 else b"".join([decode(chunk) for chunk in chunks])
            if self._sse is not None:
                self._sse.feed(data)
            elif self._body is not None:
                if len(self._body) + len(data) > MAX_BODY:
                    self._body = None  # too large to parse: pass through unobserved
                else:
                    self._body += data
        except Exception as exc:
            log_once(f"{self._call.adapter.provider} stream parsing", exc)
            self._decoder = None

    def _close(self, chunks: list[bytes]) -> None:
        self._feed(chunks)
        call = self._call
        try:
            if self._sse is not None and self._observer is not None:
                self._sse.close()
                self._observer.close()
            elif self._body is not None and call.start is not None and call.observed is not None:
                response = HttpResponse(self._status, self._headers, bytes(self._body))
                call.adapter.response_attributes(call.start, response, call.observed)
        except Exception as exc:
            log_once(f"{call.adapter.provider} stream parsing", exc)


def get_tracer(tracer_provider: trace.TracerProvider | None, version: str) -> Tracer:
    return trace.get_tracer(
        "aispend.instrumentation",
        version,
        tracer_provider=tracer_provider,
        schema_url="https://opentelemetry.io/schemas/1.37.0",
    )
