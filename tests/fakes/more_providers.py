"""AWS Bedrock runtime, Cohere v2 and Ollama's native API for ``FakeProviders``, on their wire formats.

* Bedrock (``/bedrock/model/{modelId}/{converse|converse-stream|invoke|invoke-with-response-stream}``,
  boto3 ``endpoint_url=fake.bedrock_base``): Converse JSON; event streams in AWS's binary framing
  (``tests.fakes.eventstream``); InvokeModel bodies in each family's native shape (Anthropic, Meta,
  Amazon Nova / Titan text / Titan embeddings, Mistral, Cohere command / embed) with the
  ``x-amzn-bedrock-*-token-count`` headers; response streams of base64 ``chunk`` events whose last
  one carries ``amazon-bedrock-invocationMetrics``. Errors as Bedrock sends them
  (``x-amzn-errortype`` header, ``{"message": …}`` body).
  Knobs: ``fake.bedrock_usage_headers`` / ``fake.bedrock_stream_metrics`` (False: usage only in the
  body), ``fake.bedrock_stream_exception`` (an exception message after the first text event).
* Cohere (``/cohere/v2/chat``, ``/cohere/v2/embed``): JSON, and SSE streams (message-start …
  message-end with the usage); usage with ``billed_units`` and ``tokens``.
* Ollama (``/api/…`` or ``/ollama/api/…``: chat, generate, embed): JSON, or NDJSON streams (the
  default, as on Ollama) ending in a ``done: true`` line with ``prompt_eval_count`` / ``eval_count``.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from tests.fakes import eventstream as es
from tests.fakes import payloads as p

if TYPE_CHECKING:
    from tests.fakes.providers import RecordedRequest, _Reply

USAGE = {
    # Bedrock counts exclude the cache (totalTokens = input + output + cacheRead + cacheWrite)
    "bedrock": {"input_tokens": 11, "output_tokens": 7, "cache_read_tokens": 3, "cache_write_tokens": 5},
    # billed_units is what Cohere bills; tokens adds its prompt template
    "cohere": {"billed_input_tokens": 5, "billed_output_tokens": 9, "input_tokens": 71, "output_tokens": 9},
    "ollama": {"prompt_eval_count": 26, "eval_count": 13},
}
EVENTSTREAM = "application/vnd.amazon.eventstream"
_BEDROCK_ERRORS = {
    400: ("ValidationException", "Malformed input request, please reformat your input and try again."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The server encountered an internal error."),
}
_PREFIXES = ("us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca.")


def bedrock_family(model_id: str) -> str:
    """``anthropic``, ``meta``, ``nova``, ``titan-text``, ``titan-embed``, ``mistral``, ``cohere``,
    ``cohere-embed`` for a model id, inference profile id or ARN."""
    name = model_id.rpartition("/")[2] if model_id.startswith("arn:") else model_id
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
    vendor, _, model = name.partition(".")
    if vendor == "amazon":
        if model.startswith("nova"):
            return "nova"
        return "titan-embed" if "embed" in model else "titan-text"
    if vendor == "cohere":
        return "cohere-embed" if "embed" in model else "cohere"
    return vendor


def bedrock_error(status: int, message: str | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    kind, text = _BEDROCK_ERRORS.get(status, _BEDROCK_ERRORS[500])
    headers = {"x-amzn-errortype": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    return {"message": message or text}, headers


def _converse_usage(u: dict[str, int]) -> dict[str, int]:
    usage = {"inputTokens": u["input_tokens"], "outputTokens": u["output_tokens"]}
    total = u["input_tokens"] + u["output_tokens"] + u["cache_read_tokens"] + u["cache_write_tokens"]
    usage["totalTokens"] = total
    if u["cache_read_tokens"] or u["cache_write_tokens"]:
        usage["cacheReadInputTokens"] = u["cache_read_tokens"]
        usage["cacheWriteInputTokens"] = u["cache_write_tokens"]
    return usage


def converse_response(text: str, u: dict[str, int]) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": _converse_usage(u),
        "metrics": {"latencyMs": 212},
    }


def converse_stream(pieces: list[str], u: dict[str, int], exception: str | None = None) -> list[bytes]:
    """ConverseStream's event messages (each with Bedrock's ``p`` padding field)."""
    events = [es.event("messageStart", {"p": "abcdefgh", "role": "assistant"})]
    for i, piece in enumerate(pieces):
        events.append(es.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}, "p": "abcd"}))
        if exception and i == 0:
            return [*events, es.exception(exception, "The model stream failed.")]
    events.append(es.event("contentBlockStop", {"contentBlockIndex": 0, "p": "abcdefghij"}))
    events.append(es.event("messageStop", {"p": "abcdef", "stopReason": "end_turn"}))
    metadata = {"metrics": {"latencyMs": 305}, "p": "abc", "usage": _converse_usage(u)}
    events.append(es.event("metadata", metadata))
    return events


def invocation_metrics(u: dict[str, int]) -> dict[str, int]:
    return {
        "inputTokenCount": u["input_tokens"],
        "outputTokenCount": u["output_tokens"],
        "invocationLatency": 411,
        "firstByteLatency": 120,
        "cacheReadInputTokenCount": u["cache_read_tokens"],
        "cacheWriteInputTokenCount": u["cache_write_tokens"],
    }


def usage_headers(family: str, u: dict[str, int]) -> dict[str, str]:
    """The token-count headers InvokeModel answers with (embeddings: input only)."""
    headers = {"x-amzn-bedrock-input-token-count": str(u["input_tokens"]), "x-amzn-bedrock-invocation-latency": "411"}
    if not family.endswith("embed"):
        headers["x-amzn-bedrock-output-token-count"] = str(u["output_tokens"])
    if u["cache_read_tokens"] or u["cache_write_tokens"]:
        headers["x-amzn-bedrock-cache-read-input-token-count"] = str(u["cache_read_tokens"])
        headers["x-amzn-bedrock-cache-write-input-token-count"] = str(u["cache_write_tokens"])
    return headers


def _anthropic_usage(u: dict[str, int], output: int | None = None) -> dict[str, int]:
    return {
        "input_tokens": u["input_tokens"],
        "cache_creation_input_tokens": u["cache_write_tokens"],
        "cache_read_input_tokens": u["cache_read_tokens"],
        "output_tokens": u["output_tokens"] if output is None else output,
    }


def invoke_body(family: str, model: str, rid: str, text: str, u: dict[str, int], body: dict[str, Any]) -> Any:
    """A model-native InvokeModel response body."""
    if family == "anthropic":
        return {
            "id": f"msg_bdrk_{rid}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": _anthropic_usage(u),
        }
    if family == "meta":
        return {
            "generation": text,
            "prompt_token_count": u["input_tokens"],
            "generation_token_count": u["output_tokens"],
            "stop_reason": "stop",
        }
    if family == "nova":
        usage = {
            "inputTokens": u["input_tokens"],
            "outputTokens": u["output_tokens"],
            "totalTokens": u["input_tokens"] + u["output_tokens"],
            "cacheReadInputTokenCount": u["cache_read_tokens"],
            "cacheWriteInputTokenCount": u["cache_write_tokens"],
        }
        content = [{"text": text}]
        return {
            "output": {"message": {"content": content, "role": "assistant"}},
            "stopReason": "end_turn",
            "usage": usage,
        }
    if family == "titan-text":
        result = {"tokenCount": u["output_tokens"], "outputText": text, "completionReason": "FINISH"}
        return {"inputTextTokenCount": u["input_tokens"], "results": [result]}
    if family == "titan-embed":
        return {
            "embedding": [0.1, -0.2, 0.3],
            "embeddingsByType": {"float": [0.1, -0.2, 0.3]},
            "inputTextTokenCount": u["input_tokens"],
        }
    if family == "mistral":
        if "messages" in body:
            message = {"role": "assistant", "content": text}
            return {
                "id": rid,
                "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            }
        return {"outputs": [{"text": text, "stop_reason": "stop"}]}
    if family == "cohere":
        return {
            "response_id": rid,
            "text": text,
            "generation_id": f"gen-{rid}",
            "chat_history": [],
            "finish_reason": "COMPLETE",
        }
    if family == "cohere-embed":
        texts = body.get("texts") or []
        return {
            "embeddings": [[0.1, 0.2] for _ in texts],
            "id": rid,
            "response_type": "embeddings_floats",
            "texts": texts,
        }
    raise ValueError(f"The provided model identifier is invalid: {model}")


def invoke_stream(family: str, model: str, rid: str, pieces: list[str], u: dict[str, int], metrics: bool) -> list[dict]:
    """The model-native chunks of an InvokeModelWithResponseStream, the last with Bedrock's metrics."""
    chunks: list[dict[str, Any]]
    if family == "anthropic":
        start = invoke_body("anthropic", model, rid, "", u, {})
        start.update(content=[], stop_reason=None, usage=_anthropic_usage(u, output=1))
        chunks = [
            {"type": "message_start", "message": start},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            *({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}} for t in pieces),
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": u["output_tokens"]},
            },
            {"type": "message_stop"},
        ]
    elif family == "meta":
        chunks = [
            {
                "generation": t,
                "prompt_token_count": u["input_tokens"] if i == 0 else None,
                "generation_token_count": i + 1,
                "stop_reason": None,
            }
            for i, t in enumerate(pieces)
        ]
        chunks.append(
            {
                "generation": "",
                "prompt_token_count": None,
                "generation_token_count": u["output_tokens"],
                "stop_reason": "stop",
            }
        )
    elif family == "nova":
        chunks = [
            {"messageStart": {"role": "assistant"}},
            *({"contentBlockDelta": {"delta": {"text": t}, "contentBlockIndex": 0}} for t in pieces),
            {"contentBlockStop": {"contentBlockIndex": 0}},
            {"messageStop": {"stopReason": "end_turn"}},
            {
                "metadata": {
                    "usage": {"inputTokens": u["input_tokens"], "outputTokens": u["output_tokens"]},
                    "metrics": {},
                    "trace": {},
                }
            },
        ]
    elif family == "titan-text":
        chunks = [
            {
                "outputText": t,
                "index": 0,
                "totalOutputTextTokenCount": i + 1,
                "completionReason": None,
                "inputTextTokenCount": u["input_tokens"] if i == 0 else None,
            }
            for i, t in enumerate(pieces)
        ]
        chunks[-1].update(totalOutputTextTokenCount=u["output_tokens"], completionReason="FINISH")
    elif family == "mistral":
        chunks = [{"outputs": [{"text": t, "stop_reason": None}]} for t in pieces]
        chunks.append({"outputs": [{"text": "", "stop_reason": "stop"}]})
    elif family == "cohere":
        chunks = [{"is_finished": False, "event_type": "text-generation", "text": t} for t in pieces]
        response = {
            "response_id": rid,
            "text": "".join(pieces),
            "generation_id": f"gen-{rid}",
            "finish_reason": "COMPLETE",
        }
        chunks.append(
            {"is_finished": True, "event_type": "stream-end", "response": response, "finish_reason": "COMPLETE"}
        )
    else:
        raise ValueError(f"The provided model identifier is invalid: {model}")
    if metrics:
        chunks[-1]["amazon-bedrock-invocationMetrics"] = invocation_metrics(u)
    return chunks


