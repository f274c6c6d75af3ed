"""AWS Bedrock runtime: Converse, ConverseStream, InvokeModel and InvokeModelWithResponseStream.

Paths are ``/model/{modelId}/converse``, ``/converse-stream``, ``/invoke`` and
``/invoke-with-response-stream``; the model id may be a foundation model
(``anthropic.claude-…-v1:0``), a cross-region inference profile (``us.``, ``eu.``, ``apac.``,
``global.`` …) or an ARN, and is reported as sent (pricing resolves profiles to their model).

Usage, most authoritative first: Bedrock's own counters, which are what it bills -- the
``x-amzn-bedrock-*-token-count`` response headers (InvokeModel) and the
``amazon-bedrock-invocationMetrics`` of a response stream's last chunk -- then the body: Converse's
``usage`` (and ConverseStream's ``metadata`` event) and each model family's native counts
(Anthropic, Meta, Amazon Nova and Titan, Mistral, Cohere). Every Bedrock input count EXCLUDES cache
reads and writes (``totalTokens = input + output + cacheRead + cacheWrite``), so the convention's
input is their sum, as for Anthropic.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

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
from aispend.instrumentation.exchange import HttpRequest, HttpResponse, parse_json
from aispend.instrumentation.tokens import billed_json

_OPERATIONS = {"converse": False, "converse-stream": True, "invoke": False, "invoke-with-response-stream": True}
_METRICS = "amazon-bedrock-invocationMetrics"
# Bedrock's counters -> our usage keys (headers of InvokeModel, invocation metrics of streams)
_HEADERS = {
    "x-amzn-bedrock-input-token-count": "input",
    "x-amzn-bedrock-output-token-count": "output",
    "x-amzn-bedrock-cache-read-input-token-count": "cache_read",
    "x-amzn-bedrock-cache-write-input-token-count": "cache_write",
}
_INVOCATION_METRICS = {
    "inputTokenCount": "input",
    "outputTokenCount": "output",
    "cacheReadInputTokenCount": "cache_read",
    "cacheWriteInputTokenCount": "cache_write",
}
# Usage fields in bodies, by family (Converse / Nova, Anthropic, Meta, Titan, OpenAI-style Mistral)
_BODY_USAGE = {
    "inputTokens": "input",
    "outputTokens": "output",
    "cacheReadInputTokens": "cache_read",
    "cacheWriteInputTokens": "cache_write",
    "cacheReadInputTokenCount": "cache_read",
    "cacheWriteInputTokenCount": "cache_write",
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_read_input_tokens": "cache_read",
    "cache_creation_input_tokens": "cache_write",
    "prompt_tokens": "input",
    "completion_tokens": "output",
}
_PROFILE_PREFIXES = ("us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca.")


def split_path(path: str) -> tuple[str, str] | None:
    """(model id, operation) from ``…/model/{modelId}/{operation}``, the id URL-decoded."""
    _, sep, rest = path.rpartition("/model/")
    if not sep:
        return None
    model, slash, operation = rest.rpartition("/")
    if not slash or not model or operation not in _OPERATIONS:
        return None
    return unquote(model), operation


def model_name(model_id: str) -> str:
    """The model or inference profile id inside an ARN (``…:foundation-model/x`` -> ``x``)."""
    if model_id.startswith("arn:"):
        return model_id.rpartition("/")[2] or model_id
    return model_id


def family(model: str) -> str:
    """``anthropic`` for ``us.anthropic.claude-…``: the vendor segment after any profile prefix."""
    name = model.lower()
    for prefix in _PROFILE_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return name.split(".", 1)[0]


def _access_key(request: HttpRequest) -> str | None:
    """The access key id of a SigV4 ``Authorization`` (never the secret, which is not sent)."""
    auth = request.headers.get("authorization", "")
    if auth.startswith("AWS4-"):
        _, sep, rest = auth.partition("Credential=")
        key = rest.split("/", 1)[0].strip()
        return key if sep and key else None
    return bearer(request)  # Bedrock API keys (AWS_BEARER_TOKEN_BEDROCK) are bearer tokens


def _error_type(response: HttpResponse, body: Any) -> str | None:
    """``ThrottlingException`` from ``x-amzn-errortype: ThrottlingException:http://…`` or the body."""
    header = response.headers.get("x-amzn-errortype") if response.headers else None
    if header:
        return header.split(":", 1)[0]
    if isinstance(body, dict):
        for key in ("__type", "code"):
            if isinstance(body.get(key), str) and body[key]:
                return body[key].rpartition("#")[2]
    return None


