"""receive -> normalise -> price -> record, for one OTLP export at a time.

Exactly-once accounting: a batch is normalised and priced, written to the ledger in one
transaction, and only then applied to the counters, the dedupe memory, free-tier usage and
budget spend. If the ledger write fails nothing is applied and the caller answers with a
retryable status; when the sender retries, spans that did land are recognised and skipped.
A span that cannot be used is rejected with a reason; the rest of its batch is still recorded.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from aispend.exporter.budgets import BudgetTracker
from aispend.exporter.config import LABELS, ExporterConfig
from aispend.exporter.costing import clean_labels, price_call, unpriced_reason
from aispend.exporter.decode_pool import DecodePool, DecodersUnavailable
from aispend.exporter.dedupe import Deduper
from aispend.exporter.freetier import FreeTierUsage
from aispend.exporter.labels import LabelBounds
from aispend.exporter.ledger import Ledger, LedgerError
from aispend.exporter.metrics import UsageMetrics
from aispend.exporter.normalise import Call
from aispend.exporter.reading import Batch, read_payload, read_request
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
    ) -> None:
        self.config = config
        self.decoders = decoders
        self.engine = engine
        self.ledger = ledger
        self.metrics = metrics
        self.budgets = budgets
        self.bounds = LabelBounds(config.label_limits)
        self.metrics.overflow = lambda: dict(self.bounds.overflows)
        self.deduper = Deduper(config.dedupe_window)
        self.free = FreeTierUsage(ledger)
        self.lock = threading.Lock()
        self._log = _ThrottledLog()

    # -- start-up -------------------------------------------------------------------------------
    def restore(self) -> None:
        """Counters, the duration histogram, unpriced counts and the dedupe memory as the ledger left them."""
        if self.ledger is None:
            return
        with self.lock:
            for labels, status, tokens, cost, calls in self.ledger.totals():
                bounded = tuple(self.bounds.bound(name, value) for name, value in zip(LABELS, labels, strict=True))
                self.metrics.restore(bounded, cost, tokens, {status: calls})
            for (provider, model, operation, status), seconds, buckets in self.ledger.durations():
                key = (
                    self.bounds.bound("provider", provider),
                    self.bounds.bound("model", model),
                    self.bounds.bound("operation", operation),
                    status,
                )
                self.metrics.restore_duration(key, seconds, buckets)
            for provider, model, reason, count in self.ledger.unpriced_totals():
                key = (self.bounds.bound("provider", provider), self.bounds.bound("model", model), reason)
                self.metrics.unpriced[key] = self.metrics.unpriced.get(key, 0) + count
            for provider, model, count in self.ledger.mismatch_totals():
                key = (self.bounds.bound("provider", provider), self.bounds.bound("model", model))
                self.metrics.cost_mismatch[key] = self.metrics.cost_mismatch.get(key, 0) + count
            for trace, span, parent, response_id, provider, start_ns, duration_s in self.ledger.recent_calls(
                self.config.dedupe_window
            ):
                end_ns = start_ns + int(duration_s * 1e9)
                self.deduper.remember(
                    bytes.fromhex(trace),
                    bytes.fromhex(span),
                    bytes.fromhex(parent),
                    response_id,
                    provider,
                    start_ns,
                    end_ns,
                )

    def count_malformed(self) -> None:
        """A whole export request that could not be decoded (the receivers answer it)."""
        with self.lock:
            UsageMetrics.bump(self.metrics.rejected, "malformed_payload")

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
            batch = read_payload(body, as_json, self.config.max_tokens_per_call, self.config.key_aliases)
        return self.record(batch)

    def record(self, batch: Batch) -> BatchResult:
        for reason, detail in batch.examples.items():
            self._log.warn(reason, detail)
        with self.lock:
            self.metrics.spans_received += batch.spans
            for reason, n in batch.rejected.items():
                UsageMetrics.bump(self.metrics.rejected, reason, n)
            recorded, duplicates = self._record(batch)
        n_rejected = sum(batch.rejected.values())
        return BatchResult(batch.spans, len(recorded), n_rejected, duplicates, "; ".join(batch.messages))

    def _record(self, batch: Batch) -> tuple[list[Call], int]:
        fresh: list[Call] = []
        duplicates: dict[str, int] = {}
        clamped = dict(batch.clamped)
        limit = self.config.label_max_length
        try:
            for call in batch.calls:
                if not batch.prepared:
                    clean_labels(call, limit, clamped)
                reason = self.deduper.duplicate(call)
                if reason is not None:
                    duplicates[reason] = duplicates.get(reason, 0) + 1
                    continue
                self.deduper.stage(call)
                try:
                    if call.cost is None:  # not priced where the payload was read
                        self._price(call)
                except LedgerError:  # a free-tier lookup could not read the ledger: retry the batch
                    raise
                except Exception:  # a pricing bug must not make the sender retry this batch forever
                    logger.exception("pricing %s/%s failed; counted as unpriced", call.provider, call.price_model)
                    call.cost, call.priced = _ZERO, False
                fresh.append(call)
            if self.ledger is not None:
                self.ledger.write(fresh)
        except LedgerError as exc:
            self.deduper.rollback()
            self.free.rollback()
            logger.error("%s; the batch will be retried by the sender", exc)
            raise RetryableError(str(exc)) from exc
        except BaseException:
            self.deduper.rollback()
            self.free.rollback()
            raise
        self.deduper.commit()
        self.free.commit()
        for reason, n in duplicates.items():
            UsageMetrics.bump(self.metrics.deduplicated, reason, n)
        for reason, n in clamped.items():
            UsageMetrics.bump(self.metrics.clamped, reason, n)
        self._apply(fresh)
        if self.budgets is not None:
            self.budgets.add(fresh)
        return fresh, sum(duplicates.values())

    def _price(self, call: Call) -> None:
        def free_used(tier: FreeTier, when: datetime) -> int:
            return self.free.used(call.provider, call.key, tier, when)

        staged = price_call(self.engine, call, free_used)
        if staged is not None:
            self.free.stage(call.provider, call.key, *staged, call.requests)

    def _apply(self, calls: list[Call]) -> None:
        metrics, bound = self.metrics, self.bounds.bound
        for c in calls:
            labels = (
                bound("service", c.service),
                bound("provider", c.provider),
                bound("model", c.model),
                bound("operation", c.operation),
                bound("feature", c.feature),
                bound("customer", c.customer),
                bound("key", c.key),
            )
            tokens = (c.input_tokens, c.output_tokens, c.cache_read_tokens, c.cache_write_tokens, c.reasoning_tokens)
            duration_key = (labels[1], labels[2], labels[3], c.status)
            metrics.add_call(labels, c.cost, tokens, c.status, duration_key, c.duration_s, c.trace_id)
            if not c.priced:
                key = (labels[1], labels[2], unpriced_reason(c))
                metrics.unpriced[key] = metrics.unpriced.get(key, 0) + 1
            elif c.book_mismatch:
                key = (labels[1], labels[2])
                metrics.cost_mismatch[key] = metrics.cost_mismatch.get(key, 0) + 1
