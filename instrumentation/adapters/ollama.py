"""Ollama's native API: ``/api/chat``, ``/api/generate`` and ``/api/embed`` (and the older
``/api/embeddings``), JSON or NDJSON streams (``stream`` defaults to true on Ollama).

Usage is ``prompt_eval_count`` (input) and ``eval_count`` (output), in the final ``done: true``
object. Ollama leaves ``prompt_eval_count`` out when the whole prompt came from its cache, so a
done chunk with only ``eval_count`` means 0 new input tokens. Self-hosted: priced $0 by the
shipped price book unless an override gives a price (see docs/providers-bedrock-cohere-ollama.md).

Ollama's OpenAI-compatible endpoints (``/v1/chat/completions``, ``/v1/embeddings`` …) on the same
address are read by the OpenAI adapter under the provider name ``ollama``, so they are priced as
Ollama's too; the two are told apart by path, and a response by its shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aispend import semconv as sc
from aispend.instrumentation.adapters.base import (
    CallStart,
    HeldEvents,
    Observed,
    bearer,
    dig,
    num,
    set_usage,
)
from aispend.instrumentation.adapters.openai import OpenAIAdapter
from aispend.instrumentation.exchange import HttpRequest, HttpResponse
from aispend.instrumentation.tokens import billed_json

_PATHS = {
    "/api/chat": ("chat", "llm"),
    "/api/generate": ("text_completion", "llm"),
    "/api/embed": ("embeddings", "embedding"),
    "/api/embeddings": ("embeddings", "embedding"),
}


def _path(path: str) -> str | None:
    for suffix in _PATHS:
        if path.endswith(suffix):
            return suffix
    return None


def read(chunk: dict[str, Any], observed: Observed) -> None:
    """One response object: a whole response, or one line of a stream."""
    attrs = observed.attributes
    if isinstance(chunk.get("model"), str):
        attrs[sc.GEN_AI_RESPONSE_MODEL] = chunk["model"]
    text = dig(chunk, "message", "content") if "message" in chunk else chunk.get("response")
    if isinstance(text, str) and text:
        observed.add_text(text)
    thinking = dig(chunk, "message", "thinking") if "message" in chunk else chunk.get("thinking")
    if isinstance(thinking, str) and thinking:
        observed.add_text(thinking)
    if isinstance(chunk.get("error"), str):
        observed.error_type = "ollama_error"
    prompt, output = num(chunk.get("prompt_eval_count")), num(chunk.get("eval_count"))
    done = chunk.get("done") is True or "embeddings" in chunk
    if done and isinstance(chunk.get("done_reason"), str):
        attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = (chunk["done_reason"],)
    if done and (prompt is not None or output is not None):
        set_usage(attrs, input_tokens=prompt or 0, output_tokens=output if "embeddings" not in chunk else None)
        observed.usage_reported = True


def _openai_shaped(body: Any) -> bool:
    return isinstance(body, dict) and ("object" in body or "choices" in body or isinstance(body.get("error"), dict))


@dataclass
class OllamaAdapter:
    provider: str = "ollama"
    _openai: OpenAIAdapter = field(default_factory=lambda: OpenAIAdapter(provider="ollama"), repr=False)

    def matches(self, request: HttpRequest) -> bool:
        if request.method != "POST":
            return False
        return _path(request.path) is not None or self._openai.matches(request)

    def api_key(self, request: HttpRequest) -> str | None:
        return bearer(request)  # Ollama itself takes none; a proxy in front of it may

    def request_attributes(self, request: HttpRequest) -> CallStart | None:
        path = _path(request.path)
        if path is None:
            return self._openai.request_attributes(request)
        operation, kind = _PATHS[path]
        body = request.json()
        body = body if isinstance(body, dict) else {}
        model = body.get("model")
        prompt = body.get("messages") or body.get("prompt") or body.get("input")
        return CallStart(
            operation=operation,
            kind=kind,
            model=model if isinstance(model, str) else None,
            # the embed endpoints never stream; chat and generate do unless told not to
            stream=kind == "llm" and body.get("stream") is not False,
            prompt=(prompt, body.get("system"), billed_json(body, "tools")),
            input_messages=prompt if kind == "llm" else None,
        )

    def response_attributes(self, start: CallStart, response: HttpResponse, observed: Observed) -> None:
        body = response.json()
        if _openai_shaped(body):
            self._openai.response_attributes(start, response, observed)
            return
        if response.status >= 400:
            return  # {"error": "model 'x' not found"}: the status is the error type
        if isinstance(body, dict):
            read(body, observed)
        elif response.body and b"\n" in response.body.strip():  # an NDJSON stream read whole
            stream = _OllamaStream(observed)
            for line in response.body.split(b"\n"):
                if line.strip():
                    stream.on_event("", line.decode("utf-8", "replace"))
            stream.close()

    def stream_observer(self, start: CallStart, observed: Observed) -> _EitherStream:
        return _EitherStream(self, start, observed)


class _EitherStream:
    """Native NDJSON (every line has ``"done"``) or the OpenAI-compatible SSE: the first event says."""

    __slots__ = ("_adapter", "_inner", "_start", "observed")

    def __init__(self, adapter: OllamaAdapter, start: CallStart, observed: Observed) -> None:
        self._adapter, self._start, self.observed = adapter, start, observed
        self._inner: Any = None

    def on_event(self, event: str, data: str) -> None:
        if self._inner is None:
            native = '"done"' in data
            openai = self._adapter._openai
            self._inner = _OllamaStream(self.observed) if native else openai.stream_observer(self._start, self.observed)
        self._inner.on_event(event, data)

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()


class _OllamaStream:
    """NDJSON lines, held; at the end only the newest (the ``done`` one, with the counts) is
    parsed unless no usage came or content capture is on."""

    __slots__ = ("_lines", "observed")

    def __init__(self, observed: Observed) -> None:
        self.observed = observed
        self._lines = HeldEvents(lambda chunk: read(chunk, self.observed))

    def on_event(self, event: str, data: str) -> None:
        self._lines.add(data)

    def close(self) -> None:
        capture = self.observed.output_text is not None
        self._lines.release(None if capture else _done_in_newest)


def _done_in_newest(tail: list[dict[str, Any]]) -> bool:
    return tail[0].get("done") is True and "eval_count" in tail[0]
