"""OpenAI wire format: api.openai.com, Azure OpenAI and every OpenAI-compatible host.

Chat Completions, legacy Completions, the Responses API, Embeddings and Images; JSON and SSE.
OpenAI's ``prompt_tokens`` already include cached tokens and ``completion_tokens`` include
reasoning tokens, which is the GenAI convention, so they are copied as they are. A ``usage.cost``
(OpenRouter's USD figure for the call) is recorded as ``gen_ai.usage.cost.amount`` with source
``provider``.
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
    error_in_ok_body,
    error_type_from_body,
    event_json,
    finish_reasons,
    num,
    set_reported_cost,
    set_usage,
)
from aispend.instrumentation.exchange import HttpRequest, HttpResponse
from aispend.instrumentation.sse import DataBlocks
from aispend.instrumentation.tokens import billed_json

# path suffix -> (operation, service kind)
_ENDPOINTS = (
    ("/chat/completions", "chat", "llm"),
    ("/completions", "text_completion", "llm"),
    ("/responses", "chat", "llm"),
    ("/embeddings", "embeddings", "embedding"),
    ("/images/generations", "image_generation", "image"),
    ("/images/edits", "image_generation", "image"),
    ("/images/variations", "image_generation", "image"),
)


def _endpoint(path: str) -> tuple[str, str, str] | None:
    for suffix, operation, kind in _ENDPOINTS:
        if path.endswith(suffix):
            return suffix, operation, kind
    return None


def _chat_usage(attrs: dict, usage: Any) -> bool:
    """Chat/Completions/Embeddings ``usage`` (prompt_tokens...) or Responses/Images (input_tokens...)."""
    if not isinstance(usage, dict):
        return False
    # OpenRouter (and OpenAI-compatible hosts that copy it) put the call's USD cost beside the tokens
    if "cost" in usage:
        set_reported_cost(attrs, usage["cost"])
    if "prompt_tokens" in usage:
        return set_usage(
            attrs,
            input_tokens=num(usage["prompt_tokens"]),
            output_tokens=num(usage.get("completion_tokens")) if "completion_tokens" in usage else 0,
            cache_read=num(dig(usage, "prompt_tokens_details", "cached_tokens")),
            reasoning=num(dig(usage, "completion_tokens_details", "reasoning_tokens")),
        )
    return set_usage(
        attrs,
        input_tokens=num(usage.get("input_tokens")),
        output_tokens=num(usage.get("output_tokens")),
        cache_read=num(dig(usage, "input_tokens_details", "cached_tokens")),
        reasoning=num(dig(usage, "output_tokens_details", "reasoning_tokens")),
    )


# A chat chunk's own fields (OpenAI's, and ``usage``): never a host's ``x_<host>`` extension
_CHUNK_FIELDS = frozenset(
    {"id", "object", "created", "model", "choices", "usage", "service_tier", "system_fingerprint", "obfuscation"}
)


def usage_in(chunk: dict[str, Any]) -> Any:
    """A chunk's usage wherever an OpenAI-compatible host puts it: top-level ``usage`` (OpenAI,
    ``stream_options.include_usage``), ``x_<host>.usage`` (Groq's ``x_groq``), or inside a choice
    (hosts that attach it to the final choice). None when the chunk carries none."""
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        return usage
    for key in chunk.keys() - _CHUNK_FIELDS:  # a set difference in C: a chunk has no other key, as a rule
        value = chunk[key]
        if key.startswith("x_") and isinstance(value, dict) and isinstance(value.get("usage"), dict):
            return value["usage"]
    choices = chunk.get("choices")
    if choices and isinstance(choices, list):
        last = choices[-1]
        if isinstance(last, dict) and isinstance(last.get("usage"), dict):
            return last["usage"]
    return None


def _response_text(body: dict) -> list[str]:
    texts: list[str] = []
    for choice in body.get("choices") or ():
        if isinstance(choice, dict):
            content = dig(choice, "message", "content")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(choice.get("text"), str):
                texts.append(choice["text"])
    for item in body.get("output") or ():
        for part in (item.get("content") or ()) if isinstance(item, dict) else ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
    return texts


@dataclass
class OpenAIAdapter:
    provider: str = "openai"
    azure: bool = False

    def matches(self, request: HttpRequest) -> bool:
        return request.method == "POST" and _endpoint(request.path) is not None

    def api_key(self, request: HttpRequest) -> str | None:
        return request.headers.get("api-key") or bearer(request)

    def request_attributes(self, request: HttpRequest) -> CallStart | None:
        found = _endpoint(request.path)
        if found is None:
            return None
        _, operation, kind = found
        body = request.json()
        body = body if isinstance(body, dict) else {}
        model = body.get("model")
        if self.azure and not isinstance(model, str):
            # /openai/deployments/{deployment}/chat/completions: the deployment names the model
            parts = request.path.split("/")
            if "deployments" in parts and parts.index("deployments") + 1 < len(parts):
                model = parts[parts.index("deployments") + 1]
        start = CallStart(
            operation=operation,
            kind=kind,
            model=model if isinstance(model, str) else None,
            stream=body.get("stream") is True,
        )
        choices = num(body.get("n"))
        if kind == "llm" and choices:
            start.choices = choices
        prompt = body.get("messages", body.get("input", body.get("prompt")))
        if kind in ("llm", "embedding"):
            start.prompt = (prompt, body.get("instructions"), billed_json(body, "tools", "functions"))
        if kind == "llm":
            start.input_messages = prompt
        if kind == "image":
            n = num(body.get("n"))
            start.attributes[sc.AISPEND_USAGE_IMAGES] = n if n is not None else 1
            for key, attr in (("size", sc.AISPEND_IMAGE_SIZE), ("quality", sc.AISPEND_IMAGE_QUALITY)):
                if isinstance(body.get(key), str):
                    start.attributes[attr] = body[key]
        return start

    def response_attributes(self, start: CallStart, response: HttpResponse, observed: Observed) -> None:
        body = response.json()
        if not isinstance(body, dict):
            return
        if response.status >= 400:
            observed.error_type = error_type_from_body(body)
            return
        error = error_in_ok_body(body, "choices", "output", "data")
        if error is not None:
            observed.error_type = error
            if body.get("object") != "response":
                return
            # a failed Responses API response is still a response: its model, id and any usage
            # (its stream's ``response.failed`` event is read the same way)
        self._read_body(start, body, observed)

    def _read_body(self, start: CallStart, body: dict, observed: Observed) -> None:
        attrs = observed.attributes
        if isinstance(body.get("model"), str):
            attrs[sc.GEN_AI_RESPONSE_MODEL] = body["model"]
        if isinstance(body.get("id"), str):
            attrs[sc.GEN_AI_RESPONSE_ID] = body["id"]
        reasons = finish_reasons([c.get("finish_reason") for c in body.get("choices") or () if isinstance(c, dict)])
        if reasons is None and isinstance(body.get("status"), str) and "output" in body:
            reasons = (body["status"],)  # Responses API: completed / incomplete
        if reasons:
            attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
        if start.kind == "image" and isinstance(body.get("data"), list):
            attrs[sc.AISPEND_USAGE_IMAGES] = len(body["data"])
        if _chat_usage(attrs, usage_in(body)):
            observed.usage_reported = True
            if observed.output_text is None:
                return  # the text is read only to estimate missing usage, or to capture it
        for text in _response_text(body):
            observed.add_text(text)

    def stream_observer(self, start: CallStart, observed: Observed) -> _OpenAIStream:
        return _OpenAIStream(self, start, observed)


class _OpenAIStream:
    """Chat/Completions chunks (usage only with stream_options.include_usage) and Responses events.

    Chat chunks are held and read from the end at close: with usage in the last chunk, only the
    chunks back to the last finish reason are parsed. Responses text deltas are held likewise and
    read only if no usage came; its other (few) events are read as they come."""

    __slots__ = ("_adapter", "_chunks", "_deltas", "_finished", "_reasons", "_start", "_usage_at_end", "observed")

    def __init__(self, adapter: OpenAIAdapter, start: CallStart, observed: Observed) -> None:
        self._adapter = adapter
        self._start = start
        self.observed = observed
        self._reasons: dict[int, str] = {}
        self._finished: set[Any] = set()  # choice indexes whose finish reason the read-back has seen
        self._usage_at_end = False  # the newest chunk carries the usage (found by the read-back)
        self._chunks = HeldEvents(self._apply)
        self._deltas: HeldEvents | None = None  # Responses API text deltas, made when the first comes

    def on_event(self, event: str, data: str) -> None:
        if event == "response.output_text.delta":
            if self._deltas is None:
                self._deltas = HeldEvents(self._apply)
            self._deltas.add(data)
        elif event:
            chunk = event_json(data)
            if isinstance(chunk, dict):
                self._apply(chunk)
        elif data != "[DONE]":
            self._chunks.add(data)

    def on_batch(self, datas: list[bytes] | DataBlocks) -> None:
        """Unnamed events (chat chunks), as ``on_event`` would hold them one by one (``[DONE]``
        is skipped when they are read)."""
        self._chunks.add_all(datas)

    def close(self) -> None:
        capture = self.observed.output_text is not None
        self._finished.clear()
        self._chunks.release(None if capture else self._enough)
        if self._deltas is None:
            return
        if capture or not self.observed.usage_reported:
            self._deltas.release()
        else:
            self._deltas.discard()

    def _enough(self, tail: list[dict[str, Any]]) -> bool:
        """The newest chunks hold the usage and every choice's finish reason. Called with each
        chunk read back (``tail[-1]``), so it looks at that one only: linear in the stream."""
        if len(tail) == 1:  # the newest chunk, looked at once
            self._usage_at_end = usage_in(tail[0]) is not None
        if not self._usage_at_end:
            return False  # no usage at the end: every chunk's text may be needed for the estimate
        for choice in tail[-1].get("choices") or ():
            if isinstance(choice, dict) and isinstance(choice.get("finish_reason"), str):
                self._finished.add(choice.get("index", 0))
        return len(self._finished) >= self._start.choices

    def _apply(self, chunk: dict[str, Any]) -> None:
        kind = chunk.get("type")
        if isinstance(kind, str) and kind.startswith("response."):
            self._responses_event(kind, chunk)
            return
        if chunk.get("error") is not None:  # an error chunk; OpenRouter's mid-stream one has choices too
            self.observed.error_type = error_type_from_body(chunk) or "stream_error"
            if "choices" not in chunk:
                return
        observed = self.observed
        attrs = observed.attributes
        model, chunk_id = chunk.get("model"), chunk.get("id")
        if type(model) is str:
            attrs[sc.GEN_AI_RESPONSE_MODEL] = model
        if type(chunk_id) is str:
            attrs[sc.GEN_AI_RESPONSE_ID] = chunk_id
        for choice in chunk.get("choices") or ():
            if type(choice) is not dict:
                continue
            delta = choice.get("delta")
            text = delta.get("content") if type(delta) is dict else None
            if type(text) is not str:
                text = choice.get("text")
            if type(text) is str:
                observed.add_text(text)
            reason = choice.get("finish_reason")
            if type(reason) is str:
                index = choice.get("index")
                reasons = self._reasons
                reasons[index if isinstance(index, int) else 0] = reason
                attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = (
                    (reason,) if len(reasons) == 1 else tuple(reasons[i] for i in sorted(reasons))
                )
        usage = usage_in(chunk)
        if usage is not None and _chat_usage(attrs, usage):
            if not chunk.get("choices"):  # include_usage's chunk after the choices
                observed.usage_reported = True
            else:  # maybe a running total (vLLM's continuous usage stats): final only at the end
                observed.input_known = True
        if observed.input_known and len(self._reasons) >= self._start.choices:
            # Every choice has finished (Groq's x_groq usage rides on that chunk): the newest
            # usage is the final one. Before that, an abandoned stream's usage is a floor.
            observed.usage_reported = True

    def _responses_event(self, kind: str, event: dict) -> None:
        if kind == "response.output_text.delta" and isinstance(event.get("delta"), str):
            self.observed.add_text(event["delta"])
        elif kind in ("response.completed", "response.incomplete", "response.failed", "response.created"):
            response = event.get("response")
            if isinstance(response, dict):
                # text already arrived as deltas: read everything but the output again
                self._adapter._read_body(self._start, {**response, "output": []}, self.observed)
                if kind == "response.failed":
                    self.observed.error_type = error_type_from_body(response) or "response_failed"