class _Usage:
    """Counts from the body and from Bedrock's counters; the counters win key by key. ``final``:
    a stream has said its last word on usage (invocation metrics, the ``metadata`` event, or the
    family's last chunk); until then its counts are partial (a stream the app abandoned)."""

    __slots__ = ("bedrock", "body", "final")

    def __init__(self) -> None:
        self.body: dict[str, int] = {}
        self.bedrock: dict[str, int] = {}
        self.final = False

    def read_body(self, usage: Any) -> None:
        if isinstance(usage, dict):
            for field, key in _BODY_USAGE.items():
                value = num(usage.get(field))
                if value is not None:
                    self.body[key] = value

    def read_counters(self, values: Any, names: dict[str, str]) -> None:
        if not values:
            return
        self.final = True
        for field, key in names.items():
            raw = values.get(field)
            value = num(int(raw)) if isinstance(raw, str) and raw.isdigit() else num(raw)
            if value is not None:
                self.bedrock[key] = value

    def write(self, observed: Observed, final: bool = True) -> None:
        """The usage, final; or (``final=False``, a stream cut short) the input counts as known
        and any output count as a floor for the estimate ``calls`` makes of the rest."""
        counts = {**self.body, **self.bedrock}
        if "input" not in counts and "output" not in counts:
            return
        cache_read, cache_write = counts.get("cache_read", 0), counts.get("cache_write", 0)
        set_usage(
            observed.attributes,
            input_tokens=counts.get("input", 0) + cache_read + cache_write if final or "input" in counts else None,
            output_tokens=counts.get("output", 0) if final or "output" in counts else None,
            cache_read=cache_read if "cache_read" in counts else None,
            cache_write=cache_write if "cache_write" in counts else None,
        )
        if final:
            observed.usage_reported = True
        elif "input" in counts:
            observed.input_known = True


def _finish(observed: Observed, reason: Any, usage: _Usage | None = None) -> None:
    """A finish reason; for the families whose last chunk carries both it and the final counts
    (Meta, Titan, Mistral, Cohere, Anthropic's message_delta), pass ``usage`` to mark them final."""
    if isinstance(reason, str) and reason:
        observed.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] = (reason,)
        if usage is not None:
            usage.final = True


def _text(observed: Observed, text: Any) -> None:
    if isinstance(text, str) and text:
        observed.add_text(text)


def _converse_message(body: dict[str, Any], observed: Observed, usage: _Usage) -> None:
    """A Converse response, or an Amazon Nova InvokeModel response (same shape)."""
    for block in dig(body, "output", "message", "content") or ():
        if isinstance(block, dict):
            _text(observed, block.get("text"))
    _finish(observed, body.get("stopReason"))
    usage.read_body(body.get("usage"))


