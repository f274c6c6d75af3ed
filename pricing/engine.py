"""The price engine: one call, ``PriceEngine.price(usage, free_used)``, never raises for bad names.

Order of authority: the user's overrides, then aispend's price book, then genai-prices. A name
no source knows gives ``matched=False`` and cost 0, so the caller counts it as unpriced.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from aispend.pricing import names
from aispend.pricing.book import Discount, PriceBook, PriceEntry, load_book, shipped_book
from aispend.pricing.compute import compute
from aispend.pricing.library import LibraryModel, LibraryPrices
from aispend.pricing.records import UNMATCHED, ZERO, CostBreakdown, FreeTier, PriceResult, Rates, Usage, UsageRecord

if TYPE_CHECKING:
    from aispend.pricing.pricedata import PriceData

_CACHE_LIMIT = 20_000


@dataclass(frozen=True, slots=True)
class _Resolution:
    """Everything that can price one (provider, model) name, worked out once."""

    provider_id: str | None
    model: str
    overrides: tuple[PriceEntry, ...]
    book: tuple[PriceEntry, ...]
    library: LibraryModel | None
    discounts: tuple[Discount, ...]


def _images_only(rates: Rates) -> bool:
    return bool(rates.per_image) and not rates.has_token_prices and not rates.per_request


def _usable(rates: Rates, usage: Usage) -> bool:
    """Per-image prices are a fallback for image calls that reported no token usage."""
    return not _images_only(rates) or (usage.images > 0 and not (usage.input_tokens or usage.output_tokens))


def _pick(entries: tuple[PriceEntry, ...], usage: Usage, when: datetime) -> PriceEntry | None:
    best: PriceEntry | None = None
    for entry in entries:
        if not entry.active(when) or not _usable(entry.rates, usage):
            continue
        if best is None or (entry.effective_from or _EPOCH) > (best.effective_from or _EPOCH):
            best = entry
    return best


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _discounted(breakdown: CostBreakdown, fraction: Decimal) -> CostBreakdown:
    keep = 1 - fraction
    return CostBreakdown(
        input=breakdown.input * keep,
        cache_read=breakdown.cache_read * keep,
        cache_write=breakdown.cache_write * keep,
        output=breakdown.output * keep,
        request=breakdown.request * keep,
        image=breakdown.image * keep,
    )


class PriceEngine:
    """Prices usage records. Thread-safe; resolutions are cached per (provider, model) name."""

    def __init__(
        self,
        overrides: PriceBook | None = None,
        book: PriceBook | None = None,
        library: LibraryPrices | None = None,
        price_data: PriceData | None = None,
    ) -> None:
        """``price_data``: the genai-prices data to use (``pricedata.load()``: the user's cache or
        the bundled copy); without it, the bundled copy."""
        self.overrides = overrides or PriceBook()
        self.book = book if book is not None else shipped_book()
        self.price_data = price_data
        self.library = library or LibraryPrices(price_data.snapshot if price_data is not None else None)
        self._cache: dict[tuple[str, str], _Resolution] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_files(cls, overrides_path: str | Path | None = None, price_data: PriceData | None = None) -> PriceEngine:
        return cls(overrides=load_book(overrides_path) if overrides_path else None, price_data=price_data)

    def with_overrides(self, overrides: PriceBook) -> PriceEngine:
        """A new engine sharing the (immutable) shipped book and library caches."""
        return PriceEngine(overrides=overrides, book=self.book, library=self.library, price_data=self.price_data)

    def with_price_data(self, price_data: PriceData) -> PriceEngine:
        """A new engine with other genai-prices data, the same overrides and shipped book."""
        return PriceEngine(overrides=self.overrides, book=self.book, price_data=price_data)

    def resolve(self, provider: str, model: str) -> _Resolution:
        key = (provider, model)
        found = self._cache.get(key)
        if found is not None:
            return found
        pid = names.provider_id(provider)
        name = names.canonical_model(model, provider)
        name = self.overrides.aliases.get(name, name)
        found = _Resolution(
            provider_id=pid,
            model=name,
            overrides=self.overrides.matching(pid, name),
            book=self.book.matching(pid, name),
            library=self.library.find(provider or None, name),
            discounts=tuple(d for d in self.overrides.discounts if d.provider in (None, pid)),
        )
        with self._lock:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = found
        return found

    def rates_for(self, usage: UsageRecord) -> tuple[str, Rates, str | None, str | None] | None:
        """(source, rates, provider id, model id) that would price this usage, or None."""
        return self._rates(self.resolve(usage.provider, usage.model), usage, _when(usage.timestamp))

    def _rates(
        self, res: _Resolution, usage: Usage, when: datetime
    ) -> tuple[str, Rates, str | None, str | None] | None:
        for source, entries in (("override", res.overrides), ("book", res.book)):
            entry = _pick(entries, usage, when)
            if entry is not None:
                return source, entry.rates, res.provider_id, res.model
        if res.library is not None:
            rates = self.library.rates(res.library, when)
            if rates is not None:
                return "genai-prices", rates, res.library.provider_id, res.library.model_id
        return None

    def price(self, usage: UsageRecord, free_used: int | Callable[[FreeTier], int] = 0) -> PriceResult:
        """Cost of one call. ``free_used``: free-tier units this key already used this period, or
        a function of the free tier that looks it up (called only when the price has a free tier)."""
        return self.price_usage(usage.provider, usage.model, usage, _when(usage.timestamp), free_used)

    def price_usage(
        self,
        provider: str,
        model: str,
        usage: Usage,
        when: datetime,
        free_used: int | Callable[[FreeTier], int] = 0,
    ) -> PriceResult:
        """``price`` for any object with the usage fields (the exporter's calls), at ``when`` (aware)."""
        res = self.resolve(provider, model)
        found = self._rates(res, usage, when)
        if found is None:
            return UNMATCHED
        source, rates, provider_id, model_id = found
        if callable(free_used):
            free_used = free_used(rates.free_tier) if rates.free_tier is not None else 0
        breakdown, free = compute(rates, usage, free_used)
        discount = ZERO
        for d in res.discounts:
            if d.applies(res.provider_id, res.model, when):
                discount = d.fraction
                breakdown = _discounted(breakdown, discount)
                break
        return PriceResult(
            cost=breakdown.total,
            breakdown=breakdown,
            matched=True,
            source=source,
            provider_id=provider_id,
            model_id=model_id,
            rates=rates,
            free_units=free,
            discount=discount,
        )


def _when(ts: datetime | None) -> datetime:
    if ts is None:
        return datetime.now(UTC)
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


_default: PriceEngine | None = None
_default_lock = threading.Lock()


def default_engine() -> PriceEngine:
    global _default
    with _default_lock:
        if _default is None:
            _default = PriceEngine()
        return _default


def price(usage: UsageRecord, free_used: int = 0) -> PriceResult:
    """Price with the shipped book and genai-prices, no overrides."""
    return default_engine().price(usage, free_used)


__all__ = ["PriceEngine", "default_engine", "price"]