# --- Cohere ----------------------------------------------------------------------------------------


def cohere_usage(u: dict[str, int], embed: bool = False) -> dict[str, Any]:
    if embed:
        return {"billed_units": {"input_tokens": u["billed_input_tokens"]}}
    return {
        "billed_units": {"input_tokens": u["billed_input_tokens"], "output_tokens": u["billed_output_tokens"]},
        "tokens": {"input_tokens": u["input_tokens"], "output_tokens": u["output_tokens"]},
    }


def cohere_chat(rid: str, text: str, u: dict[str, int]) -> dict[str, Any]:
    return {
        "id": rid,
        "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
        "finish_reason": "COMPLETE",
        "usage": cohere_usage(u),
    }


def cohere_chat_events(rid: str, pieces: list[str], u: dict[str, int]) -> list[tuple[str, dict[str, Any]]]:
    message = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}
    return [
        ("message-start", {"id": rid, "type": "message-start", "delta": {"message": message}}),
        (
            "content-start",
            {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}},
        ),
        *(
            ("content-delta", {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": t}}}})
            for t in pieces
        ),
        ("content-end", {"type": "content-end", "index": 0}),
        ("message-end", {"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": cohere_usage(u)}}),
    ]


def cohere_embed(rid: str, texts: list[str], types: list[str], u: dict[str, int]) -> dict[str, Any]:
    return {
        "id": rid,
        "embeddings": {t: [[0.25, -0.5, 0.125] for _ in texts] for t in types or ["float"]},
        "texts": texts,
        "meta": {"api_version": {"version": "2"}, **cohere_usage(u, embed=True)},
        "response_type": "embeddings_by_type",
    }


