"""aispend instrumentation: every paid AI, search and image call becomes one GenAI span.

Usage, with no code change::

    pip install aispend
    OTEL_SERVICE_NAME=my-app OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 \\
        opentelemetry-instrument python app.py

or directly::

    from aispend.instrumentation import AiSpendInstrumentor
    AiSpendInstrumentor().instrument(tracer_provider=provider)

Calls are captured at the HTTP-client layer (``httpx`` and ``httpx2`` sync and async, which the
``openai`` and ``anthropic`` SDKs use, ``requests``, ``aiohttp``, and botocore's urllib3 session,
which boto3 uses), so any SDK version and raw HTTP calls are covered. Each client is hooked when
the app imports it (at once if it has already): ``instrument()`` itself imports none of them.
Each call to OpenAI (and Azure OpenAI and OpenAI-compatible hosts), Anthropic, Gemini, AWS
Bedrock, Cohere, Ollama, Serper, Tavily, Brave Search or Unsplash becomes a CLIENT span named
``"{operation} {model}"`` with ``gen_ai.*`` usage attributes and ``aispend.feature`` /
``aispend.customer`` / ``aispend.key`` attribution. The key attribute is an alias or a
fingerprint (``sk-…a1b2``), never the secret; prompt and completion text are recorded only when
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``.

Settings (keyword argument to ``instrument()`` or environment variable):

- ``provider_urls`` / ``AISPEND_PROVIDER_URLS``: extra base URLs, ``"groq=https://api.groq.com/openai/v1,
  openai=http://127.0.0.1:8000/v1"``; unknown provider names speak the OpenAI wire format.
- ``provider_names`` / ``AISPEND_PROVIDER_NAMES``: ``"10.0.0.5:8000=vllm"``, the provider name of
  OpenAI / Anthropic SDK calls to hosts aispend does not know (default: the host; such calls
  become spans without any setting, see docs/providers.md).
- ``attribution_headers`` / ``AISPEND_ATTRIBUTION_HEADERS``: ``"x-customer-id=customer,x-feature=feature"``
  (the default), request headers read and stripped beside ``x-aispend-*``.
- ``key_aliases`` / ``AISPEND_KEY_ALIASES``: ``"sk-…a1b2=prod-backend"``.
- ``AISPEND_FEATURE``, ``AISPEND_CUSTOMER``, ``AISPEND_KEY``: default attribution.
- ``budgets_url`` / ``AISPEND_BUDGETS_URL``: enable the budget guard (see ``aispend.budgets``);
  ``budgets_token`` / ``AISPEND_BUDGETS_TOKEN``: the bearer token it reads them with.

Latency: the calling thread does the work when the call ends (reads the usage from the last
bytes, makes the span): about as much CPU as one OTel span with its attributes costs again, and
less than the peers' (``benchmarks/instrumentation_overhead.py``, ``docs/overhead.md``).
``record_inline=False`` / ``AISPEND_RECORD_INLINE=false`` hands it to one background thread per
process (``aispend-recorder``) instead: less latency on each call, but more CPU in total and a
worse tail for every other call, which waits for the GIL while spans are made.
``TracerProvider.force_flush()`` and ``shutdown()`` (and so interpreter exit) wait for that
thread, so a serverless handler that flushes before returning loses nothing.

Double counting: when another GenAI instrumentation (opentelemetry-instrumentation-openai-v2,
OpenLLMetry, OpenLIT, or the Anthropic SDK's own spans) is active too, both spans are exported;
the aispend exporter counts each call once (same trace and ``gen_ai.response.id``), keeping the
aispend span because it carries attribution.
"""

from __future__ import annotations

import sys
from collections.abc import Collection
from types import ModuleType
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.instrumentation.utils import unwrap
from wrapt import register_post_import_hook, wrap_function_wrapper

from aispend import __version__
from aispend.instrumentation.attribution import attribute
from aispend.instrumentation.calls import Recorder, get_tracer
from aispend.instrumentation.config import InstrumentationConfig
from aispend.instrumentation.hooks import httpx_clients, requests_session
from aispend.instrumentation.package import _instruments_any
from aispend.instrumentation.safety import log_once
from aispend.instrumentation.worker import background, inline

__all__ = ["AiSpendInstrumentor", "attribute"]

# The modules whose clients are hooked, each when the app imports it (now, if it has already):
# importing a client the app does not use would cost its start-up time and memory, and made the
# openai SDK take its legacy-httpx paths on every request (~4 K instructions a call).
_HOOKED = ("httpx2", "httpx", "requests", "botocore.httpsession", "aiohttp", "opentelemetry.sdk.trace")
_watched: set[str] = set()  # modules with a post-import hook waiting (one per module and process)
_current: AiSpendInstrumentor | None = None  # the instrumentor the hooks wrap for, while instrumented


