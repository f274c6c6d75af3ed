"""Hook on ``aiohttp.ClientSession._request``, which every request of a session goes through
(``get``, ``post``, ``request``, ``aiohttp.request``), after the session's default headers and
base URL apply and around its redirects.

aiohttp reads a body only when the app asks, so the response is returned behind a proxy that
watches what the app reads, never reading for it: ``read()`` / ``text()`` / ``json()`` hand the
whole body to the call; reads from ``response.content`` (``async for line``, ``iter_chunked``,
``iter_any``, ``iter_chunks``, ``readline``, ``read(n)``, ...) pass each chunk to a ``Tap`` as
it goes to the app. The call ends exactly once: when the body has been read to its end, when
reading fails, at ``release()`` / ``close()`` / the ``async with`` exit, or when the app drops the
response (then usage is unknown and estimated).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import wrapt
from aiohttp import ClientResponseError
from multidict import CIMultiDict
from yarl import URL

from aispend.instrumentation.calls import Call, Recorder, Tap
from aispend.instrumentation.exchange import HeaderNames, HttpRequest, default_port, read_headers
from aispend.instrumentation.safety import log_once


def request(recorder: Recorder) -> Any:
    """The wrapper for ``ClientSession._request``."""

    async def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        call, kwargs = _begin(recorder, instance, args, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        response = await call.run_async(lambda: _send(call, wrapped(*args, **kwargs)))
        return _observe(call, response, _decompressed(instance, kwargs))

    return wrapper


# -- the request ------------------------------------------------------------------------------


def _begin(recorder: Recorder, session: Any, args: tuple, kwargs: dict) -> tuple[Call | None, dict]:
    """The call for this request (or None) and the keyword arguments to send it with."""
    try:
        method = args[0] if args else kwargs["method"]
        url = _url(session, args[1] if len(args) > 1 else kwargs["str_or_url"])
        if not url.absolute or not url.host:
            return None, kwargs  # aiohttp will refuse it; nothing to observe
        scheme = url.scheme
        head = HttpRequest(
            method=method.upper(),
            scheme=scheme,
            host=url.host,
            port=url.port or default_port(scheme),
            path=url.path,
        )
    except ValueError:  # not a URL: aiohttp raises its own error for it
        return None, kwargs
    except Exception as exc:
        log_once("reading an aiohttp request", exc)
        return None, kwargs
    stripped: list[str] = []
    call = recorder.begin(head, lambda: _complete(session, head, url, kwargs, recorder.header_names), stripped.append)
    if stripped:
        kwargs = _without_headers(session, kwargs, stripped)
    return call, kwargs


def _url(session: Any, target: Any) -> URL:
    build = getattr(session, "_build_url", None)  # applies the session's base_url
    return build(target) if build is not None else URL(target)


def _complete(session: Any, head: HttpRequest, url: URL, kwargs: Mapping[str, Any], wanted: HeaderNames) -> HttpRequest:
    params = kwargs.get("params")
    if params:
        url = url.extend_query(params)
    defaults = getattr(session, "_default_headers", None)
    headers = read_headers(defaults.items(), wanted) if defaults else {}
    extra = kwargs.get("headers")
    if extra:
        headers.update(read_headers(_pairs(extra), wanted))  # the request's own headers win, as in aiohttp
    return head.with_content(query=url.raw_query_string, headers=headers, body=_body(kwargs))


def _pairs(headers: Any) -> Iterable[tuple[Any, Any]]:
    return headers.items() if hasattr(headers, "items") else headers


def _body(kwargs: Mapping[str, Any]) -> bytes | None:
    value = kwargs.get("json")
    if value is not None:
        try:
            return json.dumps(value, separators=(",", ":"), default=str).encode()
        except (TypeError, ValueError):
            return None
    data = kwargs.get("data")
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    return None  # form fields, files, payload objects and generators are not read


def _without_headers(session: Any, kwargs: dict, names: list[str]) -> dict:
    """``kwargs`` sending no ``x-aispend-*`` header; the app's own headers object is not changed."""
    try:
        kwargs = dict(kwargs)
        headers = kwargs.get("headers")
        if headers:
            kept = CIMultiDict(headers)
            for name in names:
                kept.popall(name, None)
            kwargs["headers"] = kept
        defaults = getattr(session, "_default_headers", None)
        if defaults and any(name in defaults for name in names):
            # The session adds its default headers to every request: drop ours from this one just
            # before it is sent (client middlewares, aiohttp >= 3.12), leaving the session as it is.
            if not hasattr(session, "_middlewares"):
                log_once("removing x-aispend-* session headers", message="needs aiohttp >= 3.12")
                return kwargs
            chain = kwargs.get("middlewares")
            if chain is None:
                chain = session._middlewares or ()
            kwargs["middlewares"] = (*chain, _stripping(tuple(names)))
        return kwargs
    except Exception as exc:
        log_once("removing x-aispend-* headers from an aiohttp request", exc)
        return kwargs