def cohere_v1_chat(rid: str, text: str, u: dict[str, int]) -> dict[str, Any]:
    """v1 chat: the text at the top, usage in ``meta``."""
    return {
        "response_id": rid,
        "text": text,
        "generation_id": f"gen-{rid}",
        "chat_history": [],
        "finish_reason": "COMPLETE",
        "meta": {"api_version": {"version": "1"}, **cohere_usage(u)},
    }


def cohere_v1_lines(rid: str, pieces: list[str], u: dict[str, int]) -> list[dict[str, Any]]:
    """v1 chat stream: JSON lines (``application/stream+json``) from stream-start to stream-end."""
    end = cohere_v1_chat(rid, "".join(pieces), u)
    return [
        {"is_finished": False, "event_type": "stream-start", "generation_id": f"gen-{rid}"},
        *({"is_finished": False, "event_type": "text-generation", "text": t} for t in pieces),
        {"is_finished": True, "event_type": "stream-end", "response": end, "finish_reason": "COMPLETE"},
    ]


# --- Ollama ----------------------------------------------------------------------------------------


def _ollama_done(u: dict[str, int]) -> dict[str, Any]:
    return {
        "done": True,
        "done_reason": "stop",
        "total_duration": 4_883_583_458,
        "load_duration": 1_334_875,
        "prompt_eval_count": u["prompt_eval_count"],
        "prompt_eval_duration": 342_546_000,
        "eval_count": u["eval_count"],
        "eval_duration": 4_535_599_000,
    }


