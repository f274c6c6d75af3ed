"""Pure builders of provider response bodies and SSE events, shaped like the real wire formats.

Nothing here does I/O, so the shapes can be read (and diffed against provider docs) in one place;
``tests.fakes.providers`` only routes requests to these functions and writes the bytes.

The default usage numbers mirror the fake server used for ``/work/shared/GENAI_SPANS.md``
("Method [observed]"), so spans recorded against these fakes can be compared with that report.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

# --- Default usage (per provider key; ``FakeProviders.set_usage`` overrides the same keys) -------

#: Chat Completions, legacy Completions, Responses API and Azure OpenAI.
#: total = prompt + completion; cached is a subset of prompt, reasoning a subset of completion.
OPENAI_USAGE: dict[str, int] = {"prompt_tokens": 11, "completion_tokens": 7, "cached_tokens": 4, "reasoning_tokens": 2}
#: Embeddings: only input tokens exist.
OPENAI_EMBEDDINGS_USAGE: dict[str, int] = {"prompt_tokens": 8}
#: gpt-image-1 (dall-e-2/3 responses carry no usage): input = text + image tokens.
#: 272 output tokens is OpenAI's figure for one low-quality 1024x1024 image.
OPENAI_IMAGES_USAGE: dict[str, int] = {"text_tokens": 20, "image_tokens": 0, "output_tokens": 272}
#: Anthropic ``input_tokens`` EXCLUDES the cache counts (that is Anthropic's meaning).
ANTHROPIC_USAGE: dict[str, int] = {
    "input_tokens": 9,
    "output_tokens": 6,
    "cache_creation_input_tokens": 5,
    "cache_read_input_tokens": 3,
}
#: Gemini: totalTokenCount = prompt + candidates + thoughts. Zero counts are omitted on the
#: wire (proto3 JSON), as the real API does.
GEMINI_USAGE: dict[str, int] = {
    "promptTokenCount": 12,
    "candidatesTokenCount": 8,
    "cachedContentTokenCount": 0,
    "thoughtsTokenCount": 0,
}
#: Groq (OpenAI-compatible): the counts of a recorded Groq stream whose usage came in ``x_groq.usage``.
GROQ_USAGE: dict[str, int] = {"prompt_tokens": 18, "completion_tokens": 73}
#: Serper bills 1 credit per query (2 when more than 10 results are asked for).
SERPER_USAGE: dict[str, int] = {"credits": 1}

DEFAULT_USAGE: dict[str, dict[str, int]] = {
    "openai": OPENAI_USAGE,
    "openai_embeddings": OPENAI_EMBEDDINGS_USAGE,
    "openai_images": OPENAI_IMAGES_USAGE,
    "anthropic": ANTHROPIC_USAGE,
    "gemini": GEMINI_USAGE,
    "groq": GROQ_USAGE,
    "serper": SERPER_USAGE,
}

#: Aliases the real APIs answer with a dated snapshot in the response ``model``.
MODEL_SNAPSHOTS: dict[str, str] = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "o3-mini": "o3-mini-2025-01-31",
    "claude-3-5-haiku-latest": "claude-3-5-haiku-20241022",
    "claude-3-5-sonnet-latest": "claude-3-5-sonnet-20241022",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
}
#: Azure answers with the deployment's underlying model; used when the deployment is unknown.
AZURE_DEFAULT_MODEL = "gpt-4o-2024-08-06"


def resolve_model(model: str) -> str:
    """The model name the provider would put in its response for a requested ``model``."""
    return MODEL_SNAPSHOTS.get(model, model)


def reply_text(provider: str) -> str:
    """The fixed assistant reply of a provider (``azure`` answers like ``openai``)."""
    return f"Hello from the fake {provider} server."


def split_text(text: str, n: int) -> list[str]:
    """Split ``text`` into ``n`` non-empty consecutive pieces (fewer if the text is shorter)."""
    n = max(1, min(n, len(text)))
    return [text[i * len(text) // n : (i + 1) * len(text) // n] for i in range(n)]


# --- SSE framing ---------------------------------------------------------------------------------


def sse(data: Any, event: str | None = None, sep: str = "\n") -> bytes:
    """One server-sent event. ``data`` is JSON-encoded unless it is already a string."""
    body = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}{sep}" if event else ""
    return f"{head}data: {body}{sep}{sep}".encode()


# --- OpenAI --------------------------------------------------------------------------------------


def openai_chat_usage(u: dict[str, int]) -> dict[str, Any]:
    """Chat Completions ``usage`` with the detail objects the current API always sends."""
    return {
        "prompt_tokens": u["prompt_tokens"],
        "completion_tokens": u["completion_tokens"],
        "total_tokens": u["prompt_tokens"] + u["completion_tokens"],
        "prompt_tokens_details": {"cached_tokens": u["cached_tokens"], "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": u["reasoning_tokens"],
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def openrouter_usage(u: dict[str, int], cost: float) -> dict[str, Any]:
    """OpenRouter's Chat Completions ``usage``: OpenAI's fields plus what the call cost in USD
    (``cost``, in credits = USD) and ``cost_details``, as https://openrouter.ai/docs/use-cases/usage-accounting
    shows them."""
    usage = openai_chat_usage(u)
    usage["cost"] = cost
    usage["is_byok"] = False
    usage["cost_details"] = {"upstream_inference_cost": None}
    return usage


def openai_legacy_usage(u: dict[str, int]) -> dict[str, int]:
    """Legacy Completions ``usage`` (no detail objects)."""
    return {
        "prompt_tokens": u["prompt_tokens"],
        "completion_tokens": u["completion_tokens"],
        "total_tokens": u["prompt_tokens"] + u["completion_tokens"],
    }


def openai_chat_completion(
    *, id: str, model: str, text: str, usage: dict[str, int], created: int, azure: bool = False
) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` object."""
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
        "logprobs": None,
        "finish_reason": "stop",
    }
    body: dict[str, Any] = {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": openai_chat_usage(usage),
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }
    if azure:  # Azure adds content-filter annotations to every answer.
        choice["content_filter_results"] = {}
        body["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": {}}]
    return body