def _stripping(names: tuple[str, ...]) -> Callable[[Any, Any], Awaitable[Any]]:
    async def strip_attribution_headers(request: Any, handler: Any) -> Any:
        for name in names:
            request.headers.popall(name, None)
        return await handler(request)

    return strip_attribution_headers


async def _send(call: Call, sending: Awaitable[Any]) -> Any:
    try:
        return await sending
    except ClientResponseError as exc:
        # raise_for_status=True: the answer's status (a 429 is a rate limit), then the exception as is
        if exc.__cause__ is None and isinstance(exc.status, int) and exc.status >= 400:
            call.finish(status=exc.status, error_type=type(exc).__qualname__)
        raise


def _decompressed(session: Any, kwargs: Mapping[str, Any]) -> bool:
    auto = kwargs.get("auto_decompress")
    if auto is None:
        auto = getattr(session, "_auto_decompress", True)
    return auto is not False


# -- the response -----------------------------------------------------------------------------


def _observe(call: Call, response: Any, decompressed: bool) -> Any:
    try:
        headers = response.headers  # case-insensitive
        decoded = decompressed or not headers.get("content-encoding")
        return ResponseProxy(response, _Exchange(call, response.status, headers, decoded))
    except Exception as exc:
        log_once("observing an aiohttp response", exc)
        call.finish(status=getattr(response, "status", None))
        return response


class _Exchange:
    """What the app has read of one response. Shared by the response, its ``content`` and their
    iterators; ``finish`` is idempotent, and runs when the last of them is dropped at the latest."""

    __slots__ = ("call", "decoded", "done", "headers", "status", "tap")

    def __init__(self, call: Call, status: int, headers: Mapping[str, str], decoded: bool) -> None:
        self.call = call
        self.status = status
        self.headers = headers
        self.decoded = decoded
        self.done = False
        self.tap: Tap | None = None

    def whole(self, body: bytes) -> None:
        """The body as ``read()`` returned it."""
        if self.done:
            return
        try:
            if self.tap is None and self.decoded and "text/event-stream" not in self.headers.get("content-type", ""):
                self.call.respond(self.status, self.headers, body)
                self.done = True
                return
        except Exception as exc:
            log_once("observing an aiohttp response", exc)
            self.finish()
            return
        self.seen(body)  # a stream read in one go, or the rest of one: its events are parsed
        self.finish()

    def seen(self, chunk: bytes, stream: Any = None) -> None:
        """A chunk on its way to the app; the end once ``stream`` is at its end."""
        if self.done:
            return
        try:
            if chunk:
                if self.tap is None:
                    self.tap = self.call.tap(self.status, self.headers, already_decoded=self.decoded)
                    if self.tap is None:
                        self.done = True
                        return
                self.tap.feed(chunk)
            at_end = stream is not None and stream.at_eof()
        except Exception as exc:
            log_once("observing an aiohttp stream", exc)
            at_end = True
        if at_end:
            self.finish()

    def failed(self, error: BaseException) -> None:
        """A read from ``content`` raised. A cancelled read (``asyncio.wait_for`` around
        ``readline()``, say) leaves the stream readable, so only other errors end the call."""
        if not isinstance(error, asyncio.CancelledError):
            self.finish(error)

    def finish(self, error: BaseException | None = None) -> None:
        if self.done:
            return
        self.done = True
        try:
            if self.tap is not None:
                self.tap.finish(error)
            else:
                error_type = type(error).__qualname__ if error is not None else None
                self.call.finish(status=self.status, error_type=error_type)
        except Exception as exc:
            log_once("finishing an aiohttp response", exc)
            with contextlib.suppress(Exception):
                self.call.finish(status=self.status)  # idempotent: ends the span if the tap did not

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter shutdown there is nothing left to tell
            self.finish()