def _imported(module: ModuleType) -> None:
    """wrapt's post-import hook: runs under the import lock, right after ``module`` is imported."""
    instrumentor = _current
    if instrumentor is not None:
        instrumentor._hook(module)


class AiSpendInstrumentor(BaseInstrumentor):
    """Instruments httpx, httpx2, requests, botocore and aiohttp, each when it is imported; safe to
    instrument/uninstrument repeatedly."""

    def __init__(self) -> None:
        super().__init__()
        if hasattr(self, "_wrapped"):
            # BaseInstrumentor is a singleton: ``AiSpendInstrumentor()`` again returns this instance
            # and runs __init__ again, which must not forget what is wrapped (uninstrument would
            # leave it all in place)
            return
        self._wrapped: list[tuple[type, str]] = []
        self.recorder: Recorder | None = None
        self.guard: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments_any

    def _check_dependency_conflicts(self) -> Any:
        # Any one of the HTTP clients is enough (instruments-any); a missing one is not a conflict.
        return None

    def _instrument(self, **kwargs: Any) -> None:
        global _current
        settings = {k: kwargs[k] for k in _SETTINGS if k in kwargs}
        config = InstrumentationConfig.load(**settings)
        tracer = get_tracer(kwargs.get("tracer_provider"), __version__)
        budget_check = None
        if config.budgets_url:
            from aispend.instrumentation.budgets import BudgetGuard

            self.guard = BudgetGuard.from_config(config)
            self.guard.start()
            budget_check = self.guard.check
        jobs = inline if config.record_inline else background
        self.recorder = Recorder(tracer, config, budget_check=budget_check, jobs=jobs)
        _current = self
        for name in _HOOKED:
            module = sys.modules.get(name)
            if module is not None:
                self._hook(module)
            elif name not in _watched:  # wrapt runs the hook once, when the module is imported
                _watched.add(name)
                register_post_import_hook(_imported, name)

    def _hook(self, module: ModuleType) -> None:
        """Wrap what ``module`` (one of ``_HOOKED``) sends through; never twice."""
        assert self.recorder is not None
        name = module.__name__
        if name in ("httpx2", "httpx"):
            for cls, method, kind in httpx_clients.targets(module):
                factory = httpx_clients.sync_send if kind == "sync" else httpx_clients.async_send
                self._wrap(cls, method, factory(self.recorder, module))
        elif name == "requests":
            self._wrap(module.Session, "send", requests_session.send(self.recorder))
        elif name == "botocore.httpsession":  # boto3 (AWS Bedrock) sends through botocore's own urllib3 session
            from aispend.instrumentation.hooks import botocore_session

            self._wrap(module.URLLib3Session, "send", botocore_session.send(self.recorder))
        elif name == "aiohttp":
            from aispend.instrumentation.hooks import aiohttp_client

            self._wrap(module.ClientSession, "_request", aiohttp_client.request(self.recorder))
        elif name == "opentelemetry.sdk.trace":
            # Spans may be recorded on a background thread: whoever flushes or shuts down the SDK's
            # tracer provider (a serverless handler, atexit) gets the finished calls' spans too.
            self._wrap(module.TracerProvider, "force_flush", _flush_first)
            self._wrap(module.TracerProvider, "shutdown", _flush_first)

    def _wrap(self, cls: type, method: str, wrapper: Any) -> None:
        if (cls, method) in self._wrapped:
            return
        try:
            wrap_function_wrapper(cls, method, wrapper)
            self._wrapped.append((cls, method))
        except Exception as exc:
            log_once(f"wrapping {cls.__module__}.{cls.__qualname__}.{method}", exc)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the spans of every call that has finished so far are recorded (they are
        made on a background thread; see ``calls``). False if that took longer than ``timeout``."""
        return background.flush(timeout)

    def _uninstrument(self, **kwargs: Any) -> None:
        global _current
        if _current is self:
            _current = None  # the post-import hooks stay registered (wrapt cannot remove them) and do nothing
        background.flush(2.0)
        while self._wrapped:
            cls, method = self._wrapped.pop()
            unwrap(cls, method)
        if self.guard is not None:
            self.guard.stop()
            self.guard = None
        self.recorder = None


_SETTINGS = (
    "provider_urls",
    "provider_names",
    "attribution_headers",
    "key_aliases",
    "capture_content",
    "budgets_url",
    "budgets_token",
    "budgets_refresh_seconds",
    "budgets_fail_closed",
    "record_inline",
)


def _flush_first(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    try:
        background.flush(2.0)
    except Exception as exc:
        log_once("flushing recorded calls", exc)
    return wrapped(*args, **kwargs)
