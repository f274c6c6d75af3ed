"""Hook on ``requests.Session.send`` (every requests call goes through it)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from aispend.instrumentation.calls import Recorder
from aispend.instrumentation.exchange import HttpRequest, default_port, read_headers
from aispend.instrumentation.hooks.streams import UrllibRawProxy
from aispend.instrumentation.safety import log_once


def _body(prepared: Any) -> bytes | None:
    body = prepared.body
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return None  # generators and files are not read


def send(recorder: Recorder) -> Any:
    def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        prepared = args[0] if args else kwargs.get("request")
        try:
            parts = urlsplit(prepared.url)
            scheme = parts.scheme
            head = HttpRequest(
                method=(prepared.method or "GET").upper(),
                scheme=scheme,
                host=(parts.hostname or "").lower(),
                port=parts.port or default_port(scheme),
                path=parts.path,
            )
        except Exception as exc:
            log_once("reading a requests request", exc)
            return wrapped(*args, **kwargs)

        def complete() -> HttpRequest:
            return head.with_content(
                query=parts.query,
                headers=read_headers(prepared.headers.items(), recorder.header_names),
                body=_body(prepared),
            )

        def strip(name: str) -> None:
            prepared.headers.pop(name, None)

        call = recorder.begin(head, complete, strip, lambda: prepared.headers.get("user-agent"))
        if call is None:
            return wrapped(*args, **kwargs)
        response = call.run(lambda: wrapped(*args, **kwargs))
        try:
            headers = response.headers  # a case-insensitive dict
            if not kwargs.get("stream", False):
                call.respond(response.status_code, headers, response.content)
            else:
                tap = call.tap(response.status_code, headers, already_decoded=True)
                if tap is not None and response.raw is not None:
                    response.raw = UrllibRawProxy(response.raw, tap)
        except Exception as exc:
            log_once("observing a requests response", exc)
            call.finish(status=getattr(response, "status_code", None))
        return response

    return wrapper
