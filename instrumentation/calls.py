"""One provider call's span, from the request leaving the process to the last byte of its answer.

The HTTP hooks hand us client-independent ``HttpRequest``/``HttpResponse`` values and raw body
chunks; adapters turn them into attributes; ``Call.finish`` ends the span exactly once, whichever
of end-of-stream, close, garbage collection or an error comes first.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from aispend import semconv as sc
from aispend.errors import BudgetExceededError
from aispend.instrumentation import attribution
from aispend.instrumentation.adapters import Adapter, CallStart, Observed, Router
from aispend.instrumentation.adapters.base import estimate_tokens, set_usage, text_chars
from aispend.instrumentation.config import InstrumentationConfig
from aispend.instrumentation.decoding import Decoder, decoder_for
from aispend.instrumentation.exchange import MAX_BODY, HttpRequest, HttpResponse
from aispend.instrumentation.safety import log_once
from aispend.instrumentation.sdk_errors import for_sdk
from aispend.instrumentation.sse import SSEParser
from aispend.keys import alias_for

R = TypeVar("R")
BudgetCheck = Callable[[str, str | None, attribution.Attribution, str], None]
_NAMED_BY_PROVIDER = {"image", "search", "image_search"}


class Recorder:
    """Starts a ``Call`` for requests an adapter recognises; everything else passes untouched."""

    def __init__(
        self,
        tracer: Tracer,
        config: InstrumentationConfig,
        router: Router | None = None,
        budget_check: BudgetCheck | None = None,
    ) -> None:
        self.tracer = tracer
        self.config = config
        self.router = router or Router(config.provider_urls)
        self.budget_check = budget_check
        self._aliases: dict[str, str] = {}  # key -> alias, so each key is fingerprinted once

    def begin(
        self, head: HttpRequest, complete: Callable[[], HttpRequest], strip_header: Callable[[str], None]
    ) -> Call | None:
        """A Call for this request, or None. Raises only ``BudgetExceededError``, on purpose.

        ``head`` carries method, host, port and path only, so traffic that is not an AI call
        costs one dict lookup; ``complete()`` adds headers and body once an adapter wants it.
        """
        try:
            if not is_instrumentation_enabled():
                return None
            adapter = self.router.route(head)
            if adapter is None:
                return None
            request = complete()
            start = adapter.request_attributes(request)
            if start is None:
                return None
            who = self._attribution(adapter, request, strip_header)
        except Exception as exc:
            log_once("reading the request", exc)
            return None
        if self.budget_check is not None:
            self._check_budget(adapter, start, request, who)
        try:
            return self._start(adapter, start, request, who)
        except Exception as exc:
            log_once("starting the span", exc)
            return None

    def _attribution(
        self, adapter: Adapter, request: HttpRequest, strip_header: Callable[[str], None]
    ) -> attribution.Attribution:
        from_headers: dict[str, str] = {}
        for field, header in sc.ATTRIBUTION_HEADERS.items():
            value = request.headers.get(header)
            if value is not None:
                from_headers[field] = value
                strip_header(header)
        secret = adapter.api_key(request)
        detected = None
        if secret:
            detected = self._aliases.get(secret)
            if detected is None:
                if len(self._aliases) > 256:
                    self._aliases.clear()
                detected = self._aliases[secret] = alias_for(secret, self.config.key_aliases)
        from_request = attribution.Attribution(**from_headers) if from_headers else attribution.EMPTY
        return attribution.resolve(from_request, detected, self.config.defaults)

    def _check_budget(
        self, adapter: Adapter, start: CallStart, request: HttpRequest, who: attribution.Attribution
    ) -> None:
        assert self.budget_check is not None
        try:
            self.budget_check(adapter.provider, start.model, who, start.operation)
        except BudgetExceededError as exc:
            self._record_blocked(adapter, start, request, who)
            raise for_sdk(exc, request.headers) from None
        except Exception as exc:
            log_once("checking budgets", exc)

    def _record_blocked(
        self, adapter: Adapter, start: CallStart, request: HttpRequest, who: attribution.Attribution
    ) -> None:
        """The call that was not sent: an error span with no usage, so it is counted at $0."""
        try:
            attrs = _start_attributes(adapter, start, request, who)
            attrs[sc.ERROR_TYPE] = sc.ERROR_BUDGET_EXCEEDED
            span = self.tracer.start_span(_span_name(adapter, start), kind=SpanKind.CLIENT, attributes=attrs)
            span.set_status(Status(StatusCode.ERROR, sc.ERROR_BUDGET_EXCEEDED))
            span.end()
        except Exception as inner:
            log_once("recording a blocked call", inner)

    def _start(self, adapter: Adapter, start: CallStart, request: HttpRequest, who: attribution.Attribution) -> Call:
        span = self.tracer.start_span(
            _span_name(adapter, start),
            kind=SpanKind.CLIENT,
            attributes=_start_attributes(adapter, start, request, who),
        )
        return Call(self, adapter, start, span)


def _span_name(adapter: Adapter, start: CallStart) -> str:
    if start.kind in _NAMED_BY_PROVIDER or not start.model:
        return f"{start.operation} {adapter.provider}"
    return f"{start.operation} {start.model}"


def _start_attributes(
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
    attrs.update(start.attributes)
    return attrs


class Call:
    """The span of one call in flight; ``finish`` is idempotent and thread-safe."""

    __slots__ = ("_done", "_first_chunk", "_lock", "_started", "adapter", "observed", "recorder", "span", "start")

    def __init__(self, recorder: Recorder, adapter: Adapter, start: CallStart, span: Span) -> None:
        self.recorder = recorder
        self.adapter = adapter
        self.start = start
        self.span = span
        self.observed = Observed(output_text=[] if recorder.config.capture_content else None)
        self._started = time.monotonic()
        self._first_chunk: float | None = None
        self._done = False
        self._lock = threading.Lock()

    # -- outcomes ---------------------------------------------------------------------------
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
        if self._done:
            return
        try:
            self.observed.attributes[sc.HTTP_RESPONSE_STATUS_CODE] = status
            if self.span.is_recording():
                self.adapter.response_attributes(self.start, HttpResponse(status, headers, body), self.observed)
        except Exception as exc:
            log_once(f"{self.adapter.provider} response", exc)
        self.finish(status=status)

    def tap(self, status: int, headers: Mapping[str, str], already_decoded: bool = False) -> Tap | None:
        """An observer for a body the user will stream; None if there is nothing to observe."""
        if self._done:
            return None
        try:
            self.observed.attributes[sc.HTTP_RESPONSE_STATUS_CODE] = status
            if not self.span.is_recording():
                self.finish(status=status)
                return None
            encoding = None if already_decoded else headers.get("content-encoding")
            return Tap(self, status, headers, decoder_for(encoding))
        except Exception as exc:
            log_once("observing a stream", exc)
            self.finish(status=status)
            return None

    def first_chunk(self) -> None:
        if self._first_chunk is None:
            self._first_chunk = time.monotonic()

    def finish(self, status: int | None = None, error_type: str | None = None) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        try:
            self._finish_attributes(status, error_type)
        except Exception as exc:
            log_once("finishing the span", exc)
        finally:
            try:
                self.span.end()
            except Exception as exc:
                log_once("ending the span", exc)

    def _finish_attributes(self, status: int | None, error_type: str | None) -> None:
        span, observed, start = self.span, self.observed, self.start
        if not span.is_recording():
            return
        attrs = observed.attributes  # finished: nothing else writes to it
        failed = error_type is not None or (status is not None and status >= 400)
        if failed:
            kind = error_type or observed.error_type or (str(status) if status else sc.ERROR_OTHER)
            attrs[sc.ERROR_TYPE] = kind
            span.set_status(Status(StatusCode.ERROR, kind))
        elif observed.error_type is not None:  # an error event inside a 200 stream
            attrs[sc.ERROR_TYPE] = observed.error_type
            span.set_status(Status(StatusCode.ERROR, observed.error_type))
        if start.kind in ("llm", "embedding") and not observed.usage_reported and not failed:
            # No usage from the provider (stream without include_usage, truncated or abandoned
            # stream, a host that omits it): estimate, and say so.
            prompt_chars = sum(text_chars(part) for part in start.prompt)
            set_usage(attrs, estimate_tokens(prompt_chars), estimate_tokens(observed.output_chars))
            attrs[sc.AISPEND_USAGE_ESTIMATED] = True
        if self._first_chunk is not None:
            attrs[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = self._first_chunk - self._started
        if self.recorder.config.capture_content:
            _capture(attrs, start, observed)
        span.set_attributes(attrs)


def _capture(attrs: dict[str, Any], start: CallStart, observed: Observed) -> None:
    if start.input_messages is not None:
        attrs[sc.GEN_AI_INPUT_MESSAGES] = json.dumps(start.input_messages, ensure_ascii=False, default=str)
    if observed.output_text:
        text = "".join(observed.output_text)
        message = [{"role": "assistant", "parts": [{"type": "text", "content": text}]}]
        attrs[sc.GEN_AI_OUTPUT_MESSAGES] = json.dumps(message, ensure_ascii=False)


class Tap:
    """Sees a copy of each streamed chunk on its way to the user; holds parser state only."""

    __slots__ = ("_body", "_call", "_decoder", "_sse", "_status")

    def __init__(self, call: Call, status: int, headers: Mapping[str, str], decoder: Decoder | None) -> None:
        self._call = call
        self._status = status
        self._decoder = decoder
        self._sse: SSEParser | None = None
        self._body: bytearray | None = None
        content_type = headers.get("content-type", "")
        if decoder is not None and "text/event-stream" in content_type and status < 400:
            observer = call.adapter.stream_observer(call.start, call.observed)
            if observer is not None:
                self._sse = SSEParser(observer.on_event)
        if self._sse is None and decoder is not None:
            self._body = bytearray()

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._call.first_chunk()
        if self._decoder is None:
            return
        try:
            data = self._decoder.decode(chunk)
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

    def finish(self, error: BaseException | None = None) -> None:
        """End of stream, close, garbage collection or an error while reading."""
        call = self._call
        if call._done:
            return
        try:
            if self._sse is not None:
                self._sse.close()
            elif self._body is not None:
                response = HttpResponse(self._status, {}, bytes(self._body))
                call.adapter.response_attributes(call.start, response, call.observed)
        except Exception as exc:
            log_once(f"{call.adapter.provider} stream parsing", exc)
        call.finish(status=self._status, error_type=type(error).__qualname__ if error is not None else None)


def get_tracer(tracer_provider: trace.TracerProvider | None, version: str) -> Tracer:
    return trace.get_tracer(
        "aispend.instrumentation",
        version,
        tracer_provider=tracer_provider,
        schema_url="https://opentelemetry.io/schemas/1.37.0",
    )
