"""Label cleaning and pricing of one call. Pure given the price engine and, for a price with a free
tier, the units its key already used; so both can run where payloads are read (decode workers),
leaving only the free-tier calls to the pipeline, which holds that state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from aispend.exporter.config import LABELS
from aispend.exporter.labels import clean
from aispend.exporter.normalise import Call
from aispend.pricing import FreeTier, PriceEngine

_ZERO = Decimal(0)
# Every text the ledger stores is cleaned and bounded (trace and span ids are checked when read).
CLEANED_FIELDS = (*LABELS, "response_model", "price_model", "error_type", "kind", "response_id")
MAX_COST = Decimal(9_000_000_000)  # USD: the ledger's BIGINT of nano-dollars ends at 9.2e9
MAX_RESPONSE_ID = 256  # provider response ids are under 100 characters; a longer one is cut
FreeUsed = Callable[[FreeTier, datetime], int]


def clean_labels(call: Call, limit: int, clamped: dict[str, int]) -> None:
    """Control characters removed and values cut to ``limit``; each change counted by reason."""
    values = [getattr(call, name) or "" for name in CLEANED_FIELDS]
    if max(map(len, values)) <= limit and "".join(values).isprintable():
        return  # the common case: one check for all fields
    for name, value in zip(CLEANED_FIELDS, values, strict=True):
        cap = max(limit, MAX_RESPONSE_ID) if name == "response_id" else limit
        if value and (len(value) > cap or not value.isprintable()):
            cleaned, reason = clean(value, cap)
            if reason:
                setattr(call, name, cleaned)
                clamped[reason] = clamped.get(reason, 0) + 1


def price_call(engine: PriceEngine, call: Call, free_used: FreeUsed) -> tuple[FreeTier, datetime] | None:
    """Set the call's cost, ``priced`` and free units. Returns the free tier and period time when
    the call's request units count against one (the caller records them)."""
    when = datetime.fromtimestamp(call.start_ns / 1e9, UTC) if call.start_ns else datetime.now(UTC)
    tiers: list[FreeTier] = []

    def used(tier: FreeTier) -> int:
        tiers.append(tier)
        return free_used(tier, when)

    result = engine.price_usage(call.provider, call.price_model, call, when, used)
    if not result.matched and call.model and call.model != call.price_model:
        # e.g. a snapshot name the price data does not know yet: price what was asked for
        result = engine.price_usage(call.provider, call.model, call, when, used)
    if result.matched and call.usage_known:
        if not -MAX_COST < result.cost < MAX_COST:  # a broken override: unpriced (logged), not unstorable
            raise ValueError(f"a cost of ${result.cost:.2E} for one call is not plausible; check the prices")
        call.cost, call.priced, call.free_units = result.cost, True, result.free_units
    elif call.span_cost is not None and call.usage_known:
        call.cost, call.priced = Decimal(repr(call.span_cost)), True  # the instrumentation's own price
    else:
        call.cost = _ZERO
        billable = call.input_tokens or call.output_tokens or call.requests or call.images
        call.priced = not billable and call.usage_known  # nothing to price is not "unpriced"
    return (tiers[-1], when) if tiers and call.requests else None


class _FreeTierApplies(Exception):
    pass


def _stateless(tier: FreeTier, when: datetime) -> int:
    raise _FreeTierApplies


def price_if_stateless(engine: PriceEngine, call: Call) -> None:
    """Price the call unless its price has a free tier (or pricing fails): then ``cost`` stays None
    and the pipeline prices it."""
    try:
        price_call(engine, call, _stateless)
    except Exception:  # _FreeTierApplies, or a pricing bug the pipeline will log and count
        call.cost, call.priced, call.free_units = None, False, 0
