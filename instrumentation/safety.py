"""Never break the host app: telemetry failures are logged once per place, then only at debug."""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("aispend.instrumentation")
_seen: set[str] = set()
_lock = threading.Lock()


def log_once(where: str, exc: BaseException | None = None, message: str = "") -> None:
    """Log an internal failure; the first time at WARNING, afterwards at DEBUG.

    Only the exception's type is logged by default: messages can carry request data, and an
    API key must never reach a log line.
    """
    with _lock:
        first = where not in _seen
        _seen.add(where)
    detail = f"{type(exc).__name__}" if exc is not None else ""
    text = f"aispend: {where} failed ({detail}){': ' + message if message else ''}; the call proceeds unchanged"
    logger.log(logging.WARNING if first else logging.DEBUG, text, exc_info=logger.isEnabledFor(logging.DEBUG))
