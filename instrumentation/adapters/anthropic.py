"""Anthropic Messages API: JSON and SSE (message_start / message_delta carry the usage).

In a stream, ``message_start`` has the final input and cache counts but ``output_tokens: 1``, a
placeholder; only ``message_delta`` has the final output. A stream that ends before it (the app
stopped reading) keeps the input counts and has its output estimated from the text seen.

Anthropic's ``input_tokens`` EXCLUDE cache reads and writes; the GenAI convention (and OpenAI)
include them, so input = input_tokens + cache_read_input_tokens + cache_creation_input_tokens.
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
    error_type_from_body,
    event_json,
    num,
    set_usage,
)
from aispend.instrumentation.exchange import HttpRequest, HttpResponse
from aispend.instrumentation.tokens import billed_json


def _usage(attrs: dict, usage: Any, previous: dict[str, int]) -> bool:
    """Merge a (possibly partial, cumulative) usage object into ``previous`` and write attributes."""
    if not isinstance(usage, dict):
        return False
    for key in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
        value = num(usage.get(key))
        if value is not None:
            previous[key] = value
    if not previous:
        return False
    cache_read = previous.get("cache_read_input_tokens", 0)
    cache_write = previous.get("cache_creation_input_tokens", 0)
    return set_usage(
        attrs,
        input_tokens=previous.get("input_tokens", 0) + cache_read + cache_write,
        output_tokens=previous.get("output_tokens", 0),
        cache_read=cache_read,
        cache_write=cache_write,
    )


@dataclass
class AnthropicAdapter:
    provider: str = "anthropic"

    def matches(self, request: HttpRequest) -> bool:
        return request.method == "POST" and request.path.endswith(("/v1/messages", "/v1/complete"))

    def api_key(self, request: HttpRequest) -> str | None:
        return request.headers.get("x-api-key") or bearer(request)

    def request_attributes(self, request: HttpRequest) -> CallStart | None:
        body = request.json()
        body = body if isinstance(body, dict) else {}
        model = body.get("model")
        legacy = request.path.endswith("/v1/complete")
        prompt = body.get("prompt") if legacy else body.get("messages")
        return CallStart(
            operation="text_completion" if legacy else "chat",
            kind="llm",
            model=model if isinstance(model, str) else None,
            stream=body.get("stream") is True,
            prompt=(prompt, body.get("system"), billed_json(body, "tools")),
            input_messages=prompt,
        )

    def response_attributes(self, start: CallStart, response: HttpResponse, observed: Observed) -> None:
        body = response.json()
        if not isinstance(body, dict):
            return
        if response.status >= 400 or body.get("type") == "error":
            observed.error_type = error_type_from_body(body)
            return
        self._message(body, observed, {}, final=True)
        for block in body.get("content") or ():
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                observed.add_text(block["text"])
        if isinstance(body.get("completion"), str):
            observed.add_text(body["completion"])

    def _message(self, message: dict, observed: Observed, usage_state: dict[str, int], final: bool) -> None:
        """A message object; in a stream (``message_start``) its usage is not final: input and
        cache counts are, output is a placeholder until ``message_delta``."""
        attrs = observed.attributes
        if isinstance(message.get("model"), str):
            attrs[sc.GEN_AI_RESPONSE_MODEL] = message["model"]
        if isinstance(message.get("id"), str):
            attrs[sc.GEN_AI_RESPONSE_ID] = message["id"]
        if isinstance(message.get("stop_reason"), str):
            attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = (message["stop_reason"],)
        if _usage(attrs, message.get("usage"), usage_state):
            if final:
                observed.usage_reported = True
            elif "input_tokens" in usage_state:
                observed.input_known = True

    def stream_observer(self, start: CallStart, observed: Observed) -> _AnthropicStream:
        return _AnthropicStream(self, observed)


class _AnthropicStream:
    """Usage comes in message_start and message_delta; the text deltas are held and read only if
    no usage came (or content capture is on)."""

    __slots__ = ("_adapter", "_deltas", "_usage", "observed")

    def __init__(self, adapter: AnthropicAdapter, observed: Observed) -> None:
        self._adapter = adapter
        self.observed = observed
        self._usage: dict[str, int] = {}
        self._deltas = HeldEvents(self._apply)

    def on_event(self, event: str, data: str) -> None:
        if event == "content_block_delta":
            self._deltas.add(data)
            return
        payload = event_json(data)
        if isinstance(payload, dict):
            self._apply(payload, event)

    def close(self) -> None:
        if self.observed.output_text is not None or not self.observed.usage_reported:
            self._deltas.release()
        else:
            self._deltas.discard()

    def _apply(self, payload: dict[str, Any], event: str = "") -> None:
        kind = payload.get("type") or event
        if kind == "message_start" and isinstance(payload.get("message"), dict):
            self._adapter._message(payload["message"], self.observed, self._usage, final=False)
        elif kind == "content_block_delta":
            text = dig(payload, "delta", "text")
            if isinstance(text, str):
                self.observed.add_text(text)
        elif kind == "message_delta":
            stop = dig(payload, "delta", "stop_reason")
            if isinstance(stop, str):
                self.observed.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] = (stop,)
            if _usage(self.observed.attributes, payload.get("usage"), self._usage):
                self.observed.usage_reported = True
        elif kind == "completion" and isinstance(payload.get("completion"), str):
            self.observed.add_text(payload["completion"])
        elif kind == "error":
            self.observed.error_type = error_type_from_body(payload) or "stream_error"