def openai_chat_chunks(
    *,
    id: str,
    model: str,
    pieces: list[str],
    usage: dict[str, int] | None,
    created: int,
    azure: bool = False,
    continuous: bool = False,
) -> list[dict[str, Any]]:
    """``chat.completion.chunk`` objects: role chunk, one per piece, finish chunk, then the usage chunk
    (``choices: []``) only when ``usage`` is given, i.e. the request had ``stream_options.include_usage``.
    With include_usage every other chunk carries ``"usage": null``, as OpenAI sends it; with
    ``continuous`` (vLLM's ``stream_options.continuous_usage_stats``) it carries the running
    usage instead: the prompt's count and the completion tokens so far (a piece a token, at most the total)."""

    def chunk(choices: list[dict[str, Any]]) -> dict[str, Any]:
        c: dict[str, Any] = {
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
            "choices": choices,
        }
        if usage is not None:
            c["usage"] = None
        return c

    def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    chunks = []
    if azure:  # Azure's first chunk has no choices, only the prompt filter results.
        first = chunk([])
        first["model"] = ""
        first["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": {}}]
        chunks.append(first)
    chunks.append(chunk([choice({"role": "assistant", "content": "", "refusal": None})]))
    chunks += [chunk([choice({"content": p})]) for p in pieces]
    chunks.append(chunk([choice({}, "stop")]))
    if usage is not None and continuous:
        for done, c in enumerate(chunks[1 if azure else 0 :]):
            so_far = min(done, usage["completion_tokens"]) if c is not chunks[-1] else usage["completion_tokens"]
            c["usage"] = {"prompt_tokens": usage["prompt_tokens"], "completion_tokens": so_far}
            c["usage"]["total_tokens"] = usage["prompt_tokens"] + so_far
    if usage is not None:
        last = chunk([])
        last["usage"] = openai_chat_usage(usage)
        chunks.append(last)
    return chunks


