"""Stream proxies: the user iterates the real stream; each chunk is shown to a Tap on the way.

State lives on the proxy; the span ends exactly once (end of stream, close, an error while
reading, or garbage collection of an abandoned stream). Chunks are never held back or copied
into a buffer the user waits for.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterable, Iterator
from types import ModuleType
from typing import Any

import wrapt

from aispend.instrumentation.calls import BATCH_BYTES, Tap
from aispend.instrumentation.safety import log_once


def _finish(tap: Tap, error: BaseException | None = None) -> None:
    try:
        tap.finish(error)
    except Exception as exc:  # never let telemetry escape into the user's iteration
        log_once("finishing a stream", exc)


def _tapped(chunks: Iterable[bytes], tap: Tap) -> Iterator[bytes]:
    """Yield the chunks unchanged, keeping each in the tap; finish at the end, on abandon or error.
    ``Tap.feed``'s work is done inline: a call per chunk cost more than the rest of it."""
    held, size, first = tap.held, 0, True
    try:
        for chunk in chunks:
            if chunk:
                if first:
                    first = tap.first_chunk()
                held.append(chunk)
                size += len(chunk)
                if size > BATCH_BYTES:
                    held, size = tap.hand_over(), 0
            yield chunk
    except GeneratorExit:
        _finish(tap)
        raise
    except BaseException as exc:
        _finish(tap, exc)
        raise
    _finish(tap)


class _Forwarding:
    """What the httpx stream proxies share: the stream they wrap, the tap, every other attribute
    forwarded to the stream. Plain classes made per module (``byte_stream_proxies``) instead of
    ``wrapt.ObjectProxy``: making one and iterating through it cost ~27 K instructions less a
    streamed call, and a subclass of the module's own base class passes its isinstance checks."""

    def __init__(self, wrapped: Any, tap: Tap) -> None:
        self.__wrapped__ = wrapped
        self._self_tap = tap

    def __getattr__(self, name: str) -> Any:  # only for names the proxy itself does not have
        if name in ("__wrapped__", "_self_tap"):  # not set yet: never look them up on the stream
            raise AttributeError(name)
        return getattr(self.__wrapped__, name)

    def __repr__(self) -> str:
        return repr(self.__wrapped__)

    def __del__(self) -> None:
        _finish(self._self_tap)


class SyncStreamProxy(_Forwarding):
    """Wraps an httpx/httpx2 ``SyncByteStream``."""

    def __iter__(self) -> Iterator[bytes]:
        return _tapped(self.__wrapped__, self._self_tap)

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            _finish(self._self_tap)


class AsyncStreamProxy(_Forwarding):
    """Wraps an httpx/httpx2 ``AsyncByteStream``."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        tap = self._self_tap
        try:
            async for chunk in self.__wrapped__:
                tap.feed(chunk)  # the event loop's cost per chunk dwarfs the call
                yield chunk
        except GeneratorExit:
            _finish(tap)
            raise
        except BaseException as exc:
            _finish(tap, exc)
            raise
        _finish(tap)

    async def aclose(self) -> None:
        try:
            await self.__wrapped__.aclose()
        finally:
            _finish(self._self_tap)


@functools.cache
def byte_stream_proxies(module: ModuleType) -> tuple[type[SyncStreamProxy], type[AsyncStreamProxy]]:
    """The (sync, async) stream proxies for one httpx-like module: ``SyncStreamProxy`` and
    ``AsyncStreamProxy`` that are also its ``SyncByteStream`` and ``AsyncByteStream``."""
    sync = type("SyncStreamProxy", (SyncStreamProxy, module.SyncByteStream), {"__module__": __name__})
    asynchronous = type("AsyncStreamProxy", (AsyncStreamProxy, module.AsyncByteStream), {"__module__": __name__})
    return sync, asynchronous


class UrllibRawProxy(wrapt.ObjectProxy):
    """Wraps the urllib3 response behind ``requests.Response.raw`` for ``stream=True`` calls."""

    def __init__(self, wrapped: Any, tap: Tap) -> None:
        super().__init__(wrapped)
        self._self_tap = tap

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        return _tapped(self.__wrapped__.stream(*args, **kwargs), self._self_tap)

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        try:
            data = self.__wrapped__.read(*args, **kwargs)
        except BaseException as exc:
            _finish(self._self_tap, exc)
            raise
        if data:
            self._self_tap.feed(data)
        else:
            _finish(self._self_tap)
        return data

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            _finish(self._self_tap)

    def release_conn(self) -> None:
        try:
            self.__wrapped__.release_conn()
        finally:
            _finish(self._self_tap)

    def __del__(self) -> None:
        _finish(self._self_tap)
