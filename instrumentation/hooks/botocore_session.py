"""Hook on ``botocore.httpsession.URLLib3Session.send``: every boto3 / botocore request, signed
and ready, goes through it (botocore sends with its own urllib3 pool, not ``requests``).

Only requests an adapter recognises (Bedrock runtime paths) are observed. Their headers are never
stripped: they are SigV4-signed, and removing one would break the signature. A non-streaming
response has been read by ``send`` already; a streamed one (InvokeModel's body, the event streams)
is read by the app through ``response.raw``, which is wrapped so aispend sees the bytes as they
pass and never reads any itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from aispend.instrumentation.calls import Recorder, Tap
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
    # botocore's HTTPHeaders is an email.message.Message: its items() runs the email policy over
    # every value (most of this hook's cost); the raw (name, value) list it keeps is the same text
    pairs = getattr(headers, "_headers", None)
    if not isinstance(pairs, list):
        pairs = list(headers.items())
    return [(k, v.decode("latin-1") if isinstance(v, bytes) else str(v)) for k, v in pairs]


def _keep(name: str) -> None:
    """Signed headers stay (see the module docstring)."""


# An event-stream message header ``:message-type`` = ``exception`` (string type 7, length 9): an
# exception is the stream's last message, and botocore raises on it without reading further.
_EXCEPTION_MESSAGE = b":message-type\x07\x00\x09exception"
_MARKER_SPAN = len(_EXCEPTION_MESSAGE) - 1


def _tapped(chunks: Iterable[bytes], tap: Tap) -> Iterator[bytes]:
    """``streams._tapped``, ending the call as soon as a chunk holds an exception message."""
    tail = b""  # the end of the previous chunk, for a marker cut in two
    try:
        for chunk in chunks:
            tap.feed(chunk)
            if _EXCEPTION_MESSAGE in chunk or (tail and _EXCEPTION_MESSAGE in tail + chunk[:_MARKER_SPAN]):
                _finish(tap)  # botocore raises on it: the call is over
            tail = chunk[-_MARKER_SPAN:]
            yield chunk
    except GeneratorExit:
        _finish(tap)
        raise
    except BaseException as exc:
        _finish(tap, exc)
        raise
    _finish(tap)


class BotocoreRawProxy(UrllibRawProxy):
    """``UrllibRawProxy`` that also ends the span when a ``read()`` reaches the end of the body
    (botocore's ``StreamingBody.read()`` reads it whole and never asks again) and when an event
    stream delivers an exception (botocore raises, leaving the rest unread)."""

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        return _tapped(self.__wrapped__.stream(*args, **kwargs), self._self_tap)

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
            headers = read_headers(_text_headers(request.headers), recorder.header_names)
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
