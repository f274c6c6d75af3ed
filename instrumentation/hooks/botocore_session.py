"""Hook on ``botocore.httpsession.URLLib3Session.send``: every boto3 / botocore request, signed
and ready, goes through it (botocore sends with its own urllib3 pool, not ``requests``).

Only requests an adapter recognises (Bedrock runtime paths) are observed. Their headers are never
stripped: they are SigV4-signed, and removing one would break the signature. A non-streaming
response has been read by ``send`` already; a streamed one (InvokeModel's body, the event streams)
is read by the app through ``response.raw``, which is wrapped so aispend sees the bytes as they
pass and never reads any itself.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from aispend.instrumentation.calls import Recorder
from aispend.instrumentation.exchange import HttpRequest, default_port, read_headers
from aispend.instrumentation.hooks.streams import UrllibRawProxy, _finish
from aispend.instrumentation.safety import log_once


def _body(body: Any) -> bytes | None:
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    return None  # a file-like upload is never read here


def _text_headers(headers: Any) -> list[tuple[str, str]]:
    return [(k, v.decode("latin-1") if isinstance(v, bytes) else str(v)) for k, v in headers.items()]


def _keep(name: str) -> None:
    """Signed headers stay (see the module docstring)."""


class BotocoreRawProxy(UrllibRawProxy):
    """``UrllibRawProxy`` that also ends the span when a ``read()`` reaches the end of the body:
    botocore's ``StreamingBody.read()`` reads it whole and never asks again."""

    def read(self, amt: int | None = None, *args: Any, **kwargs: Any) -> bytes:
        data = super().read(amt, *args, **kwargs)
        if data and (amt is None or getattr(self.__wrapped__, "length_remaining", None) == 0):
            _finish(self._self_tap)
        return data


def send(recorder: Recorder) -> Any:
    def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        request = args[0] if args else kwargs.get("request")
        try:
            parts = urlsplit(request.url)
            scheme = parts.scheme
            head = HttpRequest(
                method=(request.method or "GET").upper(),
                scheme=scheme,
                host=(parts.hostname or "").lower(),
                port=parts.port or default_port(scheme),
                path=parts.path,
            )
        except Exception as exc:
            log_once("reading a botocore request", exc)
            return wrapped(*args, **kwargs)

        def complete() -> HttpRequest:
            headers = read_headers(_text_headers(request.headers))
            return head.with_content(query=parts.query, headers=headers, body=_body(request.body))

        call = recorder.begin(head, complete, _keep)
        if call is None:
            return wrapped(*args, **kwargs)
        response = call.run(lambda: wrapped(*args, **kwargs))
        try:
            if not getattr(request, "stream_output", False):
                call.respond(response.status_code, response.headers, response.content)  # read by send()
            else:
                tap = call.tap(response.status_code, response.headers)
                if tap is not None and response.raw is not None:
                    response.raw = BotocoreRawProxy(response.raw, tap)
        except Exception as exc:
            log_once("observing a botocore response", exc)
            call.finish(status=getattr(response, "status_code", None))
        return response

    return wrapper