def groq_usage(u: dict[str, int]) -> dict[str, Any]:
    """Groq's ``usage``: OpenAI's counts plus its queue and compute timings."""
    return {
        "queue_time": 0.037,
        "prompt_tokens": u["prompt_tokens"],
        "prompt_time": 0.0007,
        "completion_tokens": u["completion_tokens"],
        "completion_time": 0.46,
        "total_tokens": u["prompt_tokens"] + u["completion_tokens"],
        "total_time": 0.4607,
    }


def groq_chat_completion(*, id: str, model: str, text: str, usage: dict[str, int], created: int) -> dict[str, Any]:
    """Groq's non-streaming ``chat.completion``: top-level ``usage`` and an ``x_groq`` request id."""
    body = openai_chat_completion(
        id=id, model=model, text=text, usage={**usage, "cached_tokens": 0, "reasoning_tokens": 0}, created=created
    )
    body.update(usage=groq_usage(usage), x_groq={"id": f"req_{id}"}, service_tier="on_demand", usage_breakdown=None)
    return body


def groq_chat_chunks(
    *, id: str, model: str, pieces: list[str], usage: dict[str, int], created: int, include_usage: bool = False
) -> list[dict[str, Any]]:
    """A Groq stream as recorded: the first chunk carries ``x_groq.id``; the last one carries the
    finish reason and the final usage in ``x_groq.usage`` (sent whether or not the request asked
    for ``stream_options.include_usage``; with it, a top-level usage chunk follows too)."""

    def chunk(choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_179b0f92c9",
            "choices": choices,
        }

    def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    first = chunk([choice({"role": "assistant", "content": ""})])
    first["x_groq"] = {"id": f"req_{id}"}
    last = chunk([choice({}, "stop")])
    last["x_groq"] = {"id": f"req_{id}", "usage": groq_usage(usage)}
    chunks = [first, *(chunk([choice({"content": p})]) for p in pieces), last]
    if include_usage:
        tail = chunk([])
        tail["usage"] = groq_usage(usage)
        chunks.append(tail)
    return chunks


def azure_content_filter_error() -> dict[str, Any]:
    """What Azure OpenAI answers when its content filter blocks a prompt (seen with HTTP 200 too)."""
    category = {"filtered": False, "severity": "safe"}
    return {
        "error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management "
            "policy. Please modify your prompt and retry.",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": {
                    "hate": category,
                    "self_harm": category,
                    "sexual": category,
                    "violence": {"filtered": True, "severity": "medium"},
                },
            },
        }
    }


def openai_completion(*, id: str, model: str, text: str, usage: dict[str, int], created: int) -> dict[str, Any]:
    """A legacy ``text_completion`` object."""
    return {
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": "stop"}],
        "usage": openai_legacy_usage(usage),
        "system_fingerprint": "fp_fake",
    }


def openai_completion_chunks(
    *, id: str, model: str, pieces: list[str], usage: dict[str, int] | None, created: int
) -> list[dict[str, Any]]:
    """Legacy Completions stream chunks; the last piece carries ``finish_reason``, then the usage chunk
    (``choices: []``) when include_usage was asked for."""
    chunks = []
    for i, p in enumerate(pieces):
        finish = "stop" if i == len(pieces) - 1 else None
        chunks.append(
            {
                "id": id,
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [{"text": p, "index": 0, "logprobs": None, "finish_reason": finish}],
                "system_fingerprint": "fp_fake",
            }
        )
    if usage is not None:
        chunks.append({**chunks[-1], "choices": [], "usage": openai_legacy_usage(usage)})
    return chunks


def openai_responses_usage(u: dict[str, int]) -> dict[str, Any]:
    """Responses API ``usage``: the same counts as Chat Completions under the Responses names."""
    return {
        "input_tokens": u["prompt_tokens"],
        "input_tokens_details": {"cached_tokens": u["cached_tokens"]},
        "output_tokens": u["completion_tokens"],
        "output_tokens_details": {"reasoning_tokens": u["reasoning_tokens"]},
        "total_tokens": u["prompt_tokens"] + u["completion_tokens"],
    }


