"""Label values made safe for Prometheus: clean, short, and bounded in number per label.

Past ``limit`` distinct values of a label, new values become ``__overflow__`` and are counted,
so one runaway customer id cannot turn the exporter into a memory leak.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

OVERFLOW = "__overflow__"
# control characters (NUL, which PostgreSQL TEXT cannot hold, among them) and lone surrogates (not
# UTF-8; OTLP/JSON's "\\ud800" escapes are the only way one arrives)
_CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def clean(value: str, max_length: int) -> tuple[str, str | None]:
    """(value without control characters, cut to max_length; the reason if it was changed)."""
    reason = None
    if _CONTROL.search(value):
        value = _CONTROL.sub("", value)
        reason = "label_control_chars"
    if len(value) > max_length:
        value = value[:max_length]
        reason = "label_too_long"
    return value, reason


class LabelBounds:
    """Remembers distinct values per label; not thread-safe (the pipeline holds its lock)."""

    def __init__(self, limits: Mapping[str, int]) -> None:
        self.limits = dict(limits)
        self._seen: dict[str, set[str]] = {label: set() for label in limits}
        self.overflows: dict[str, int] = {}

    def bound(self, label: str, value: str) -> str:
        seen = self._seen.get(label)
        if seen is None or value in seen or value == "":
            return value
        if len(seen) >= self.limits[label]:
            self.overflows[label] = self.overflows.get(label, 0) + 1
            return OVERFLOW
        seen.add(value)
        return value
