"""The shape every provider adapter has, and the helpers they share.

An adapter is pure: it reads an ``HttpRequest`` / ``HttpResponse`` (or SSE events) and returns
span attributes. It never touches spans, clients or the network, so each one is tested with
plain bytes, and adding a provider is adding one small module.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aispend import semconv as sc
from aispend.instrumentation import fastjson
from aispend.instrumentation.exchange import HttpRequest, HttpResponse
from aispend.instrumentation.sse import DataBlocks

AttrValue = str | bool | int | float | tuple[str, ...]
Attributes = dict[str, AttrValue]

ESTIMATE_TEXT_LIMIT = 1_000_000  # output characters kept for an estimate; beyond, they are only counted


@dataclass(slots=True)
class CallStart:
    """What the request says: known before the call leaves the process."""

    operation: str
    kind: str  # llm | embedding | image | search | image_search
    model: str | None = None
    stream: bool = False
    attributes: Attributes = field(default_factory=dict)
    prompt: tuple[Any, ...] = ()  # prompt structures; their text is counted only if usage must be estimated
    input_messages: Any = None  # the prompt, kept only when content capture is on
    choices: int = 1  # completions asked for (OpenAI's n): each ends with its own finish reason


@dataclass(slots=True)
class Observed:
    """What the response said (built incrementally for streams)."""

    attributes: Attributes = field(default_factory=dict)
    usage_reported: bool = False  # the provider's final usage is in ``attributes``
    # Usage not final yet (a stream the app stopped reading): the input and cache counts in
    # ``attributes`` are the provider's (Anthropic's message_start), and any output count there
    # is a lower bound (its placeholder 1, Gemini's running total); the rest is estimated.
    input_known: bool = False
    output_chars: int = 0
    texts: list[str] = field(default_factory=list)  # for an estimate, if no usage comes (references)
    output_text: list[str] | None = None  # collected only when content capture is on
    error_type: str | None = None

    def add_text(self, text: str) -> None:
        self.output_chars += len(text)
        if self.output_chars <= ESTIMATE_TEXT_LIMIT:
            self.texts.append(text)
        if self.output_text is not None:
            self.output_text.append(text)


class StreamObserver(Protocol):
    observed: Observed

    def on_event(self, event: str, data: str) -> None: ...

    def close(self) -> None:
        """The stream ended (or was closed or dropped): read what was held back."""


HOLD_LIMIT = 4_000_000  # characters of event data held per stream before it is read as it comes


def _ignore(event: dict[str, Any]) -> None:
    """What a released ``HeldEvents`` applies events to: the stream is over."""


class HeldEvents:
    """Event data kept (not parsed) until the stream ends. Usage, finish reasons, model and id sit
    in a stream's last events, and the text of the others is needed only when the provider reported
    no usage or content capture is on, so most events of a long stream are never parsed at all.
    The user's chunks are never held: this keeps the observer's own copy of each event's data.

    ``release`` and ``discard`` end it (the observers call one of them when the stream closes) and
    let go of ``apply``: it is the observer's own method, so keeping it would leave a reference
    cycle per stream for the garbage collector (~15 objects, and collections to match)."""

    __slots__ = ("_apply", "_events", "_size")

    def __init__(self, apply: Callable[[dict[str, Any]], None]) -> None:
        self._apply = apply
        self._events: list[str | bytes | DataBlocks] = []
        self._size = 0

    def add(self, data: str) -> None:
        self._events.append(data)
        self._size += len(data)
        if self._size > HOLD_LIMIT:
            self._read(self._apply)  # a very long stream: read what is held, in order, and keep going

    def add_all(self, datas: list[bytes] | DataBlocks) -> None:
        """A batch of events' data, undecoded (``SSEParser``'s batches), or a run of events as
        they arrived, unsplit (``DataBlocks``)."""
        if type(datas) is DataBlocks:
            self._events.append(datas)
            self._size += len(datas)
        else:
            self._events += datas
            self._size += sum(map(len, datas))
        if self._size > HOLD_LIMIT:
            self._read(self._apply)

    def release(self, enough: Callable[[list[dict[str, Any]]], bool] | None = None) -> None:
        """Parse the held events newest first until ``enough(parsed)`` (None: all of them), then
        apply the parsed ones in stream order."""
        apply, self._apply = self._apply, _ignore
        self._read(apply, enough)

    def discard(self) -> None:
        self._events, self._size, self._apply = [], 0, _ignore

    def _read(
        self, apply: Callable[[dict[str, Any]], None], enough: Callable[[list[dict[str, Any]]], bool] | None = None
    ) -> None:
        parsed: list[dict[str, Any]] = []
        for held in reversed(self._events):
            for data in held.newest_first() if type(held) is DataBlocks else (held,):
                event = event_json(data)
                if isinstance(event, dict):
                    parsed.append(event)
                    if enough is not None and enough(parsed):
                        break
            else:
                continue
            break
        self._events, self._size = [], 0
        for event in reversed(parsed):
            apply(event)


class Adapter(Protocol):
    provider: str

    def matches(self, request: HttpRequest) -> bool: ...

    def request_attributes(self, request: HttpRequest) -> CallStart | None: ...

    def response_attributes(self, start: CallStart, response: HttpResponse, observed: Observed) -> None: ...

    def stream_observer(self, start: CallStart, observed: Observed) -> StreamObserver | None: ...

    def api_key(self, request: HttpRequest) -> str | None: ...


def num(value: Any) -> int | None:
    """A token count from JSON, or None for anything that is not a non-negative integer."""
    if type(value) is int:  # what JSON gives nearly always: one check
        return value if value >= 0 else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value) if value >= 0 else None


def set_reported_cost(attrs: Attributes, cost: Any) -> bool:
    """The provider's own USD figure for the call (OpenRouter's ``usage.cost``), when it is a
    finite non-negative number; the exporter prices the call at it."""
    if isinstance(cost, bool) or not isinstance(cost, int | float) or not 0 <= cost < float("inf"):
        return False
    attrs[sc.GEN_AI_USAGE_COST_AMOUNT] = float(cost)
    attrs[sc.GEN_AI_USAGE_COST_CURRENCY] = "USD"
    attrs[sc.GEN_AI_USAGE_COST_SOURCE] = sc.COST_SOURCE_PROVIDER
    return True


def dig(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def set_usage(
    attrs: Attributes,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    cache_read: int | None = None,
    cache_write: int | None = None,
    reasoning: int | None = None,
) -> bool:
    """Write usage in GenAI convention form (input includes cache, output includes reasoning)."""
    wrote = False
    for name, value in (
        (sc.GEN_AI_USAGE_INPUT_TOKENS, input_tokens),
        (sc.GEN_AI_USAGE_OUTPUT_TOKENS, output_tokens),
        (sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, cache_read),
        (sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, cache_write),
        (sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS, cache_write),
        (sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, reasoning),
    ):
        if value is not None:
            attrs[name] = value
            wrote = True
    return wrote


def bearer(request: HttpRequest) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def finish_reasons(values: list[Any]) -> tuple[str, ...] | None:
    reasons = tuple(str(v) for v in values if isinstance(v, str) and v)
    return reasons or None


_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]*")


def error_type_from_body(body: Any) -> str | None:
    """Provider error code from an error body (OpenAI, Anthropic and Google shapes; OpenRouter's
    integer ``code``, e.g. 429, as its digits)."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        sentence = False
        for key in ("code", "type", "status"):  # Google's: {"code": 400, "status": "INVALID_ARGUMENT"}
            value = err.get(key)
            if isinstance(value, str) and value:
                if _is_word(value):
                    return value
                sentence = True
        if type(err.get("code")) is int:
            return str(err["code"])
        if sentence:
            return "error"  # only sentences where a code should be: not a low-cardinality type
    return None


