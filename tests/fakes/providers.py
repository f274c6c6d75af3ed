"""One local HTTP server that plays every paid API aispend prices, on the real wire formats.

Tests drive the REAL ``openai`` / ``anthropic`` SDKs (and raw httpx / requests) against it, so the
instrumentation sees the same bytes, headers, SSE framing and errors as in production — only the
paid remote API itself is faked. Each provider lives under a path prefix of one server::

    with FakeProviders() as fake:
        client = OpenAI(base_url=fake.openai_base, api_key="sk-test", max_retries=0)
        client.chat.completions.create(model="gpt-4o", messages=[...])
        assert fake.requests[-1].json["model"] == "gpt-4o"

Knobs (per instance, or per request with a header):

* usage: ``fake.set_usage("openai", prompt_tokens=1000)``; header ``x-fake-usage: {"prompt_tokens": 5}``
  (merged over the instance values; keys the endpoint does not use are ignored).
* faults: ``fake.fault = "http_429"``; header ``x-fake-fault: truncate`` (see ``FAULTS``).
* streams: ``fake.stream_chunks`` text pieces (header ``x-fake-stream-chunks: 100``), ``fake.chunk_delay``
  seconds between SSE events.
* ``fake.gzip = True``: gzip non-streaming JSON when the client accepts it.
* ``fake.anthropic_stream_error = "overloaded_error"``: an Anthropic stream sends ``message_start``,
  then that ``error`` event, and ends (as Anthropic does when it is overloaded mid-stream).
* OpenAI chat streams with ``stream_options.continuous_usage_stats`` (vLLM's) carry the running usage
  in every chunk.
* ``fake.openrouter_cost``: the USD figure OpenRouter reports in ``usage.cost`` (under ``/openrouter``,
  which always sends usage, also in streams, as OpenRouter does).

Streams use ``Transfer-Encoding: chunked`` and write each event as its own chunk, so clients
see events as they are produced.
"""

from __future__ import annotations

import copy
import gzip
import itertools
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes import more_providers
from tests.fakes import payloads as p

#: Fault names accepted by ``FakeProviders.fault`` and the ``x-fake-fault`` header.
#: ``error_200`` answers HTTP 200 with an error object as the body (Azure's content filter does).
FAULTS = frozenset({"not_json", "truncate", "http_429", "http_500", "http_400", "slow", "reset", "error_200"})
_FAULT_STATUS = {"http_400": 400, "http_429": 429, "http_500": 500}


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it (recorded before any fault is applied)."""

    method: str
    path: str  #: without the query string
    query: dict[str, str]  #: last value wins for repeated keys
    headers: dict[str, str]  #: lower-cased names
    body: bytes
    json: Any  #: parsed body, or None when empty / not JSON
    provider: str  #: first path segment: openai, azure, anthropic, gemini, serper, ...


@dataclass
class _Reply:
    """What an endpoint answers: a complete body, or SSE events streamed one chunk each."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    events: list[bytes] | None = None


def _json_reply(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status=status, body=json.dumps(obj).encode(), headers=headers or {})