def ollama_lines(op: str, model: str, pieces: list[str], u: dict[str, int]) -> list[dict[str, Any]]:
    created = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    key = "message" if op == "chat" else "response"

    def body(text: str) -> Any:
        return {"role": "assistant", "content": text} if op == "chat" else text

    lines: list[dict[str, Any]] = [{"model": model, "created_at": created, key: body(t), "done": False} for t in pieces]
    lines.append({"model": model, "created_at": created, key: body(""), **_ollama_done(u)})
    return lines


def ollama_response(op: str, model: str, text: str, u: dict[str, int]) -> dict[str, Any]:
    created = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    key = "message" if op == "chat" else "response"
    body: Any = {"role": "assistant", "content": text} if op == "chat" else text
    return {"model": model, "created_at": created, key: body, **_ollama_done(u)}


def ollama_embed(model: str, inputs: list[Any], u: dict[str, int]) -> dict[str, Any]:
    return {
        "model": model,
        "embeddings": [[0.01, -0.02, 0.03] for _ in inputs],
        "total_duration": 14_143_917,
        "load_duration": 1_019_500,
        "prompt_eval_count": u["prompt_eval_count"],
    }


class MoreProviders:
    """The endpoints, mixed into ``FakeProviders`` (which supplies the helpers used here)."""

    bedrock_base = property(lambda self: self.url + "/bedrock", doc="boto3 ``endpoint_url=...``")
    cohere_base = property(lambda self: self.url + "/cohere", doc="``cohere.ClientV2(base_url=...)``")
    ollama_base = property(lambda self: self.url + "/ollama", doc="``ollama.Client(host=...)``")

    def _more_reset(self) -> None:
        self.bedrock_usage_headers = True
        self.bedrock_stream_metrics = True
        self.bedrock_stream_exception: str | None = None

    def _more_routes(self) -> list[tuple[str, str, Any]]:
        ops = "converse|converse-stream|invoke|invoke-with-response-stream"
        return [
            ("POST", rf"/bedrock/model/(?P<model>[^/]+)/(?P<op>{ops})", self._bedrock),
            ("POST", r"/cohere/(?P<version>v1|v2)/(?P<op>chat|embed)", self._cohere),
            ("POST", r"(?:/ollama)?/api/(?P<op>chat|generate|embed)", self._ollama),
            ("POST", r"(?:/ollama)?/v1/chat/completions", self._openai_chat),  # Ollama's OpenAI-compatible API
        ]

    def _more_error(self, provider: str, status: int, message: str | None) -> _Reply | None:
        from tests.fakes.providers import _json_reply

        if provider == "bedrock":
            body, headers = bedrock_error(status, message)
            headers["x-amzn-requestid"] = f"fake-{self._next_id()}"
            return _json_reply(body, status, headers)
        if provider == "cohere":
            return _json_reply({"id": f"fake-{self._next_id()}", "message": message or f"fake http_{status}"}, status)
        if provider in ("ollama", "api"):
            return _json_reply({"error": message or f"fake http_{status}"}, status)
        return None

    def _bedrock(self, req: RecordedRequest, params: dict[str, str]) -> _Reply:
        from tests.fakes.providers import _json_reply, _Reply

        body = self._body(req)
        model_id, op = unquote(params["model"]), params["op"]
        family = bedrock_family(model_id)
        u = self._usage_for("bedrock", req)
        rid = f"fake-{self._next_id()}"
        headers = {"x-amzn-requestid": rid}
        pieces = self._pieces("bedrock", req)
        if op == "converse":
            if not isinstance(body.get("messages"), list):
                raise ValueError("Malformed input request: messages is required")
            return _json_reply(converse_response(p.reply_text("bedrock"), u), headers=headers)
        if op == "converse-stream":
            events = converse_stream(pieces, u, self.bedrock_stream_exception)
            return _Reply(content_type=EVENTSTREAM, events=events, headers=headers)
        native_model = "claude-3-5-haiku-20241022" if family == "anthropic" else model_id
        if op == "invoke":
            result = invoke_body(family, native_model, rid, p.reply_text("bedrock"), u, body)
            if self.bedrock_usage_headers:
                headers.update(usage_headers(family, u))
            return _json_reply(result, headers=headers)
        chunks = invoke_stream(family, native_model, rid, pieces, u, self.bedrock_stream_metrics)
        events = [es.chunk(c) for c in chunks]
        if self.bedrock_stream_exception:
            events = [events[0], es.exception(self.bedrock_stream_exception, "The model stream failed.")]
        return _Reply(content_type=EVENTSTREAM, events=events, headers=headers)

    def _cohere(self, req: RecordedRequest, params: dict[str, str]) -> _Reply:
        from tests.fakes.providers import _json_reply, _Reply, _sse_reply

        body = self._body(req)
        if params["version"] == "v2" and not body.get("model"):
            raise ValueError("invalid request: model must be specified")
        u = self._usage_for("cohere", req)
        rid = f"fake-{self._next_id()}"
        headers = {"x-request-id": rid, "num_tokens": str(u["billed_input_tokens"])}
        if params["op"] == "embed":
            texts = body.get("texts") or []
            return _json_reply(cohere_embed(rid, texts, body.get("embedding_types") or [], u), headers=headers)
        if params["version"] == "v1":
            if not body.get("stream"):
                return _json_reply(cohere_v1_chat(rid, p.reply_text("cohere"), u), headers=headers)
            lines = cohere_v1_lines(rid, self._pieces("cohere", req), u)
            events = [json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in lines]
            return _Reply(content_type="application/stream+json", events=events, headers=headers)
        if body.get("stream"):
            events = cohere_chat_events(rid, self._pieces("cohere", req), u)
            return _sse_reply([p.sse(data, event) for event, data in events], headers)
        return _json_reply(cohere_chat(rid, p.reply_text("cohere"), u), headers=headers)

    def _ollama(self, req: RecordedRequest, params: dict[str, str]) -> _Reply:
        from tests.fakes.providers import _json_reply, _Reply

        body = self._body(req)
        model, op = body.get("model"), params["op"]
        if not model:
            raise ValueError("model is required")
        if model.startswith("missing"):
            return _json_reply({"error": f"model '{model}' not found"}, 404)
        u = self._usage_for("ollama", req)
        if op == "embed":
            raw = body.get("input")
            return _json_reply(ollama_embed(model, raw if isinstance(raw, list) else [raw], u))
        if body.get("stream", True):  # Ollama streams unless told not to
            lines = ollama_lines(op, model, self._pieces("ollama", req), u)
            events = [json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in lines]
            return _Reply(content_type="application/x-ndjson", events=events)
        return _json_reply(ollama_response(op, model, p.reply_text("ollama"), u))
