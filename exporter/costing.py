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
    call.book_cost = result.cost if result.matched and call.usage_known else None
    if result.matched and call.usage_known:
        if not -MAX_COST < result.cost < MAX_COST:  # a broken override: unpriced (logged), not unstorable
            raise ValueError(f"a cost of ${result.cost:.2E} for one call is not plausible; check the prices")
        call.cost, call.priced, call.free_units = result.cost, True, result.free_units
        call.cost_source = source_name(engine, result.source)
    elif call.span_cost is not None and call.usage_known:
        call.cost, call.priced = Decimal(repr(call.span_cost)), True  # the instrumentation's own price
        call.cost_source = "span"
    else:
        call.cost = _ZERO
        billable = call.input_tokens or call.output_tokens or call.requests or call.images
        call.priced = not billable and call.usage_known  # nothing to price is not "unpriced"
        call.cost_source = "none" if call.priced else unpriced_reason(call)
    if call.reported_cost is not None:  # the provider's own figure wins over every price table
        call.cost, call.priced, call.cost_source = call.reported_cost, True, "provider"
        call.book_mismatch = book_differs(call)
    return (tiers[-1], when) if tiers and call.requests else None


def source_name(engine: PriceEngine, source: str) -> str:
    """What priced a call, as the ledger keeps it: ``override``, ``book``, or ``genai-prices@<version>``
    (the price data's version: genai-prices' release when bundled, the SHA-256 prefix of a cached
    update; ``aispend prices`` and the ledger's ``price_data`` table say where and when it came from)."""
    if source == "genai-prices" and engine.price_data is not None:
        return f"{source}@{engine.price_data.version}"
    return source


def unpriced_reason(call: Call) -> str:
    """``no_usage``: the span said nothing of tokens (fix the instrumentation); ``no_price``: the
    usage is known but no price matched (add a price)."""
    return "no_price" if call.usage_known else "no_usage"


MISMATCH_FRACTION = Decimal("0.01")


def book_differs(call: Call) -> bool:
    """A provider-reported cost more than 1 % away from the price book's figure (no book price
    counts as $0): the price book is wrong or missing for this model."""
    if call.cost_source != "provider" or call.reported_cost is None:
        return False
    book = call.book_cost if call.book_cost is not None else _ZERO
    return abs(call.reported_cost - book) > MISMATCH_FRACTION * call.reported_cost


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
        call.cost, call.priced, call.free_units, call.book_cost, call.cost_source = None, False, 0, None, ""
        call.book_mismatch = False
