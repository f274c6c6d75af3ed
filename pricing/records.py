"""The pricing engine's input and output: small frozen dataclasses, no behaviour.

Token counts follow the GenAI convention: ``input_tokens`` includes cache-read and
cache-write tokens, ``output_tokens`` includes reasoning tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

ZERO = Decimal(0)


class Usage(Protocol):
    """What pricing reads of a call; ``UsageRecord`` and the exporter's calls both have it."""

    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    requests: int
    images: int
    image_size: str | None
    image_quality: str | None


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One provider call, normalised. ``timestamp=None`` means now."""

    provider: str
    model: str
    operation: str = "chat"
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    requests: int = 1
    images: int = 0
    image_size: str | None = None
    image_quality: str | None = None
    timestamp: datetime | None = None


@dataclass(frozen=True, slots=True)
class Tier:
    """From ``above`` input tokens (exclusive) the whole call pays ``price`` (cliff pricing)."""

    above: int
    price: Decimal


@dataclass(frozen=True, slots=True)
class TieredPrice:
    base: Decimal
    tiers: tuple[Tier, ...] = ()

    def at(self, total_input_tokens: int) -> Decimal:
        for tier in reversed(self.tiers):
            if total_input_tokens > tier.above:
                return tier.price
        return self.base


Price = Decimal | TieredPrice


@dataclass(frozen=True, slots=True)
class FreeTier:
    """The first ``units`` request units of each key in each ``period`` cost nothing."""

    units: int
    period: str = "lifetime"  # lifetime | month | day


@dataclass(frozen=True, slots=True)
class Rates:
    """Flattened unit prices of one model at one moment.

    Token prices are USD per million tokens. ``None`` for a cache or reasoning price means those
    tokens are charged at the plain input / output price, as providers without a separate rate do.
    """

    input_mtok: Price = ZERO
    output_mtok: Price = ZERO
    cache_read_mtok: Price | None = None
    cache_write_mtok: Price | None = None
    reasoning_mtok: Price | None = None
    per_request: Decimal = ZERO
    # size -> quality -> USD per image; "*" is the fallback key at either level.
    per_image: dict[str, dict[str, Decimal]] | None = None
    free_tier: FreeTier | None = None

    @property
    def has_token_prices(self) -> bool:
        return self.input_mtok != ZERO or self.output_mtok != ZERO

    def image_price(self, size: str | None, quality: str | None) -> Decimal | None:
        if not self.per_image:
            return None
        by_quality = self.per_image.get(size or "*") or self.per_image.get("*")
        if by_quality is None:
            return None
        return by_quality.get(quality or "*", by_quality.get("*"))


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    input: Decimal = ZERO
    cache_read: Decimal = ZERO
    cache_write: Decimal = ZERO
    output: Decimal = ZERO
    request: Decimal = ZERO
    image: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.input + self.cache_read + self.cache_write + self.output + self.request + self.image


@dataclass(frozen=True, slots=True)
class PriceResult:
    """What a call cost. ``matched=False`` means no price was found and ``cost`` is 0."""

    cost: Decimal
    breakdown: CostBreakdown
    matched: bool
    source: str  # override | book | genai-prices | none
    provider_id: str | None = None
    model_id: str | None = None
    rates: Rates | None = None
    free_units: int = 0
    discount: Decimal = ZERO
    notes: tuple[str, ...] = field(default=())


UNMATCHED = PriceResult(cost=ZERO, breakdown=CostBreakdown(), matched=False, source="none")
