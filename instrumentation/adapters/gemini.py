"""Google Gemini (generativelanguage.googleapis.com) and Vertex AI generateContent, JSON and SSE.

``promptTokenCount`` includes cached content; ``candidatesTokenCount`` excludes thinking tokens,
which Google bills as output, so output = candidates + thoughts and reasoning = thoughts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aispend import semconv as sc
from aispend.instrumentation.adapters.base import (
    CallStart,
    HeldEvents,
    Observed,
    error_in_ok_body,
    error_type_from_body,
    finish_reasons,
    num,
    set_usage,
)
from aispend.instrumentation.exchange import HttpRequest, HttpResponse
from aispend.instrumentation.tokens import billed_json

_METHODS = {
    "generateContent": ("generate_content", "llm", False),
    "streamGenerateContent": ("generate_content", "llm", True),
    "embedContent": ("embeddings", "embedding", False),
    "batchEmbedContents": ("embeddings", "embedding", False),
}


def _method(path: str) -> tuple[str, str] | None:
    """(model, method) from ``…/models/{model}:{method}``."""
    tail = path.rsplit("/models/", 1)
    if len(tail) != 2:
        return None
    model, sep, method = tail[1].partition(":")
    return (model, method) if sep and method in _METHODS else None


def _has_counts(meta: Any) -> bool:
    return isinstance(meta, dict) and ("promptTokenCount" in meta or "candidatesTokenCount" in meta)


def _usage(attrs: dict, meta: Any) -> bool:
    """Write a ``usageMetadata``'s counts; False when it has none (Vertex's chunks before the last
    carry only ``trafficType``)."""
    if not _has_counts(meta):
        return False
    prompt = num(meta.get("promptTokenCount"))
    tool_prompt = num(meta.get("toolUsePromptTokenCount")) or 0
    candidates = num(meta.get("candidatesTokenCount")) or 0
    thoughts = num(meta.get("thoughtsTokenCount"))
    return set_usage(
        attrs,
        input_tokens=(prompt or 0) + tool_prompt if prompt is not None else None,
        output_tokens=candidates + (thoughts or 0),
        cache_read=num(meta.get("cachedContentTokenCount")),
        reasoning=thoughts,
    )


@dataclass
class GeminiAdapter:
    provider: str = "gcp.gemini"

    def matches(self, request: HttpRequest) -> bool:
        return request.method == "POST" and _method(request.path) is not None

    def api_key(self, request: HttpRequest) -> str | None:
        return request.headers.get("x-goog-api-key") or request.query_params().get("key")

    def request_attributes(self, request: HttpRequest) -> CallStart | None:
        found = _method(request.path)
        if found is None:
            return None
        model, method = found
        operation, kind, stream = _METHODS[method]
        body = request.json()
        body = body if isinstance(body, dict) else {}
        contents = body.get("contents") or body.get("content") or body.get("requests")
        return CallStart(
            operation=operation,
            kind=kind,
            model=model,
            stream=stream,
            prompt=(contents, body.get("systemInstruction"), billed_json(body, "tools", "toolConfig")),
            input_messages=contents if kind == "llm" else None,
        )

    def response_attributes(self, start: CallStart, response: HttpResponse, observed: Observed) -> None:
        body = response.json()
        if response.status >= 400:
            observed.error_type = error_type_from_body(body)
            return
        error = error_in_ok_body(body, "candidates", "usageMetadata", "embedding", "embeddings")
        if error is not None:
            observed.error_type = error
            return
        if isinstance(body, dict):
            self.read_chunk(body, observed, final=True)
            return
        # streamGenerateContent without alt=sse answers one JSON array of chunks
        finished = False
        for chunk in body if isinstance(body, list) else ():
            if isinstance(chunk, dict):
                finished = self.read_chunk(chunk, observed, finished) or finished

    def read_chunk(self, chunk: dict, observed: Observed, final: bool) -> bool:
        """Read one response or stream chunk; True if it has a finish reason. Its usage is final
        when ``final`` (a whole response, or a chunk at or after the finish reason); before that a
        stream's counts are running totals, the prompt's already exact."""
        attrs = observed.attributes
        if isinstance(chunk.get("modelVersion"), str):
            attrs[sc.GEN_AI_RESPONSE_MODEL] = chunk["modelVersion"]
        if isinstance(chunk.get("responseId"), str):
            attrs[sc.GEN_AI_RESPONSE_ID] = chunk["responseId"]
        candidates = [c for c in chunk.get("candidates") or () if isinstance(c, dict)]
        reasons = finish_reasons([c.get("finishReason") for c in candidates])
        if reasons:
            attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
        for candidate in candidates:
            content = candidate.get("content")
            for part in (content.get("parts") or ()) if isinstance(content, dict) else ():
                if isinstance(part, dict) and isinstance(part.get("text"), str) and not part.get("thought"):
                    observed.add_text(part["text"])
        final = final or reasons is not None
        if _usage(attrs, chunk.get("usageMetadata")):
            if final:
                observed.usage_reported = True
            elif sc.GEN_AI_USAGE_INPUT_TOKENS in attrs:
                observed.input_known = True
        return reasons is not None

    def stream_observer(self, start: CallStart, observed: Observed) -> _GeminiStream:
        return _GeminiStream(self, observed)


class _GeminiStream:
    """Each chunk carries the usage so far: chunks are held and, when the last one has the final
    usage (and content capture is off), only the chunks back to the finish reason are parsed."""

    __slots__ = ("_adapter", "_chunks", "_finished", "observed")

    def __init__(self, adapter: GeminiAdapter, observed: Observed) -> None:
        self._adapter = adapter
        self.observed = observed
        self._finished = False
        self._chunks = HeldEvents(self._apply)

    def on_event(self, event: str, data: str) -> None:
        self._chunks.add(data)

    def on_batch(self, datas: list[bytes]) -> None:
        self._chunks.add_all(datas)

    def close(self) -> None:
        capture = self.observed.output_text is not None
        self._chunks.release(None if capture else _final_usage_in_tail)

    def _apply(self, chunk: dict[str, Any]) -> None:
        if "error" in chunk and "candidates" not in chunk:
            self.observed.error_type = error_type_from_body(chunk) or "stream_error"
        else:
            self._finished = self._adapter.read_chunk(chunk, self.observed, self._finished) or self._finished


def _final_usage_in_tail(tail: list[dict[str, Any]]) -> bool:
    """The newest chunk has counts and a finish reason is among the chunks read back (the
    stream was read to its end): nothing older is needed. ``tail[-1]`` is the one just read."""
    newest = tail[0]
    if "error" in newest or not _has_counts(newest.get("usageMetadata")):
        return False
    return any(isinstance(c, dict) and c.get("finishReason") for c in tail[-1].get("candidates") or ())
