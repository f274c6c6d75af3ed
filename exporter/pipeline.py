"""receive -> read -> price -> record, for one OTLP export at a time; and settling.

The ledger decides what counts (``ledger.Ledger.record``: identity, the best span, free tiers and
budget spend, in one transaction); only what it counted is then added to this replica's counters.
If the ledger cannot record a batch nothing is applied and the caller answers with a retryable
status; when the sender retries, the ledger recognises what did land. A span that cannot be used
is rejected with a reason; the rest of its batch is still recorded. ``settle`` counts the spans
that waited for a better span of their call (other instrumentations' spans).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from aispend.exporter.budgets import BudgetTracker
from aispend.exporter.config import LABELS, ExporterConfig
from aispend.exporter.costing import clean_labels, price_call, price_if_stateless, unpriced_reason
from aispend.exporter.decode_pool import DecodePool, DecodersUnavailable
from aispend.exporter.labels import LabelBounds
from aispend.exporter.ledger import Accounting, FreeUsed, Ledger, LedgerError, Outcome, is_ephemeral, open_ledger
from aispend.exporter.metrics import UsageMetrics
from aispend.exporter.normalise import Call
from aispend.exporter.reading import Batch, read_request, read_with
from aispend.pricing import FreeTier, PriceEngine

logger = logging.getLogger("aispend.exporter")
_ZERO = Decimal(0)


class RetryableError(RuntimeError):
    """Nothing from this batch was recorded; the sender should retry it."""


@dataclass(frozen=True, slots=True)
class BatchResult:
    spans: int
    recorded: int
    rejected: int
    duplicates: int
    message: str = ""
    pending: int = 0  # recorded, counted once they settle


class _ThrottledLog:
    """At most one log line per reason per interval, with how many were suppressed."""

    def __init__(self, interval: float = 60.0) -> None:
        self._interval = interval
        self._last: dict[str, tuple[float, int]] = {}

    def warn(self, reason: str, detail: str) -> None:
        now = time.monotonic()
        last, suppressed = self._last.get(reason, (0.0, 0))
        if now - last >= self._interval:
            extra = f" ({suppressed} more since the last message)" if suppressed else ""
            logger.warning("rejected span (%s): %s%s", reason, detail, extra)
            self._last[reason] = (now, 0)
        else:
            self._last[reason] = (last, suppressed + 1)


class Pipeline:
    def __init__(
        self,
        config: ExporterConfig,
        engine: PriceEngine,
        ledger: Ledger | None,
        metrics: UsageMetrics,
        budgets: BudgetTracker | None = None,
        decoders: DecodePool | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config
        self.decoders = decoders
        self.engine = engine
        self.ledger = ledger if ledger is not None else open_ledger("none")
        self.ephemeral = is_ephemeral(self.ledger.url)  # kept in memory: a bounded dedupe window
        self.instance = config.instance()
        self.metrics = metrics
        self.budgets = budgets
        self.bounds = LabelBounds(config.label_limits, config.max_series, LABELS)
        self.metrics.overflow = lambda: dict(self.bounds.overflows)
        self.metrics.series_overflow = lambda: self.bounds.series_overflows
        self.clock = clock
        self.settle_ns = int(config.settle_seconds * 1e9)
        self._settle_from = 0  # after a restart, give a backlog of better spans one delay to arrive
        self.lock = threading.Lock()
        self._log = _ThrottledLog()
        self._batches = 0

    # -- start-up -------------------------------------------------------------------------------
    def restore(self) -> None:
        """This instance's counters, duration histogram and unpriced counts as the ledger holds them."""
        with self.lock:
            self._settle_from = self.clock() + self.settle_ns
            if self.ephemeral:
                return
            adopted = self.ledger.adopt_unowned(self.instance)
            if adopted:
                logger.warning("instance %s took over %d calls an older aispend recorded", self.instance, adopted)
            # the same values keep their own series as before the restart; the exact order (a scan
            # of the calls) is needed only when the bounds bite
            label_sets = self.ledger.first_seen(self.instance, exact=False)
            if not self.bounds.all_fit(label_sets):
                label_sets = self.ledger.first_seen(self.instance)
            self.bounds.restore_order(label_sets)
            for labels, status, tokens, cost, calls in self.ledger.totals(self.instance):
                self.metrics.restore(self.bounds.series(labels), cost, tokens, {status: calls})
            for (provider, model, operation, status), seconds, buckets in self.ledger.durations(self.instance):
                key = (
                    self.bounds.bound("provider", provider),
                    self.bounds.bound("model", model),
                    self.bounds.bound("operation", operation),
                    status,
                )
                self.metrics.restore_duration(key, seconds, buckets)
            for provider, model, reason, count in self.ledger.unpriced_totals(self.instance):
                key = (self.bounds.bound("provider", provider), self.bounds.bound("model", model), reason)
                self.metrics.unpriced[key] = self.metrics.unpriced.get(key, 0) + count
            self.bounds.series_overflows = 0  # calls are counted as they arrive, not again at restore
            for provider, model, count in self.ledger.mismatch_totals(self.instance):
                key = (self.bounds.bound("provider", provider), self.bounds.bound("model", model))
                self.metrics.cost_mismatch[key] = self.metrics.cost_mismatch.get(key, 0) + count

    def count_malformed(self, reason: str = "malformed_payload") -> None:
        """A whole export request that could not be decoded or was refused (the receivers answer it)."""
        with self.lock:
            UsageMetrics.bump(self.metrics.rejected, reason)

    # -- one export -----------------------------------------------------------------------------
    def export(self, request: ExportTraceServiceRequest) -> BatchResult:
        return self.record(read_request(request, self.config.max_tokens_per_call, self.config.key_aliases))

    def export_payload(self, body: bytes, as_json: bool = False) -> BatchResult:
        """A receiver's body. Raises ``otlp.MalformedPayload`` (the receiver answers and counts it)
        or ``RetryableError``. With ``decoders``, reading happens in their processes."""
        if self.decoders is not None:
            try:
                batch = self.decoders.read(body, as_json)
            except DecodersUnavailable as exc:
                raise RetryableError(str(exc)) from exc
        else:
            batch = read_with(self.config, body, as_json)
        return self.record(batch)

    def record(self, batch: Batch) -> BatchResult:
        for reason, detail in batch.examples.items():
            self._log.warn(reason, detail)
        clamped = dict(batch.clamped)
        if not batch.prepared:
            limit = self.config.label_max_length
            for call in batch.calls:
                clean_labels(call, limit, clamped)
                price_if_stateless(self.engine, call)
        with self.lock:
            self.metrics.spans_received += batch.spans
            for reason, n in batch.rejected.items():
                UsageMetrics.bump(self.metrics.rejected, reason, n)
            outcome = self._write(lambda acc: self.ledger.record(batch.calls, acc))
            for reason, n in clamped.items():
                UsageMetrics.bump(self.metrics.clamped, reason, n)
        n_rejected = sum(batch.rejected.values())
        duplicates = sum(outcome.duplicates.values()) - outcome.duplicates.get("superseded", 0)
        return BatchResult(
            batch.spans,
            len(outcome.counted) + outcome.pending,
            n_rejected,
            duplicates,
            "; ".join(batch.messages),
            outcome.pending,
        )

    def settle(self, now_ns: int | None = None) -> int:
        """Count the spans whose wait for a better span is over; how many calls counted."""
        now = self.clock() if now_ns is None else now_ns
        if now_ns is None and now < self._settle_from:
            return 0
        with self.lock:
            return len(self._write(lambda acc: self.ledger.settle(acc), now).counted)

    def _write(self, write: Callable[[Accounting], Outcome], now_ns: int | None = None) -> Outcome:
        now = self.clock() if now_ns is None else now_ns
        windows = self.budgets.windows(now) if self.budgets is not None else ()
        acc = Accounting(self.instance, self.settle_ns, self._price, windows, now)
        try:
            outcome = write(acc)
        except LedgerError as exc:
            logger.error("%s; the batch will be retried by the sender", exc)
            raise RetryableError(str(exc)) from exc
        for reason, n in outcome.duplicates.items():
            if n:
                UsageMetrics.bump(self.metrics.deduplicated, reason, n)
        self._apply(outcome.counted)
        if self.budgets is not None and outcome.counted:
            self.budgets.changed()
        self._batches += 1
        if self.ephemeral and self._batches % 64 == 0:
            self.ledger.prune_to(self.config.dedupe_window)
        return outcome

    def _price(self, call: Call, free_used: FreeUsed) -> tuple[FreeTier, datetime] | None:
        """Pricing inside the ledger's transaction (a price with a free tier reads its shared state)."""
        try:
            return price_call(self.engine, call, free_used)
        except LedgerError:  # a free-tier lookup could not read the ledger: retry the batch
            raise
        except Exception:  # a pricing bug must not make the sender retry this batch forever
            logger.exception("pricing %s/%s failed; counted as unpriced", call.provider, call.price_model)
            call.cost, call.priced, call.book_cost = _ZERO, False, None
            return None

    def _apply(self, calls: list[Call]) -> None:
        metrics, series = self.metrics, self.bounds.series
        for c in calls:
            labels = series((c.service, c.provider, c.model, c.operation, c.feature, c.customer, c.key))
            tokens = (c.input_tokens, c.output_tokens, c.cache_read_tokens, c.cache_write_tokens, c.reasoning_tokens)
            duration_key = (labels[1], labels[2], labels[3], c.status)
            metrics.add_call(labels, c.cost, tokens, c.status, duration_key, c.duration_s, c.trace_id)
            if not c.priced:
                key = (labels[1], labels[2], unpriced_reason(c))
                metrics.unpriced[key] = metrics.unpriced.get(key, 0) + 1
            elif c.book_mismatch:
                key = (labels[1], labels[2])
                metrics.cost_mismatch[key] = metrics.cost_mismatch.get(key, 0) + 1