def read_native(chunk: dict[str, Any], observed: Observed, usage: _Usage) -> None:
    """One model-native InvokeModel response or response-stream chunk, any family: the shapes do
    not overlap, so one reader serves them all."""
    attrs = observed.attributes
    usage.read_counters(chunk.get(_METRICS), _INVOCATION_METRICS)
    kind = chunk.get("type")
    if isinstance(kind, str):  # Anthropic Messages (whole message or stream event)
        message = chunk.get("message") if kind == "message_start" else chunk
        if isinstance(message, dict):
            if isinstance(message.get("id"), str):
                attrs[sc.GEN_AI_RESPONSE_ID] = message["id"]
            # message["model"] is not kept: the Bedrock model id (with its inference profile) is what is priced
            _finish(observed, message.get("stop_reason") or dig(message, "delta", "stop_reason"), usage)
            usage.read_body(message.get("usage"))
            for block in message.get("content") or () if kind == "message" else ():
                if isinstance(block, dict):
                    _text(observed, block.get("text"))
        if kind == "content_block_delta":
            _text(observed, dig(chunk, "delta", "text"))
        return
    if "output" in chunk or "stopReason" in chunk:  # Amazon Nova, whole response
        _converse_message(chunk, observed, usage)
        return
    for event in ("messageStart", "contentBlockDelta", "messageStop", "metadata"):  # Nova stream
        if isinstance(chunk.get(event), dict):
            _converse_event(event, chunk[event], observed, usage)
            return
    # Meta Llama
    _read_counts(usage, input=chunk.get("prompt_token_count"), output=chunk.get("generation_token_count"))
    _text(observed, chunk.get("generation"))
    # Amazon Titan text (results[]; stream chunks carry outputText) and embeddings
    _read_counts(usage, input=chunk.get("inputTextTokenCount"), output=chunk.get("totalOutputTextTokenCount"))
    results = [r for r in chunk.get("results") or () if isinstance(r, dict)]
    if results:
        _read_counts(usage, output=sum(num(r.get("tokenCount")) or 0 for r in results))
        for result in results:
            _text(observed, result.get("outputText"))
        _finish(observed, results[-1].get("completionReason"), usage)
    _text(observed, chunk.get("outputText"))
    # Mistral (prompt: outputs[]; chat: OpenAI-style choices[] and usage)
    for output in chunk.get("outputs") or ():
        if isinstance(output, dict):
            _text(observed, output.get("text"))
            _finish(observed, output.get("stop_reason"), usage)
    for choice in chunk.get("choices") or ():
        if isinstance(choice, dict):
            _text(observed, dig(choice, "message", "content") or dig(choice, "delta", "content"))
            _finish(observed, choice.get("finish_reason") or choice.get("stop_reason"), usage)
    usage.read_body(chunk.get("usage"))
    # Cohere (chat text / stream events, and the older generations[])
    if chunk.get("event_type") == "text-generation" or "generation_id" in chunk:
        _text(observed, chunk.get("text"))
    for generation in chunk.get("generations") or ():
        if isinstance(generation, dict):
            _text(observed, generation.get("text"))
            _finish(observed, generation.get("finish_reason"), usage)
    _finish(observed, chunk.get("finish_reason") or chunk.get("completionReason") or chunk.get("stop_reason"), usage)
    if isinstance(chunk.get("id"), str):
        attrs[sc.GEN_AI_RESPONSE_ID] = chunk["id"]


def _read_counts(usage: _Usage, input: Any = None, output: Any = None) -> None:
    for key, value in (("input", num(input)), ("output", num(output))):
        if value is not None:
            usage.body[key] = value


def _converse_event(event: str, payload: dict[str, Any], observed: Observed, usage: _Usage) -> None:
    if event == "contentBlockDelta":
        delta = payload.get("delta")
        if isinstance(delta, dict):
            _text(observed, delta.get("text"))
            _text(observed, dig(delta, "reasoningContent", "text"))
            _text(observed, dig(delta, "toolUse", "input"))
    elif event == "messageStop":
        _finish(observed, payload.get("stopReason"))
    elif event == "metadata":
        usage.read_body(payload.get("usage"))
        usage.final = True