class ResponseProxy(wrapt.ObjectProxy):
    """Wraps a ``ClientResponse`` (``isinstance`` checks still pass); everything not below is the
    response's own."""

    def __init__(self, wrapped: Any, exchange: _Exchange) -> None:
        super().__init__(wrapped)
        self._self_exchange = exchange
        self._self_content: ContentProxy | None = None

    @property
    def content(self) -> Any:
        content = self.__wrapped__.content
        proxy = self._self_content
        if proxy is None or proxy.__wrapped__ is not content:
            if content is None:
                return content
            proxy = self._self_content = ContentProxy(content, self._self_exchange)
        return proxy

    async def read(self) -> bytes:
        exchange = self._self_exchange
        try:
            body = await self.__wrapped__.read()
        except BaseException as exc:
            exchange.finish(exc)
            raise
        exchange.whole(body)
        return body

    async def _read_first(self) -> None:
        """What ``text()`` and ``json()`` do first: read the body unless it was read already."""
        exchange = self._self_exchange
        if exchange.done:
            return
        body = getattr(self.__wrapped__, "_body", None)
        if body is None:
            await self.read()
        else:
            exchange.whole(body)

    async def text(self, *args: Any, **kwargs: Any) -> str:
        await self._read_first()
        return await self.__wrapped__.text(*args, **kwargs)

    async def json(self, *args: Any, **kwargs: Any) -> Any:
        await self._read_first()
        return await self.__wrapped__.json(*args, **kwargs)

    def release(self) -> Any:
        try:
            return self.__wrapped__.release()
        finally:
            self._self_exchange.finish()

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_exchange.finish()

    async def wait_for_close(self) -> None:
        try:
            await self.__wrapped__.wait_for_close()
        finally:
            self._self_exchange.finish()

    def raise_for_status(self) -> None:
        try:
            self.__wrapped__.raise_for_status()
        except BaseException:
            if not getattr(self.__wrapped__, "_in_context", False):  # aiohttp released the response
                self._self_exchange.finish()
            raise

    async def __aenter__(self) -> ResponseProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(*exc_info)
        finally:
            self._self_exchange.finish()

    def __repr__(self) -> str:
        return repr(self.__wrapped__)


class ContentProxy(wrapt.ObjectProxy):
    """Wraps the response's ``StreamReader``: every read is shown to the exchange on its way."""

    def __init__(self, wrapped: Any, exchange: _Exchange) -> None:
        super().__init__(wrapped)
        self._self_exchange = exchange

    async def _observed(self, reading: Awaitable[bytes]) -> bytes:
        try:
            data = await reading
        except BaseException as exc:
            self._self_exchange.failed(exc)
            raise
        self._self_exchange.seen(data, self.__wrapped__)
        return data

    def readline(self, *args: Any, **kwargs: Any) -> Awaitable[bytes]:
        return self._observed(self.__wrapped__.readline(*args, **kwargs))

    def readuntil(self, *args: Any, **kwargs: Any) -> Awaitable[bytes]:
        return self._observed(self.__wrapped__.readuntil(*args, **kwargs))

    def read(self, *args: Any, **kwargs: Any) -> Awaitable[bytes]:
        return self._observed(self.__wrapped__.read(*args, **kwargs))

    def readany(self) -> Awaitable[bytes]:
        return self._observed(self.__wrapped__.readany())

    def readexactly(self, n: int) -> Awaitable[bytes]:
        return self._observed(self.__wrapped__.readexactly(n))

    async def readchunk(self) -> tuple[bytes, bool]:
        try:
            chunk = await self.__wrapped__.readchunk()
        except BaseException as exc:
            self._self_exchange.failed(exc)
            raise
        self._self_exchange.seen(chunk[0], self.__wrapped__)
        return chunk

    def read_nowait(self, *args: Any, **kwargs: Any) -> bytes:
        try:
            data = self.__wrapped__.read_nowait(*args, **kwargs)
        except BaseException as exc:
            self._self_exchange.failed(exc)
            raise
        self._self_exchange.seen(data, self.__wrapped__)
        return data

    def __aiter__(self) -> ObservedIterator:
        return ObservedIterator(self.__wrapped__.__aiter__(), self)

    def iter_chunked(self, n: int) -> ObservedIterator:
        return ObservedIterator(self.__wrapped__.iter_chunked(n), self)

    def iter_any(self) -> ObservedIterator:
        return ObservedIterator(self.__wrapped__.iter_any(), self)

    def iter_chunks(self) -> ObservedIterator:
        return ObservedIterator(self.__wrapped__.iter_chunks(), self, pairs=True)

    def __repr__(self) -> str:
        return repr(self.__wrapped__)


class ObservedIterator:
    """aiohttp's own iterator over the stream (so iteration behaves exactly as without aispend),
    showing each item to the exchange; the end of iteration or an error finishes it."""

    __slots__ = ("_exchange", "_inner", "_pairs", "_stream")

    def __init__(self, inner: Any, content: ContentProxy, pairs: bool = False) -> None:
        self._inner = inner
        self._exchange: _Exchange = content._self_exchange
        self._stream = content.__wrapped__
        self._pairs = pairs  # iter_chunks() yields (data, end_of_http_chunk)

    def __aiter__(self) -> ObservedIterator:
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self._inner.__anext__()
        except StopAsyncIteration:
            self._exchange.finish()
            raise
        except BaseException as exc:
            self._exchange.failed(exc)
            raise
        self._exchange.seen(item[0] if self._pairs else item, self._stream)
        return item