def _is_word(value: str) -> bool:
    return 0 < len(value) <= 64 and _IDENTIFIER.fullmatch(value) is not None


def _error_word(value: Any) -> str:
    """``error.type`` is low-cardinality: an identifier-like string (``content_filter``) is kept,
    a sentence (``"Model foo not found"``) is not."""
    if isinstance(value, str) and _is_word(value):
        return value
    if type(value) is int:
        return str(value)
    return "error"


def error_in_ok_body(body: Any, *answer_keys: str) -> str | None:
    """The error type of a 2xx body that is an error object and no answer (Azure's content filter
    answers ``{"error": {"code": "content_filter", ...}}``; vLLM ``{"object": "error", ...}``; a
    failed Responses API response has ``"output": []`` beside its ``error``)."""
    if not isinstance(body, dict) or any(body.get(key) for key in answer_keys):
        return None
    if "error" in body and body["error"] is not None:
        return error_type_from_body(body) or _error_word(body["error"])
    if body.get("object") == "error":
        return _error_word(body.get("type") or body.get("code"))
    return None


def event_json(data: str | bytes) -> Any:
    """Decode one SSE data payload (text, or UTF-8 bytes); ``[DONE]`` and junk give None."""
    if not data or data == "[DONE]" or data == b"[DONE]":
        return None
    try:
        return fastjson.loads_lenient(data)  # bytes decoded as SSEParser decodes an event's data
    except ValueError:
        return None
