"""Who caused a call: feature, customer and key alias, carried in a context variable.

``aispend.attribute(feature=..., customer=...)`` works as a context manager and as a decorator
for sync and async functions; contextvars make it follow asyncio tasks and threads started with
``contextvars.copy_context``. Resolution order for each field: request header
(``x-aispend-feature``) > innermost ``attribute()`` > OTel baggage (``aispend.feature``) > the
key detected on the request (key only) > environment default (``AISPEND_FEATURE``).
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, TypeVar

from opentelemetry import baggage
from opentelemetry.context import Context

from aispend import semconv

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Attribution:
    feature: str | None = None
    customer: str | None = None
    key: str | None = None

    def merged_over(self, base: Attribution) -> Attribution:
        return Attribution(
            feature=self.feature or base.feature,
            customer=self.customer or base.customer,
            key=self.key or base.key,
        )


EMPTY = Attribution()
_current: contextvars.ContextVar[Attribution] = contextvars.ContextVar("aispend_attribution", default=EMPTY)


class attribute:
    """Attribute the AI calls made inside this block (or decorated function) to a feature,
    customer and/or key alias. Nested blocks override only the fields they set."""

    def __init__(self, feature: str | None = None, customer: str | None = None, key: str | None = None) -> None:
        self._values = Attribution(feature=feature, customer=customer, key=key)
        self._tokens: list[contextvars.Token[Attribution]] = []

    def __enter__(self) -> attribute:
        self._tokens.append(_current.set(self._values.merged_over(_current.get())))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _current.reset(self._tokens.pop())

    def __call__(self, func: F) -> F:
        values = self._values
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with attribute(values.feature, values.customer, values.key):
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        if inspect.isasyncgenfunction(func) or inspect.isgeneratorfunction(func):
            raise TypeError("aispend.attribute cannot decorate generators; use it as a `with` block inside")

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with attribute(values.feature, values.customer, values.key):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def current() -> Attribution:
    return _current.get()


def env_defaults(environ: Mapping[str, str] | None = None) -> Attribution:
    env = os.environ if environ is None else environ
    return Attribution(
        feature=env.get("AISPEND_FEATURE") or None,
        customer=env.get("AISPEND_CUSTOMER") or None,
        key=env.get("AISPEND_KEY") or None,
    )


def from_baggage(context: Context | None = None) -> Attribution:
    entries = baggage.get_all(context)
    if not entries:
        return EMPTY
    values = {f: entries.get(a) for f, a in semconv.ATTRIBUTION_ATTRIBUTES.items()}
    return Attribution(**{k: str(v) for k, v in values.items() if v})


def resolve(
    headers: Attribution,
    detected_key: str | None,
    defaults: Attribution,
    scoped: Attribution | None = None,
    context: Context | None = None,
) -> Attribution:
    """Apply the resolution order described in the module docstring.

    ``scoped`` and ``context`` are the ``attribute()`` values and OTel context as they were when
    the request left (the span is recorded later, on another thread); default: the current ones.
    """
    scoped = current() if scoped is None else scoped
    found = headers.merged_over(scoped) if headers is not EMPTY else scoped
    if baggage.get_all(context):
        found = found.merged_over(from_baggage(context))
    if detected_key and not found.key:
        found = replace(found, key=detected_key)
    return found.merged_over(defaults) if defaults != EMPTY else found