def _sse_reply(events: list[bytes], headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(content_type="text/event-stream; charset=utf-8", events=events, headers=headers or {})


class _BadRequest(Exception):
    """Raised by endpoints for a request the real API would reject with a 400."""


Endpoint = Callable[[RecordedRequest, dict[str, str]], _Reply]


class FakeProviders(more_providers.MoreProviders):
    """A ThreadingHTTPServer on 127.0.0.1 (port 0 by default) serving all fake providers
    (Bedrock, Cohere and Ollama live in ``more_providers``)."""

    def __init__(self, port: int = 0) -> None:
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._ids = itertools.count(1)
        self._routes: list[tuple[str, re.Pattern[str], Endpoint]] = [
            (m, re.compile(rx), fn)
            for m, rx, fn in [
                ("POST", r"/openai/v1/chat/completions", self._openai_chat),
                ("POST", r"/openai/v1/completions", self._openai_completions),
                ("POST", r"/openai/v1/responses", self._openai_responses),
                ("POST", r"/openai/v1/embeddings", self._openai_embeddings),
                ("POST", r"/openai/v1/images/generations", self._openai_images),
                ("GET", r"/openai/images/[\w-]+\.png", self._openai_image_file),
                ("POST", r"/openrouter/api/v1/chat/completions", self._openrouter_chat),
                ("POST", r"/azure/openai/deployments/(?P<deployment>[^/]+)/chat/completions", self._openai_chat),
                ("POST", r"/azure/openai/deployments/(?P<deployment>[^/]+)/completions", self._openai_completions),
                ("POST", r"/azure/openai/deployments/(?P<deployment>[^/]+)/embeddings", self._openai_embeddings),
                ("POST", r"/anthropic/v1/messages", self._anthropic_messages),
                ("POST", r"/groq/openai/v1/chat/completions", self._groq_chat),
                # one gateway serving two providers' APIs under one base URL (LiteLLM-style proxies)
                ("POST", r"/gateway/v1/chat/completions", self._openai_chat),
                ("POST", r"/gateway/v1/messages", self._anthropic_messages),
                (
                    "POST",
                    r"/vertex/v1/projects/[^/]+/locations/[^/]+/publishers/google/models/(?P<model>[^/:]+)"
                    r":(?P<op>generateContent|streamGenerateContent)",
                    self._gemini,
                ),
                ("POST", r"/gemini/v1(?:beta)?/models/(?P<model>[^/:]+):(?P<op>generateContent)", self._gemini),
                ("POST", r"/gemini/v1(?:beta)?/models/(?P<model>[^/:]+):(?P<op>streamGenerateContent)", self._gemini),
                ("POST", r"/serper/(?P<kind>search|images|news)", self._serper),
                ("POST", r"/tavily/(?P<op>search|extract)", self._tavily),
                ("GET", r"/brave/res/v1/(?P<kind>web|images)/search", self._brave),
                ("GET", r"/unsplash/search/photos", self._unsplash_search),
                ("GET", r"/unsplash/photos/random", self._unsplash_random),
                *self._more_routes(),
            ]
        ]
        self.reset()

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeProviders:
        """Bind and serve in a daemon thread; returns self so ``fake = FakeProviders().start()`` works."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = self._server = _Server(self._requested_port, self)
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-providers", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; wakes handlers sleeping in ``slow`` / ``chunk_delay``."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeProviders:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- configuration --------------------------------------------------------------------------

    def reset(self) -> None:
        """Restore every knob and usage override to its default and forget recorded requests."""
        self._fault: str | None = None
        self.gzip = False
        self.stream_chunks = 3
        self.chunk_delay = 0.0
        self.slow_seconds = 2.0
        #: Azure deployment name -> underlying model (unknown deployments: alias map, then gpt-4o).
        self.azure_deployments: dict[str, str] = {}
        self.openrouter_cost = 0.000123
        self.anthropic_stream_error: str | None = None
        self._usage = copy.deepcopy({**p.DEFAULT_USAGE, **more_providers.USAGE})
        self._more_reset()
        self.clear()

    @property
    def fault(self) -> str | None:
        """The fault applied to every following request (None: answer normally)."""
        return self._fault

    @fault.setter
    def fault(self, name: str | None) -> None:
        if name is not None and name not in FAULTS:
            raise ValueError(f"unknown fault {name!r}; expected one of {sorted(FAULTS)}")
        self._fault = name

    def set_usage(self, provider: str, **counts: int) -> None:
        """Override usage numbers for ``provider`` (a key of ``payloads.DEFAULT_USAGE``), e.g.
        ``set_usage("openai", prompt_tokens=1000, completion_tokens=500, cached_tokens=0)``."""
        if provider not in self._usage:
            raise ValueError(f"unknown usage provider {provider!r}; expected one of {sorted(self._usage)}")
        unknown = set(counts) - set(self._usage[provider])
        if unknown:
            raise ValueError(f"unknown {provider} usage keys {sorted(unknown)}; known: {sorted(self._usage[provider])}")
        self._usage[provider].update({k: int(v) for k, v in counts.items()})

    def usage(self, provider: str) -> dict[str, int]:
        """The usage numbers ``provider`` answers with now (a copy)."""
        return dict(self._usage[provider])

    # --- addresses ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (the server picks a free one unless a port was given)."""
        if self._server is None:
            raise RuntimeError("FakeProviders is not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, the root every ``*_base`` hangs off."""
        return f"http://127.0.0.1:{self.port}"

    openai_base = property(lambda self: self.url + "/openai/v1", doc="``OpenAI(base_url=...)``")
    anthropic_base = property(lambda self: self.url + "/anthropic", doc="``Anthropic(base_url=...)``")
    openrouter_base = property(lambda self: self.url + "/openrouter/api/v1", doc="``OpenAI(base_url=...)``")
    azure_base = property(lambda self: self.url + "/azure", doc="``AzureOpenAI(azure_endpoint=...)``")
    gemini_base = property(lambda self: self.url + "/gemini")
    vertex_base = property(lambda self: self.url + "/vertex", doc="Vertex AI: ``{base}/v1/projects/...``")
    groq_base = property(lambda self: self.url + "/groq/openai/v1", doc="``OpenAI(base_url=...)`` / ``Groq``")
    gateway_base = property(
        lambda self: self.url + "/gateway", doc="one proxy: ``/v1/chat/completions``, ``/v1/messages``"
    )
    serper_base = property(lambda self: self.url + "/serper")
    tavily_base = property(lambda self: self.url + "/tavily")
    brave_base = property(lambda self: self.url + "/brave")
    unsplash_base = property(lambda self: self.url + "/unsplash")

    # --- recorded requests ----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        """Forget recorded requests."""
        with self._lock:
            self._requests.clear()

    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(req)

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    # --- request handling -----------------------------------------------------------------------

    def _handle(self, h: _Handler) -> None:
        """Record the request, pick its endpoint, apply any fault, write the reply."""
        req = h.read_request()
        self._record(req)
        endpoint, params = self._route(req)
        if endpoint is None:
            h.send_reply(_json_reply(p.error_body(req.provider, 404, f"No route for {req.method} {req.path}"), 404))
            return
        fault = req.headers.get("x-fake-fault") or self._fault
        if fault is not None and fault not in FAULTS:
            h.send_reply(_json_reply(p.error_body(req.provider, 400, f"unknown x-fake-fault {fault!r}"), 400))
            return
        if fault == "reset":
            h.reset_connection()
            return
        if fault == "slow" and self._stopping.wait(self.slow_seconds):
            h.close_connection = True  # server stopping: drop the request
            return
        if fault == "not_json":
            h.send_reply(_Reply(body=b"<html><body><h1>Fake gateway page</h1></body></html>", content_type="text/html"))
            return
        if fault in _FAULT_STATUS:
            h.send_reply(self._error_reply(req.provider, _FAULT_STATUS[fault]))
            return
        if fault == "error_200":
            body = p.azure_content_filter_error() if req.provider == "azure" else p.error_body(req.provider, 400)
            h.send_reply(_json_reply(body))
            return
        try:
            reply = endpoint(req, params)
        except (_BadRequest, TypeError, ValueError) as exc:  # malformed fields: the API's 400
            reply = self._error_reply(req.provider, 400, str(exc))
        accepts_gzip = "gzip" in req.headers.get("accept-encoding", "")
        h.send_reply(reply, truncate=fault == "truncate", gzip_ok=self.gzip and accepts_gzip)

    def _route(self, req: RecordedRequest) -> tuple[Endpoint | None, dict[str, str]]:
        for method, rx, endpoint in self._routes:
            m = rx.fullmatch(req.path)
            if m and method == req.method:
                return endpoint, m.groupdict()
        return None, {}

    def _error_reply(self, provider: str, status: int, message: str | None = None) -> _Reply:
        """A provider-shaped error with the retry headers the real APIs send."""
        more = self._more_error(provider, status, message)
        if more is not None:
            return more
        rid = f"req_fake_{self._next_id()}"
        headers = {"retry-after": "0"} if status == 429 else {}
        if provider == "anthropic":  # Anthropic says explicitly whether the SDK should retry.
            headers["x-should-retry"] = "false" if status == 400 else "true"
            headers["request-id"] = rid
        elif provider in ("openai", "azure"):
            headers["x-request-id"] = rid
        return _json_reply(p.error_body(provider, status, message, rid), status, headers)

    def _paced(self, events: list[bytes]) -> Iterator[bytes]:
        """Yield SSE events with ``chunk_delay`` between them (interrupted when the server stops)."""
        for i, event in enumerate(events):
            if i and self.chunk_delay and self._stopping.wait(self.chunk_delay):
                return
            yield event

    def _usage_for(self, key: str, req: RecordedRequest) -> dict[str, int]:
        """Instance usage for ``key`` with the request's ``x-fake-usage`` JSON merged over it."""
        usage = dict(self._usage[key])
        raw = req.headers.get("x-fake-usage")
        if raw:
            try:
                extra = json.loads(raw)
            except ValueError as exc:
                raise _BadRequest(f"x-fake-usage is not JSON: {exc}") from exc
            if not isinstance(extra, dict):
                raise _BadRequest("x-fake-usage must be a JSON object")
            usage.update({k: int(v) for k, v in extra.items() if k in usage})
        return usage

    @staticmethod
    def _body(req: RecordedRequest) -> dict[str, Any]:
        if not isinstance(req.json, dict):
            raise _BadRequest("We could not parse the JSON body of your request.")
        return req.json

    def _model(self, req: RecordedRequest, body: dict[str, Any], params: dict[str, str]) -> str:
        """Response model: Azure's deployment model, else the request model's dated snapshot."""
        if "deployment" in params:
            if "api-version" not in req.query:
                raise _BadRequest("Missing required query parameter: api-version")
            dep = params["deployment"]
            return self.azure_deployments.get(dep, p.MODEL_SNAPSHOTS.get(dep, p.AZURE_DEFAULT_MODEL))
        model = body.get("model") or params.get("model")
        if not model:
            raise _BadRequest("you must provide a model parameter")
        return p.resolve_model(str(model))

    def _pieces(self, provider: str, req: RecordedRequest) -> list[str]:
        """The streamed reply's text pieces: ``stream_chunks`` of them, or the request's
        ``x-fake-stream-chunks``. More pieces than the reply has characters repeat the reply (a
        stream of realistic length, one piece a token, for the benchmarks)."""
        raw = req.headers.get("x-fake-stream-chunks")
        try:
            n = self.stream_chunks if raw is None else int(raw)
        except ValueError as exc:
            raise _BadRequest(f"x-fake-stream-chunks is not a number: {raw!r}") from exc
        if n < 1:
            raise _BadRequest("x-fake-stream-chunks must be at least 1")
        text = p.reply_text(provider)
        if n > len(text):
            text = " ".join([text] * -(-n // len(text)))
        return p.split_text(text, n)

    # --- OpenAI / Azure OpenAI ------------------------------------------------------------------

    def _openai_headers(self) -> dict[str, str]:
        return {"x-request-id": f"req_fake_{self._next_id()}", "openai-processing-ms": "1"}

    def _openai_chat(self, req: RecordedRequest, params: dict[str, str]) -> _Reply:
        body = self._body(req)
        model = self._model(req, body, params)
        usage = self._usage_for("openai", req)
        azure = "deployment" in params
        cid, created = f"chatcmpl-fake-{self._next_id()}", int(time.time())
        if body.get("stream"):
            options = body.get("stream_options") or {}
            chunks = p.openai_chat_chunks(
                id=cid,
                model=model,
                pieces=self._pieces("openai", req),
                usage=usage if options.get("include_usage") else None,
                created=created,
                azure=azure,
                continuous=bool(options.get("continuous_usage_stats")),
            )
            return _sse_reply([*map(p.sse, chunks), p.sse("[DONE]")], self._openai_headers())
        text = p.reply_text("openai")
        completion = p.openai_chat_completion(id=cid, model=model, text=text, usage=usage, created=created, azure=azure)
        return _json_reply(completion, headers=self._openai_headers())

    def _openrouter_chat(self, req: RecordedRequest, params: dict[str, str]) -> _Reply:
        """OpenRouter: OpenAI's format with ``provider/model`` ids, answered as asked, and the cost in usage."""
        body = self._body(req)
        model = str(body.get("model") or "")
        if "/" not in model:
            raise _BadRequest(f"{model} is not a valid model ID")
        usage = p.openrouter_usage(self._usage_for("openai", req), self.openrouter_cost)
        cid, created = f"gen-fake-{self._next_id()}", int(time.time())
        headers = {"x-generation-id": cid}
        if body.get("stream"):
            chunks = p.openai_chat_chunks(
                id=cid, model=model, pieces=self._pieces("openai", req), usage=None, created=created
            )
            last = chunks[-1] | {"choices": [], "usage": usage}
            return _sse_reply([*map(p.sse, chunks), p.sse(last), p.sse("[DONE]")], headers)
        completion = p.openai_chat_completion(
            id=cid, model=model, text=p.reply_text("openai"), usage=self._usage_for("openai", req), created=created
        )
        completion["usage"] = usage
        return _json_reply(completion, headers=headers)

    def _openai_completions(self, req: RecordedRequest, params: dict[str, str]) -> _Reply:
        body = self._body(req)
        model = self._model(req, body, params)
        usage = self._usage_for("openai", req)
        cid, created = f"cmpl-fake-{self._next_id()}", int(time.time())
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = p.openai_completion_chunks(
                id=cid,
                model=model,
                pieces=self._pieces("openai", req),
                usage=usage if include else None,
                created=created,
            )
            return _sse_reply([*map(p.sse, chunks), p.sse("[DONE]")], self._openai_headers())
        text = p.reply_text("openai")
        return _json_reply(
            p.openai_completion(id=cid, model=model, text=text, usage=usage, created=created),
            headers=self._openai_headers(),
        )

    def _openai_responses(self, req: RecordedRequest, params: dict[str, str]) -> _Reply:
        body = self._body(req)
        model = self._model(req, body, params)
        usage = self._usage_for("openai", req)
        n = self._next_id()
        ids = {"id": f"resp_fake_{n}", "msg_id": f"msg_fake_{n}", "model": model, "created": int(time.time())}
        if body.get("stream"):
            events = p.openai_response_events(**ids, pieces=self._pieces("openai", req), usage=usage)
            return _sse_reply([p.sse(data, event) for event, data in events], self._openai_headers())
        return _json_reply(
            p.openai_response(**ids, text=p.reply_text("openai"), usage=usage), headers=self._openai_headers()
        )

    def _openai_embeddings(self, req: RecordedRequest, params: dict[str, str]) -> _Reply:
        body = self._body(req)
        model = self._model(req, body, params)
        raw = body.get("input", "")
        inputs = raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
        usage = self._usage_for("openai_embeddings", req)
        fmt = str(body.get("encoding_format") or "float")
        return _json_reply(
            p.openai_embeddings(model=model, inputs=inputs, encoding_format=fmt, usage=usage),
            headers=self._openai_headers(),
        )

    def _openai_images(self, req: RecordedRequest, params: dict[str, str]) -> _Reply:
        body = self._body(req)
        model = str(body.get("model") or "dall-e-2")  # the API's default model
        n = int(body.get("n") or 1)
        if model == "dall-e-3" and n != 1:
            raise _BadRequest("Invalid 'n': dall-e-3 only supports n=1.")
        base = self._next_id()
        urls = [f"{self.url}/openai/images/img-fake-{base}-{i}.png" for i in range(n)]
        result = p.openai_images(
            model=model,
            n=n,
            response_format=str(body.get("response_format") or "url"),
            prompt=str(body.get("prompt", "")),
            urls=urls,
            usage=self._usage_for("openai_images", req),
            created=int(time.time()),
        )
        return _json_reply(result, headers=self._openai_headers())

    def _openai_image_file(self, req: RecordedRequest, params: dict[str, str]) -> _Reply:
        return _Reply(body=p.PNG_1X1, content_type="image/png")

    # --- Anthropic ------------------------------------------------------------------------------

    def _anthropic_messages(self, req: RecordedRequest, params: dict[str, str]) -> _Reply:
        body = self._body(req)
        model = self._model(req, body, params)
        usage = self._usage_for("anthropic", req)
        n = self._next_id()
        mid, headers = f"msg_fake_{n}", {"request-id": f"req_fake_{n}"}
        if body.get("stream"):
            events = p.anthropic_events(id=mid, model=model, pieces=self._pieces("anthropic", req), usage=usage)
            if self.anthropic_stream_error:
                error = {"type": self.anthropic_stream_error, "message": "The stream failed."}
                events = [events[0], ("error", {"type": "error", "error": error})]
            return _sse_reply([p.sse(data, event) for event, data in events], headers)
        return _json_reply(
            p.anthropic_message(id=mid, model=model, text=p.reply_text("anthropic"), usage=usage), 200, headers
        )

    # --- Groq -----------------------------------------------------------------------------------

    def _groq_chat(self, req: RecordedRequest, params: dict[str, str]) -> _Reply:
        body = self._body(req)
        model = self._model(req, body, params)
        usage = self._usage_for("groq", req)
        cid, created = f"chatcmpl-groq-{self._next_id()}", int(time.time())
        headers = {"x-request-id": f"req_fake_{self._next_id()}", "x-groq-region": "fake"}
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = p.groq_chat_chunks(
                id=cid,
                model=model,
                pieces=self._pieces("groq", req),
                usage=usage,
                created=created,
                include_usage=include,
            )
            return _sse_reply([*map(p.sse, chunks), p.sse("[DONE]")], headers)
        text = p.reply_text("groq")
        return _json_reply(
            p.groq_chat_completion(id=cid, model=model, text=text, usage=usage, created=created), 200, headers
        )

    # --- Gemini ---------------------------------------------------------------------------------

    def _gemini(self, req: RecordedRequest, params: dict[str, str]) -> _Reply:
        self._body(req)
        model, usage, rid = params["model"], self._usage_for("gemini", req), f"fake-{self._next_id()}"
        if params["op"] == "generateContent":
            return _json_reply(p.gemini_response(id=rid, model=model, text=p.reply_text("gemini"), usage=usage))
        vertex = req.provider == "vertex"
        chunks = p.gemini_chunks(id=rid, model=model, pieces=self._pieces("gemini", req), usage=usage, vertex=vertex)
        if req.query.get("alt") == "sse":  # Gemini frames SSE events with CRLF
            return _sse_reply([p.sse(c, sep="\r\n") for c in chunks])
        return _json_reply(chunks)  # without alt=sse the stream is one JSON array

    # --- search and image APIs ------------------------------------------------------------------

    def _serper(self, req: RecordedRequest, params: dict[str, str]) -> _Reply:
        credits = self._usage_for("serper", req)["credits"]
        if isinstance(req.json, list):  # batch: a list of queries answers a list of results
            if not all(isinstance(q, dict) for q in req.json):
                raise _BadRequest("every batch item must be an object")
            return _json_reply([p.serper_result(params["kind"], q, credits) for q in req.json])
        return _json_reply(p.serper_result(params["kind"], self._body(req), credits))

    def _tavily(self, req: RecordedRequest, params: dict[str, str]) -> _Reply:
        body = self._body(req)
        rid = f"fake-{self._next_id()}"
        build = p.tavily_search if params["op"] == "search" else p.tavily_extract
        return _json_reply(build(body, rid, bool(body.get("include_usage"))))

    def _brave(self, req: RecordedRequest, params: dict[str, str]) -> _Reply:
        q = req.query.get("q", "")
        return _json_reply(
            p.brave_web(q) if params["kind"] == "web" else p.brave_images(q), 200, dict(p.BRAVE_RATELIMIT_HEADERS)
        )

    def _unsplash_search(self, req: RecordedRequest, params: dict[str, str]) -> _Reply:
        per_page = int(req.query.get("per_page", 10))
        return _json_reply(p.unsplash_search(per_page), 200, dict(p.UNSPLASH_RATELIMIT_HEADERS))

    def _unsplash_random(self, req: RecordedRequest, params: dict[str, str]) -> _Reply:
        n = self._next_id()
        if "count" in req.query:  # with count the API answers a list
            photos: Any = [p.unsplash_photo(n * 100 + i) for i in range(int(req.query["count"]))]
        else:
            photos = p.unsplash_photo(n)
        return _json_reply(photos, 200, dict(p.UNSPLASH_RATELIMIT_HEADERS))


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung client connection must never block interpreter exit

    def __init__(self, port: int, fake: FakeProviders) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.fake = fake

    def handle_error(self, request: Any, client_address: Any) -> None:
        # clients that time out or hang up on purpose (the fault tests) are not errors here
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Socket-level I/O only; every decision is made by ``FakeProviders._handle``."""

    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every keep-alive response
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self.server.fake._handle(self)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def read_request(self) -> RecordedRequest:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
        else:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        return RecordedRequest(
            method=self.command,
            path=url.path,
            query=query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            json=parsed,
            provider=url.path.strip("/").split("/")[0],
        )

    def send_reply(self, reply: _Reply, truncate: bool = False, gzip_ok: bool = False) -> None:
        """Write ``reply``; ``truncate`` sends only part of it and closes the connection."""
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.events is not None:
                self._send_events(reply.events, truncate)
                return
            body = reply.body
            if gzip_ok and reply.content_type == "application/json":
                body = gzip.compress(body)
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            if truncate:
                self.send_header("Connection", "close")
                self.close_connection = True
                body = body[: len(body) // 2]
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away; nothing left to tell it

    def _send_events(self, events: list[bytes], truncate: bool) -> None:
        """One HTTP chunk per SSE event, flushed; truncated streams stop half-way without the final
        zero-length chunk, so the client sees an incomplete body."""
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if truncate:
            events = events[: max(1, len(events) // 2)]
            self.close_connection = True
        for event in self.server.fake._paced(events):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        if not truncate:
            self.wfile.write(b"0\r\n\r\n")

    def reset_connection(self) -> None:
        """Abort the connection with a TCP RST and no response at all."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