def _response_message(msg_id: str, text: str, status: str) -> dict[str, Any]:
    content = (
        [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if status == "completed" else []
    )
    return {"id": msg_id, "type": "message", "status": status, "role": "assistant", "content": content}


def openai_response(
    *, id: str, msg_id: str, model: str, text: str, usage: dict[str, int] | None, created: int
) -> dict[str, Any]:
    """A Responses API ``response`` object; ``usage=None`` gives the in-progress shape of stream events."""
    done = usage is not None
    return {
        "id": id,
        "object": "response",
        "created_at": created,
        "status": "completed" if done else "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": [_response_message(msg_id, text, "completed")] if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": openai_responses_usage(usage) if done else None,
        "user": None,
        "metadata": {},
    }


def openai_response_events(
    *, id: str, msg_id: str, model: str, pieces: list[str], usage: dict[str, int], created: int
) -> list[tuple[str, dict[str, Any]]]:
    """``(event name, data)`` pairs of a Responses API stream, ending with ``response.completed``
    (the only event carrying ``response.usage``). Each data has ``type`` = event name and a
    ``sequence_number``, as the real API sends them."""
    text = "".join(pieces)
    in_progress = openai_response(id=id, msg_id=msg_id, model=model, text=text, usage=None, created=created)
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    loc = {"item_id": msg_id, "output_index": 0, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": in_progress},
        {"type": "response.in_progress", "response": in_progress},
        {"type": "response.output_item.added", "output_index": 0, "item": _response_message(msg_id, "", "in_progress")},
        {"type": "response.content_part.added", **loc, "part": {**part, "text": ""}},
        *({"type": "response.output_text.delta", **loc, "delta": p, "logprobs": []} for p in pieces),
        {"type": "response.output_text.done", **loc, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **loc, "part": part},
        {"type": "response.output_item.done", "output_index": 0, "item": _response_message(msg_id, text, "completed")},
        {
            "type": "response.completed",
            "response": openai_response(id=id, msg_id=msg_id, model=model, text=text, usage=usage, created=created),
        },
    ]
    return [(e["type"], {**e, "sequence_number": i}) for i, e in enumerate(events)]


def _fake_vector(seed: int, dims: int = 8) -> list[float]:
    return [round(math.sin(seed + i), 6) for i in range(dims)]


def openai_embeddings(*, model: str, inputs: list[Any], encoding_format: str, usage: dict[str, int]) -> dict[str, Any]:
    """An embeddings ``list``; ``encoding_format=base64`` (the SDK's default) packs little-endian float32s."""
    data = []
    for i in range(len(inputs)):
        vec = _fake_vector(i)
        emb: Any = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode() if encoding_format == "base64" else vec
        data.append({"object": "embedding", "index": i, "embedding": emb})
    n = usage["prompt_tokens"]
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": n, "total_tokens": n}}


#: A valid 1x1 transparent PNG, served for generated-image URLs and returned as ``b64_json``.
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


def openai_images(
    *, model: str, n: int, response_format: str, prompt: str, urls: list[str], usage: dict[str, int], created: int
) -> dict[str, Any]:
    """An image generation response. dall-e-2/3 return ``url`` (default) or ``b64_json`` and no usage;
    gpt-image-* always return ``b64_json`` and token ``usage``."""
    b64 = base64.b64encode(PNG_1X1).decode()
    if model.startswith("gpt-image"):
        text, image, out = usage["text_tokens"], usage["image_tokens"], usage["output_tokens"]
        return {
            "created": created,
            "background": "opaque",
            "data": [{"b64_json": b64} for _ in range(n)],
            "output_format": "png",
            "quality": "low",
            "size": "1024x1024",
            "usage": {
                "input_tokens": text + image,
                "input_tokens_details": {"text_tokens": text, "image_tokens": image},
                "output_tokens": out,
                "total_tokens": text + image + out,
            },
        }
    items: list[dict[str, Any]] = [{"b64_json": b64} if response_format == "b64_json" else {"url": u} for u in urls[:n]]
    if model == "dall-e-3":
        for item in items:
            item["revised_prompt"] = prompt
    return {"created": created, "data": items}


# --- Anthropic -----------------------------------------------------------------------------------


def anthropic_usage(u: dict[str, int], output_tokens: int | None = None) -> dict[str, Any]:
    """Messages ``usage``; ``output_tokens`` overrides the count (``message_start`` sends 1)."""
    return {
        "input_tokens": u["input_tokens"],
        "cache_creation_input_tokens": u["cache_creation_input_tokens"],
        "cache_read_input_tokens": u["cache_read_input_tokens"],
        "cache_creation": {
            "ephemeral_5m_input_tokens": u["cache_creation_input_tokens"],
            "ephemeral_1h_input_tokens": 0,
        },
        "output_tokens": u["output_tokens"] if output_tokens is None else output_tokens,
        "service_tier": "standard",
    }


def anthropic_message(*, id: str, model: str, text: str, usage: dict[str, int]) -> dict[str, Any]:
    """A non-streaming ``message``."""
    return {
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": anthropic_usage(usage),
    }


def anthropic_events(
    *, id: str, model: str, pieces: list[str], usage: dict[str, int]
) -> list[tuple[str, dict[str, Any]]]:
    """``(event name, data)`` pairs of a Messages stream. ``message_start`` carries the input and cache
    counts with ``output_tokens: 1``; ``message_delta`` carries only ``usage.output_tokens`` (final)."""
    start = anthropic_message(id=id, model=model, text="", usage=usage)
    start.update(content=[], stop_reason=None, usage=anthropic_usage(usage, output_tokens=1))
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        *({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}} for p in pieces),
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        },
        {"type": "message_stop"},
    ]
    return [(e["type"], e) for e in events]