@dataclass
class BedrockAdapter:
    provider: str = "aws.bedrock"

    def matches(self, request: HttpRequest) -> bool:
        return request.method == "POST" and split_path(request.path) is not None

    def api_key(self, request: HttpRequest) -> str | None:
        return _access_key(request)

    def request_attributes(self, request: HttpRequest) -> CallStart | None:
        found = split_path(request.path)
        if found is None:
            return None
        model_id, operation = found
        model = model_name(model_id)
        body = request.json()
        body = body if isinstance(body, dict) else {}
        embedding = "embed" in model.lower()
        if operation.startswith("converse"):
            name = "chat"
        elif embedding:
            name = "embeddings"
        else:
            name = "chat" if "messages" in body or "message" in body else "text_completion"
        prompt = body.get("messages") or body.get("prompt") or body.get("inputText") or body.get("message")
        return CallStart(
            operation=name,
            kind="embedding" if embedding else "llm",
            model=model,
            stream=_OPERATIONS[operation],
            prompt=(
                prompt,
                body.get("system"),
                body.get("texts"),
                body.get("chat_history"),
                billed_json(body, "tools", "toolConfig", "documents"),
            ),
            input_messages=None if embedding else prompt,
        )

    def response_attributes(self, start: CallStart, response: HttpResponse, observed: Observed) -> None:
        body = response.json()
        if response.status >= 400:
            observed.error_type = _error_type(response, body)
            return
        usage = _Usage()
        usage.read_counters(response.headers, _HEADERS)
        if isinstance(body, dict):
            if start.operation == "chat" and "output" in body and "stopReason" in body:
                _converse_message(body, observed, usage)
            else:
                read_native(body, observed, usage)
            attrs = observed.attributes
            if sc.GEN_AI_RESPONSE_ID not in attrs and response.headers and response.headers.get("x-amzn-requestid"):
                attrs[sc.GEN_AI_RESPONSE_ID] = response.headers["x-amzn-requestid"]
        usage.write(observed)

    def stream_observer(self, start: CallStart, observed: Observed) -> _BedrockStream:
        return _BedrockStream(start, observed)


class _BedrockStream:
    """An AWS event stream. ConverseStream: messageStart, contentBlockDelta…, messageStop and a
    ``metadata`` event with the usage. InvokeModelWithResponseStream: ``chunk`` events whose
    ``bytes`` are base64 model-native JSON, the last one with Bedrock's invocation metrics.
    Text deltas are held and read only if no usage came (or content capture is on).

    A stream that ends before its final usage (the app stopped reading) keeps the exact input
    count if one came (Anthropic's message_start, Meta's first chunk); ``calls`` estimates the
    output from the text received, never below a partial count, and marks the span estimated."""

    __slots__ = ("_deltas", "_usage", "observed")

    def __init__(self, start: CallStart, observed: Observed) -> None:
        self.observed = observed
        self._usage = _Usage()
        self._deltas = HeldEvents(self._delta)

    def on_event(self, event: str, data: str) -> None:
        if event == "contentBlockDelta":
            self._deltas.add(data)
        elif event == "chunk":
            chunk = _chunk(data)
            if chunk is not None:
                read_native(chunk, self.observed, self._usage)
        elif event.startswith("exception:"):
            self.observed.error_type = event.partition(":")[2] or "stream_error"
        else:
            payload = event_json(data)
            if isinstance(payload, dict):
                _converse_event(event, payload, self.observed, self._usage)

    def close(self) -> None:
        observed = self.observed
        if self._usage.final:
            self._usage.write(observed)
            if observed.output_text is not None:
                self._deltas.release()
            else:
                self._deltas.discard()
            return
        self._deltas.release()  # partial: the text received is what the output estimate counts
        self._usage.write(observed, final=False)  # calls estimates the rest, and says so

    def _delta(self, payload: dict[str, Any]) -> None:
        _converse_event("contentBlockDelta", payload, self.observed, self._usage)


def _chunk(data: str) -> dict[str, Any] | None:
    """The model-native JSON inside a response-stream ``chunk`` event."""
    payload = event_json(data)
    encoded = payload.get("bytes") if isinstance(payload, dict) else None
    if not isinstance(encoded, str):
        return None
    try:
        decoded = parse_json(base64.b64decode(encoded))
    except (binascii.Error, ValueError):
        return None
    return decoded if isinstance(decoded, dict) else None
