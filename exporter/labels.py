"""Label values made safe for Prometheus: clean, short, and bounded in number per label and in
label sets overall.

Past ``limit`` distinct values of a label, new values become ``__overflow__`` and are counted,
so one runaway customer id cannot turn the exporter into a memory leak. Limits per label do not
bound their product (1,000 features x 300 customers, each under its limit, are 300,000 series and
a scrape far past Prometheus's timeout), so the number of label sets is bounded too: past
``max_series`` a new label set keeps service, provider, model and operation and is counted under
``feature``, ``customer`` and ``key`` = ``__overflow__`` (at most ``max_series // 10`` such sets;
past those, every label is ``__overflow__``), and each such call is counted in
``aispend_series_overflow_total``. Totals stay exact; only the breakdown is coarser.

Which values keep their own series is decided in the order values were first recorded, live and
at restore alike: the restore replays the ledger's label sets in first-seen order
(``Ledger.first_seen``) through the same ``series()``, so a restart keeps the same ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

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


# the labels a label set past max_series keeps (what the cost is for); the others become OVERFLOW
_KEPT = 4  # service, provider, model, operation: the first four of config.LABELS
_FIT_CACHE = 100_000  # label sets remembered as needing no bounding (max_series bounds it first)


class LabelBounds:
    """Remembers distinct values per label and distinct label sets; not thread-safe (the pipeline
    holds its lock)."""

    def __init__(self, limits: Mapping[str, int], max_series: int = 0, labels: Sequence[str] = ()) -> None:
        self.limits = dict(limits)
        self._seen: dict[str, set[str]] = {label: set() for label in limits}
        self.overflows: dict[str, int] = {}
        self.labels = tuple(labels) or tuple(limits)  # the order of a label set's values
        self.max_series = max_series  # 0: no bound on label sets
        self._series: set[tuple[str, ...]] = set()
        self._coarse: set[tuple[str, ...]] = set()  # label sets made coarser past max_series
        self.series_overflows = 0  # calls counted under a coarser label set
        self._fit: set[tuple[str, ...]] = set()  # label sets seen whole (see _admitted)

    def series(self, values: Sequence[str]) -> tuple[str, ...]:
        """The label set one call is counted under: each value bounded per label, then the set
        bounded in number. The live path and the restore both call this, in first-seen order."""
        values = tuple(values)
        if values in self._fit:
            return values
        labels = tuple(self.bound(label, value) for label, value in zip(self.labels, values, strict=True))
        if not self.max_series or labels in self._series:
            self._admitted(values, labels)
            return labels
        if len(self._series) < self.max_series:
            self._series.add(labels)
            self._admitted(values, labels)
            return labels
        self.series_overflows += 1
        coarse = labels[:_KEPT] + (OVERFLOW,) * (len(labels) - _KEPT)
        if coarse in self._coarse or len(self._coarse) < max(1, self.max_series // 10):
            self._coarse.add(coarse)
            return coarse
        return (OVERFLOW,) * len(labels)

    def _admitted(self, values: tuple[str, ...], labels: tuple[str, ...]) -> None:
        # every value admitted and the set counted under itself: later calls with these values
        # have nothing to bound (admitted values and sets stay admitted), so skip the per-label work
        if labels == values and len(self._fit) < _FIT_CACHE:
            self._fit.add(values)

    def all_fit(self, label_sets: Sequence[Sequence[str]]) -> bool:
        """Whether every one of these label sets keeps its own series whatever the order (then the
        restore need not find out the order they came in)."""
        if self.max_series and len(label_sets) > self.max_series:
            return False
        for i, label in enumerate(self.labels):
            limit = self.limits.get(label)
            if limit is not None and len({values[i] for values in label_sets} - {""}) > limit:
                return False
        return True

    def restore_order(self, first_seen: Iterable[Sequence[str]]) -> None:
        """Admit the ledger's label sets in the order they were first recorded, before any
        counter is restored, so the same values keep their own series as before the restart."""
        for values in first_seen:
            self.series(values)

    def bound(self, label: str, value: str) -> str:
        seen = self._seen.get(label)
        if seen is None or value in seen or value == "":
            return value
        if len(seen) >= self.limits[label]:
            self.overflows[label] = self.overflows.get(label, 0) + 1
            return OVERFLOW
        seen.add(value)
        return value