# --- Gemini --------------------------------------------------------------------------------------


def gemini_usage(u: dict[str, int], candidates: int | None = None) -> dict[str, Any]:
    """``usageMetadata``; zero optional counts are left out like the real API does."""
    cand = u["candidatesTokenCount"] if candidates is None else candidates
    meta: dict[str, Any] = {
        "promptTokenCount": u["promptTokenCount"],
        "candidatesTokenCount": cand,
        "totalTokenCount": u["promptTokenCount"] + cand + u["thoughtsTokenCount"],
    }
    if u["cachedContentTokenCount"]:
        meta["cachedContentTokenCount"] = u["cachedContentTokenCount"]
    if u["thoughtsTokenCount"]:
        meta["thoughtsTokenCount"] = u["thoughtsTokenCount"]
    meta["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": u["promptTokenCount"]}]
    return meta


def gemini_response(
    *, id: str, model: str, text: str, usage: dict[str, int], candidates: int | None = None, final: bool = True
) -> dict[str, Any]:
    """A ``GenerateContentResponse`` (also each chunk of a stream; only the final one has finishReason)."""
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if final:
        candidate["finishReason"] = "STOP"
    return {
        "candidates": [candidate],
        "usageMetadata": gemini_usage(usage, candidates),
        "modelVersion": model,
        "responseId": id,
    }


def gemini_chunks(
    *, id: str, model: str, pieces: list[str], usage: dict[str, int], vertex: bool = False
) -> list[dict[str, Any]]:
    """Stream chunks whose ``usageMetadata`` is cumulative; the last one has the complete counts.
    Vertex AI's chunks before the last carry only ``{"trafficType": "ON_DEMAND"}`` (no counts),
    and its final usage adds ``trafficType``."""
    total = usage["candidatesTokenCount"]
    if vertex:
        chunks = gemini_chunks(id=id, model=model, pieces=pieces, usage=usage)
        for chunk in chunks[:-1]:
            chunk["usageMetadata"] = {"trafficType": "ON_DEMAND"}
        chunks[-1]["usageMetadata"]["trafficType"] = "ON_DEMAND"
        return chunks
    return [
        gemini_response(
            id=id,
            model=model,
            text=p,
            usage=usage,
            candidates=total * (i + 1) // len(pieces),
            final=i == len(pieces) - 1,
        )
        for i, p in enumerate(pieces)
    ]


