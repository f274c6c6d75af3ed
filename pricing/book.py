"""Price books: aispend's shipped ``pricebook.yaml`` and the user's overrides file share one schema.

A book is a list of entries (provider, model globs, unit prices, optional free tier and
``effective_from``), plus — in an overrides file — ``discounts`` and ``aliases``. Parsing is strict:
a typo in a price key is an error that names the entry, never a silently ignored price.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from aispend.pricing import names
from aispend.pricing.records import FreeTier, Price, Rates, Tier, TieredPrice
from aispend.yamlfile import load_yaml

_TOKEN_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "reasoning_mtok")
_ENTRY_KEYS = {
    "provider",
    "models",
    "kind",
    "per_request",
    "per_image",
    "free_tier",
    "effective_from",
    "source",
    "note",
    *_TOKEN_KEYS,
}
_FREE_PERIODS = ("lifetime", "month", "day")


class PriceBookError(ValueError):
    """A price book or overrides file that cannot be used; the message names the place."""


@dataclass(frozen=True, slots=True)
class PriceEntry:
    provider: str | None  # genai-prices style id; None matches any provider
    patterns: tuple[str, ...]
    rates: Rates
    effective_from: datetime | None = None
    kind: str | None = None
    source: str = ""

    def matches(self, provider_id: str | None, model: str) -> bool:
        if self.provider is not None and self.provider != provider_id:
            return False
        return any(fnmatch.fnmatchcase(model, p) for p in self.patterns)

    def active(self, when: datetime) -> bool:
        return self.effective_from is None or when >= self.effective_from


@dataclass(frozen=True, slots=True)
class Discount:
    provider: str | None
    patterns: tuple[str, ...]
    fraction: Decimal
    effective_from: datetime | None = None

    def applies(self, provider_id: str | None, model: str, when: datetime) -> bool:
        if self.provider is not None and self.provider != provider_id:
            return False
        if self.effective_from is not None and when < self.effective_from:
            return False
        return any(fnmatch.fnmatchcase(model, p) for p in self.patterns)


@dataclass(frozen=True, slots=True)
class PriceBook:
    entries: tuple[PriceEntry, ...] = ()
    discounts: tuple[Discount, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict)
    origin: str = ""

    def find(self, provider_id: str | None, model: str, when: datetime) -> PriceEntry | None:
        """The matching entry with the latest ``effective_from`` that has started."""
        best: PriceEntry | None = None
        for entry in self.entries:
            if not entry.matches(provider_id, model) or not entry.active(when):
                continue
            if best is None or _start(entry) > _start(best):
                best = entry
        return best

    def matching(self, provider_id: str | None, model: str) -> tuple[PriceEntry, ...]:
        return tuple(e for e in self.entries if e.matches(provider_id, model))


def _start(entry: PriceEntry) -> datetime:
    return entry.effective_from or datetime.min.replace(tzinfo=UTC)


def _money(value: Any, where: str) -> Decimal:
    if isinstance(value, bool):
        raise PriceBookError(f"{where}: expected a number, got {value!r}")
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise PriceBookError(f"{where}: expected a number, got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise PriceBookError(f"{where}: expected a non-negative number, got {value!r}")
    return amount


def _token_price(value: Any, where: str) -> Price:
    if isinstance(value, dict):
        unknown = set(value) - {"base", "tiers"}
        if unknown or "base" not in value:
            raise PriceBookError(f"{where}: a tiered price needs 'base' and 'tiers' only")
        tiers = []
        for i, tier in enumerate(value.get("tiers") or []):
            if not isinstance(tier, dict) or set(tier) != {"above", "price"}:
                raise PriceBookError(f"{where}.tiers[{i}]: needs 'above' and 'price'")
            tiers.append(Tier(above=int(tier["above"]), price=_money(tier["price"], f"{where}.tiers[{i}]")))
        return TieredPrice(base=_money(value["base"], f"{where}.base"), tiers=tuple(tiers))
    return _money(value, where)


def _when(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise PriceBookError(f"{where}: not an ISO date: {value!r}") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise PriceBookError(f"{where}: not a date: {value!r}")


def _patterns(raw: Any, where: str) -> tuple[str, ...]:
    if raw is None:
        return ("*",)
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(p, str) and p for p in raw):
        raise PriceBookError(f"{where}: 'models' must be a list of model names or globs")
    return tuple(p.strip().lower() for p in raw)


def _provider(raw: Any, where: str) -> str | None:
    if raw is None or raw == "*":
        return None
    if not isinstance(raw, str) or not raw.strip():
        raise PriceBookError(f"{where}: 'provider' must be a name")
    return names.provider_id(raw)


def _per_image(raw: Any, where: str) -> dict[str, dict[str, Decimal]]:
    if not isinstance(raw, dict):
        raise PriceBookError(f"{where}: 'per_image' maps size -> quality -> price")
    table: dict[str, dict[str, Decimal]] = {}
    for size, by_quality in raw.items():
        if not isinstance(by_quality, dict):
            by_quality = {"*": by_quality}
        table[str(size)] = {str(q): _money(p, f"{where}.{size}.{q}") for q, p in by_quality.items()}
    return table


def _free_tier(raw: Any, where: str) -> FreeTier:
    if not isinstance(raw, dict) or "units" not in raw:
        raise PriceBookError(f"{where}: 'free_tier' needs 'units' (and optional 'period')")
    period = raw.get("period", "lifetime")
    if period not in _FREE_PERIODS:
        raise PriceBookError(f"{where}: free_tier period must be one of {', '.join(_FREE_PERIODS)}")
    units = raw["units"]
    if isinstance(units, bool) or not isinstance(units, int) or units < 0:
        raise PriceBookError(f"{where}: free_tier units must be a non-negative integer")
    return FreeTier(units=units, period=period)


def parse_entry(raw: Any, where: str) -> PriceEntry:
    if not isinstance(raw, dict):
        raise PriceBookError(f"{where}: an entry must be a mapping")
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise PriceBookError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    priced = [k for k in (*_TOKEN_KEYS, "per_request", "per_image") if k in raw]
    if not priced:
        raise PriceBookError(f"{where}: no price given (one of {', '.join(_TOKEN_KEYS)}, per_request, per_image)")
    token = {k: _token_price(raw[k], f"{where}.{k}") for k in _TOKEN_KEYS if k in raw}
    zero = Decimal(0)
    rates = Rates(
        input_mtok=token.get("input_mtok", zero),
        output_mtok=token.get("output_mtok", zero),
        cache_read_mtok=token.get("cache_read_mtok"),
        cache_write_mtok=token.get("cache_write_mtok"),
        reasoning_mtok=token.get("reasoning_mtok"),
        per_request=_money(raw["per_request"], f"{where}.per_request") if "per_request" in raw else zero,
        per_image=_per_image(raw["per_image"], f"{where}.per_image") if "per_image" in raw else None,
        free_tier=_free_tier(raw["free_tier"], f"{where}.free_tier") if "free_tier" in raw else None,
    )
    return PriceEntry(
        provider=_provider(raw.get("provider"), where),
        patterns=_patterns(raw.get("models"), where),
        rates=rates,
        effective_from=_when(raw.get("effective_from"), f"{where}.effective_from"),
        kind=raw.get("kind"),
        source=str(raw.get("source", "")),
    )


def _parse_discount(raw: Any, where: str) -> Discount:
    if not isinstance(raw, dict) or "discount" not in raw:
        raise PriceBookError(f"{where}: a discount needs 'discount' (a fraction, e.g. 0.2)")
    unknown = set(raw) - {"provider", "models", "discount", "effective_from", "note"}
    if unknown:
        raise PriceBookError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    fraction = _money(raw["discount"], f"{where}.discount")
    if fraction >= 1:
        raise PriceBookError(f"{where}: discount must be a fraction below 1 (0.2 = 20% off)")
    return Discount(
        provider=_provider(raw.get("provider"), where),
        patterns=_patterns(raw.get("models"), where),
        fraction=fraction,
        effective_from=_when(raw.get("effective_from"), f"{where}.effective_from"),
    )


def parse_book(data: Any, origin: str) -> PriceBook:
    if data is None:
        return PriceBook(origin=origin)
    if not isinstance(data, dict):
        raise PriceBookError(f"{origin}: the top level must be a mapping")
    unknown = set(data) - {"prices", "discounts", "aliases", "as_of", "note"}
    if unknown:
        raise PriceBookError(f"{origin}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    entries = tuple(parse_entry(e, f"{origin}: prices[{i}]") for i, e in enumerate(data.get("prices") or []))
    discounts = tuple(
        _parse_discount(d, f"{origin}: discounts[{i}]") for i, d in enumerate(data.get("discounts") or [])
    )
    aliases_raw = data.get("aliases") or {}
    if not isinstance(aliases_raw, dict):
        raise PriceBookError(f"{origin}: 'aliases' maps a deployment or alias name to a model")
    aliases = {str(k).strip().lower(): str(v).strip() for k, v in aliases_raw.items()}
    return PriceBook(entries=entries, discounts=discounts, aliases=aliases, origin=origin)


def load_book(path: str | Path) -> PriceBook:
    return parse_book(load_yaml(path, PriceBookError), str(path))


def shipped_book() -> PriceBook:
    """aispend's own price book, shipped as package data."""
    text = resources.files("aispend.pricing").joinpath("pricebook.yaml").read_text(encoding="utf-8")
    return parse_book(yaml.safe_load(text), "pricebook.yaml")
