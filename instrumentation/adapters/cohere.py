"""Cohere chat and embed (v2, and v1's shapes), JSON and streams.

v2 chat answers ``usage: {billed_units: {input_tokens, output_tokens}, tokens: {...}}`` (v1 and
embed put the same in ``meta``). ``billed_units`` is what Cohere's invoice counts, so it is the
span's usage and what is priced; ``tokens`` (everything the model saw, with Cohere's own prompt
template) is kept beside it as ``cohere.usage.tokens.input`` / ``.output``. Only when a response
has no ``billed_units`` does ``tokens`` become the usage.

v2 streams are SSE (``message-start``, ``content-delta``…, ``message-end`` with the usage); v1
streams are JSON lines (``application/stream+json``) ending in a ``stream-end`` event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aispend import semconv as sc
from aispend.instrumentation.adapters.base import (
    CallStart,
    HeldEvents,
    Observed,
    bearer,
    dig,
    event_json,
    num,
    set_usage,
)
from aispend.instrumentation.exchange import HttpRequest, HttpResponse
from aispend.instrumentation.tokens import billed_json

COHERE_TOKENS_INPUT = "cohere.usage.tokens.input"
COHERE_TOKENS_OUTPUT = "cohere.usage.tokens.output"
_PATHS = {
    "/v2/chat": ("chat", "llm"),
    "/v1/chat": ("chat", "llm"),
    "/v1/generate": ("text_completion", "llm"),
    "/v2/embed": ("embeddings", "embedding"),
    "/v1/embed": ("embeddings", "embedding"),
}


def _path(path: str) -> str | None:
    for suffix in _PATHS:
        if path.endswith(suffix):
            return suffix
    return None


def _usage(observed: Observed, usage: Any) -> None:
    """``usage`` (v2) or ``meta`` (v1, embed): billed units priced, raw tokens kept beside them."""
    if not isinstance(usage, dict):
        return
    attrs = observed.attributes
    billed, tokens = usage.get("billed_units"), usage.get("tokens")
    if isinstance(tokens, dict):
        for field, name in (("input_tokens", COHERE_TOKENS_INPUT), ("output_tokens", COHERE_TOKENS_OUTPUT)):
            value = num(tokens.get(field))
            if value is not None:
                attrs[name] = value
    counts = billed if isinstance(billed, dict) and ("input_tokens" in billed or "output_tokens" in billed) else tokens
    if not isinstance(counts, dict):
        return
    input_tokens, output_tokens = num(counts.get("input_tokens")), num(counts.get("output_tokens"))
    if input_tokens is None and output_tokens is None:
        return
    set_usage(attrs, input_tokens=input_tokens or 0, output_tokens=output_tokens)  # embed bills input only
    observed.usage_reported = True


def _finish(observed: Observed, reason: Any) -> None:
    if isinstance(reason, str) and reason:
        observed.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] = (reason,)


def _read(body: dict[str, Any], observed: Observed) -> None:
    """A whole chat / embed response (v2 or v1), or v1's ``stream-end`` response."""
    attrs = observed.attributes
    rid = body.get("id") or body.get("generation_id") or body.get("response_id")
    if isinstance(rid, str):
        attrs[sc.GEN_AI_RESPONSE_ID] = rid
    _finish(observed, body.get("finish_reason"))
    for block in dig(body, "message", "content") or ():
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            observed.add_text(block["text"])
    if isinstance(body.get("text"), str):
        observed.add_text(body["text"])
    for generation in body.get("generations") or ():
        if isinstance(generation, dict) and isinstance(generation.get("text"), str):
            observed.add_text(generation["text"])
    _usage(observed, body.get("usage") if "usage" in body else body.get("meta"))


@dataclass
class CohereAdapter:
    provider: str = "cohere"

    def matches(self, request: HttpRequest) -> bool:
        return request.method == "POST" and _path(request.path) is not None

    def api_key(self, request: HttpRequest) -> str | None:
        return bearer(request)

    def request_attributes(self, request: HttpRequest) -> CallStart | None:
        path = _path(request.path)
        if path is None:
            return None
        operation, kind = _PATHS[path]
        body = request.json()
        body = body if isinstance(body, dict) else {}
        model = body.get("model")
        if kind == "embedding":
            prompt: Any = body.get("texts") or body.get("inputs")
        else:
            prompt = body.get("messages") or body.get("message") or body.get("prompt")
        return CallStart(
            operation=operation,
            kind=kind,
            model=model if isinstance(model, str) else None,
            stream=body.get("stream") is True,
            prompt=(prompt, body.get("preamble"), body.get("chat_history"), billed_json(body, "tools", "documents")),
            input_messages=prompt if kind == "llm" else None,
        )

    def response_attributes(self, start: CallStart, response: HttpResponse, observed: Observed) -> None:
        body = response.json()
        if response.status >= 400:
            return  # Cohere's error bodies are {"message": …}: the status is the error type
        if isinstance(body, dict):
            _read(body, observed)

    def stream_observer(self, start: CallStart, observed: Observed) -> _CohereStream:
        return _CohereStream(observed)


class _CohereStream:
    """v2 SSE events or v1 JSON lines (no event name: the type is in the JSON). Text deltas are
    held and read only if no usage came (or content capture is on)."""

    __slots__ = ("_deltas", "observed")

    def __init__(self, observed: Observed) -> None:
        self.observed = observed
        self._deltas = HeldEvents(self._apply)

    def on_event(self, event: str, data: str) -> None:
        if event == "content-delta" or (not event and '"text-generation"' in data):
            self._deltas.add(data)
            return
        payload = event_json(data)
        if isinstance(payload, dict):
            self._apply(payload)

    def close(self) -> None:
        if self.observed.output_text is not None or not self.observed.usage_reported:
            self._deltas.release()
        else:
            self._deltas.discard()

    def _apply(self, payload: dict[str, Any]) -> None:
        observed = self.observed
        kind = payload.get("type") or payload.get("event_type")
        if kind == "message-start" and isinstance(payload.get("id"), str):
            observed.attributes[sc.GEN_AI_RESPONSE_ID] = payload["id"]
        elif kind == "content-delta":
            text = dig(payload, "delta", "message", "content", "text")
            if isinstance(text, str):
                observed.add_text(text)
        elif kind == "message-end":
            _finish(observed, dig(payload, "delta", "finish_reason"))
            _usage(observed, dig(payload, "delta", "usage"))
        elif kind == "text-generation" and isinstance(payload.get("text"), str):  # v1
            observed.add_text(payload["text"])
        elif kind == "stream-end":  # v1: the whole response, text included (already counted)
            response = payload.get("response")
            if isinstance(response, dict):
                _finish(observed, payload.get("finish_reason") or response.get("finish_reason"))
                rid = response.get("generation_id") or response.get("response_id")
                if isinstance(rid, str):
                    observed.attributes[sc.GEN_AI_RESPONSE_ID] = rid
                _usage(observed, response.get("meta"))
        elif kind == "error" or ("error" in payload and kind is None):
            observed.error_type = str(dig(payload, "error", "type") or "stream_error")