# --- Search and image APIs -----------------------------------------------------------------------


def serper_result(kind: str, query: dict[str, Any], credits: int) -> dict[str, Any]:
    """One Serper answer for ``kind`` in search|images|news; ``credits`` like the real API reports."""
    q = str(query.get("q", ""))
    num = int(query.get("num", 10))
    params = {"q": q, "type": kind, "engine": "google", "num": num}
    rows = range(1, min(num, 3) + 1)
    if kind == "images":
        key, items = (
            "images",
            [
                {
                    "title": f"{q} image {i}",
                    "imageUrl": f"https://images.example.com/{i}.jpg",
                    "imageWidth": 800,
                    "imageHeight": 600,
                    "thumbnailUrl": f"https://thumbs.example.com/{i}.jpg",
                    "source": "example.com",
                    "domain": "example.com",
                    "link": f"https://example.com/{i}",
                    "position": i,
                }
                for i in rows
            ],
        )
    elif kind == "news":
        key, items = (
            "news",
            [
                {
                    "title": f"{q} news {i}",
                    "link": f"https://news.example.com/{i}",
                    "snippet": "A fake news snippet.",
                    "date": "1 hour ago",
                    "source": "Example News",
                    "position": i,
                }
                for i in rows
            ],
        )
    else:
        key, items = (
            "organic",
            [
                {
                    "title": f"{q} result {i}",
                    "link": f"https://example.com/{i}",
                    "snippet": "A fake snippet.",
                    "position": i,
                }
                for i in rows
            ],
        )
    return {"searchParameters": params, key: items, "credits": credits * (2 if num > 10 else 1)}


def tavily_search(body: dict[str, Any], request_id: str, include_usage: bool) -> dict[str, Any]:
    """A Tavily ``/search`` answer; ``usage.credits`` is 1 for basic, 2 for advanced depth."""
    advanced = body.get("search_depth") == "advanced"
    out: dict[str, Any] = {
        "query": body.get("query", ""),
        "follow_up_questions": None,
        "answer": None,
        "images": [],
        "results": [
            {
                "title": f"Result {i}",
                "url": f"https://example.com/{i}",
                "content": "A fake result.",
                "score": round(0.9 - i / 10, 2),
                "raw_content": None,
            }
            for i in range(1, min(int(body.get("max_results", 5)), 3) + 1)
        ],
        "response_time": 0.42,
        "request_id": request_id,
    }
    if include_usage:
        out["usage"] = {"credits": 2 if advanced else 1}
    return out


def tavily_extract(body: dict[str, Any], request_id: str, include_usage: bool) -> dict[str, Any]:
    """A Tavily ``/extract`` answer; credits are 1 (basic) or 2 (advanced) per 5 URLs."""
    urls = body.get("urls") or []
    urls = [urls] if isinstance(urls, str) else list(urls)
    out: dict[str, Any] = {
        "results": [{"url": u, "raw_content": f"Fake content of {u}", "images": []} for u in urls],
        "failed_results": [],
        "response_time": 0.21,
        "request_id": request_id,
    }
    if include_usage:
        per5 = 2 if body.get("extract_depth") == "advanced" else 1
        out["usage"] = {"credits": per5 * math.ceil(len(urls) / 5)}
    return out


def brave_web(q: str) -> dict[str, Any]:
    """A Brave ``web/search`` answer."""
    results = [
        {
            "type": "search_result",
            "title": f"{q} {i}",
            "url": f"https://example.com/{i}",
            "description": "A fake description.",
            "language": "en",
            "family_friendly": True,
        }
        for i in range(1, 4)
    ]
    return {
        "type": "search",
        "query": {"original": q, "show_strict_warning": False, "is_navigational": False, "country": "us"},
        "mixed": {"type": "mixed", "main": [{"type": "web", "index": i, "all": False} for i in range(3)]},
        "web": {"type": "search", "results": results, "family_friendly": True},
    }


