"""Hooks on ``Client.send`` / ``AsyncClient.send`` of httpx and httpx2 (openai 3.x and anthropic
2.x use httpx2; older SDKs, and most apps, use httpx). ``send`` sees every request of a client,
whatever its transport, after auth and before redirects."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from aispend.instrumentation.calls import Call, Recorder
from aispend.instrumentation.exchange import (
    HeaderNames,
    HttpRequest,
    default_port,
    read_headers,
    read_lowered_headers,
)
from aispend.instrumentation.hooks.streams import byte_stream_proxies
from aispend.instrumentation.safety import log_once


def _head(request: Any) -> HttpRequest:
    url = request.url
    scheme = url.scheme
    return HttpRequest(
        method=request.method,
        scheme=scheme,
        host=url.host,
        port=url.port or default_port(scheme),
        path=url.path,
    )


def _complete(request: Any, head: HttpRequest, wanted: HeaderNames) -> HttpRequest:
    try:
        body = request.content
    except Exception:  # a streaming upload that was not read yet: no JSON to look at
        body = None
    query = request.url.query
    return head.with_content(
        query=query.decode("ascii", "replace") if isinstance(query, bytes) else str(query),
        headers=_headers(request.headers, wanted),
        body=body,
    )


def _headers(headers: Any, wanted: HeaderNames) -> dict[str, str]:
    items = getattr(headers, "_list", None)  # httpx's (raw, lower, value) triples: no copy, no lower()
    if isinstance(items, list) and (not items or len(items[0]) == 3):
        return read_lowered_headers(items, wanted)
    return read_headers(headers.raw, wanted)


def _begin(recorder: Recorder, request: Any) -> Call | None:
    try:
        head = _head(request)
    except Exception as exc:
        log_once("reading an httpx request", exc)
        return None

    def strip(name: str) -> None:
        del request.headers[name]

    return recorder.begin(
        head,
        lambda: _complete(request, head, recorder.header_names),
        strip,
        lambda: request.headers.get("user-agent"),
    )


def _observe(call: Call, response: Any, streamed: bool, proxy: type) -> None:
    try:
        headers = response.headers  # case-insensitive
        if not streamed:
            call.respond(response.status_code, headers, response.content)
            return
        tap = call.tap(response.status_code, headers)
        if tap is not None:
            response.stream = proxy(response.stream, tap)
    except Exception as exc:
        log_once("observing an httpx response", exc)
        call.finish(status=getattr(response, "status_code", None))


def sync_send(recorder: Recorder, module: ModuleType) -> Any:
    proxy = byte_stream_proxies(module)[0]

    def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        request = args[0] if args else kwargs.get("request")
        call = _begin(recorder, request)
        if call is None:
            return wrapped(*args, **kwargs)
        response = call.run(lambda: wrapped(*args, **kwargs))
        _observe(call, response, bool(kwargs.get("stream", False)), proxy)
        return response

    return wrapper


def async_send(recorder: Recorder, module: ModuleType) -> Any:
    proxy = byte_stream_proxies(module)[1]

    async def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        request = args[0] if args else kwargs.get("request")
        call = _begin(recorder, request)
        if call is None:
            return await wrapped(*args, **kwargs)
        response = await call.run_async(lambda: wrapped(*args, **kwargs))
        _observe(call, response, bool(kwargs.get("stream", False)), proxy)
        return response

    return wrapper


def targets(module: ModuleType) -> list[tuple[type, str, str]]:
    """(class, method, kind) pairs to wrap in one httpx-like module."""
    return [(module.Client, "send", "sync"), (module.AsyncClient, "send", "async")]