def brave_images(q: str) -> dict[str, Any]:
    """A Brave ``images/search`` answer."""
    return {
        "type": "images",
        "query": {"original": q, "spellcheck_off": True},
        "results": [
            {
                "type": "image_result",
                "title": f"{q} {i}",
                "url": f"https://example.com/{i}",
                "source": "example.com",
                "thumbnail": {"src": f"https://imgs.search.brave.com/{i}.jpg"},
                "properties": {"url": f"https://example.com/{i}.jpg"},
            }
            for i in range(1, 4)
        ],
    }


#: Brave's rate-limit headers (per-second and per-month windows, comma-separated).
BRAVE_RATELIMIT_HEADERS = {
    "X-RateLimit-Limit": "1, 15000",
    "X-RateLimit-Policy": "1;w=1, 15000;w=2592000",
    "X-RateLimit-Remaining": "0, 14999",
    "X-RateLimit-Reset": "1, 2591999",
}
#: Unsplash's hourly rate-limit headers (demo apps get 50 requests an hour).
UNSPLASH_RATELIMIT_HEADERS = {"X-Ratelimit-Limit": "50", "X-Ratelimit-Remaining": "49"}


def unsplash_photo(n: int) -> dict[str, Any]:
    """An Unsplash photo object."""
    pid = f"fakephoto{n}"
    return {
        "id": pid,
        "created_at": "2024-01-01T00:00:00Z",
        "width": 4000,
        "height": 3000,
        "color": "#262626",
        "description": f"Fake photo {n}",
        "alt_description": "a fake photo",
        "urls": {
            k: f"https://images.unsplash.com/photo-{pid}?{k}" for k in ("raw", "full", "regular", "small", "thumb")
        },
        "links": {
            "self": f"https://api.unsplash.com/photos/{pid}",
            "html": f"https://unsplash.com/photos/{pid}",
            "download": f"https://unsplash.com/photos/{pid}/download",
            "download_location": f"https://api.unsplash.com/photos/{pid}/download",
        },
        "user": {"id": "fakeuser", "username": "fake", "name": "Fake Photographer"},
    }


def unsplash_search(per_page: int) -> dict[str, Any]:
    """An Unsplash ``search/photos`` answer."""
    return {"total": 133, "total_pages": -(-133 // per_page), "results": [unsplash_photo(i) for i in range(per_page)]}


# --- Errors --------------------------------------------------------------------------------------

_OPENAI_ERRORS = {
    400: ("invalid_request_error", None, "Invalid request (fake http_400)."),
    404: ("invalid_request_error", "unknown_url", "Unknown request URL."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests (fake http_429)."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
}
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
}
_GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}


def error_body(provider: str, status: int, message: str | None = None, request_id: str = "req_fake") -> Any:
    """An error body shaped like ``provider``'s real ones for HTTP ``status`` (400, 404, 429, 500)."""
    if provider in ("openai", "azure", "groq", "gateway"):
        etype, code, default = _OPENAI_ERRORS.get(status, _OPENAI_ERRORS[500])
        return {"error": {"message": message or default, "type": etype, "param": None, "code": code}}
    text = message or f"fake http_{status}"
    if provider == "anthropic":
        etype = _ANTHROPIC_ERRORS.get(status, "api_error")
        return {"type": "error", "error": {"type": etype, "message": text}, "request_id": request_id}
    if provider in ("gemini", "vertex"):
        return {"error": {"code": status, "message": text, "status": _GOOGLE_STATUS.get(status, "UNKNOWN")}}
    if provider == "tavily":
        return {"detail": {"error": text}}
    if provider == "brave":
        return {"type": "ErrorResponse", "error": {"id": request_id, "status": status, "code": "FAKE", "detail": text}}
    if provider == "unsplash":
        return {"errors": [text]}
    return {"message": text, "statusCode": status}  # serper and unknown paths
