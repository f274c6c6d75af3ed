"""LLM token prices from the maintained ``genai-prices`` library, behind aispend's own interface.

genai-prices ships its price data inside the wheel (``genai_prices.data``); we only ever read that
bundled snapshot, so nothing here touches the network. Its own ``calc_price`` costs ~120 µs a call,
so we resolve (provider, model) once, flatten each ``ModelPrice`` into our ``Rates`` once, and do
the arithmetic in ``compute`` — the oracle test keeps the two in agreement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from genai_prices import data_snapshot
from genai_prices import types as gp

from aispend.pricing import names
from aispend.pricing.records import Price, Rates, Tier, TieredPrice

_THOUSAND = Decimal(1000)


@dataclass(frozen=True, slots=True)
class LibraryModel:
    provider_id: str
    model_id: str
    info: gp.ModelInfo


def _price(value: Any) -> Price | None:
    if value is None:
        return None
    if isinstance(value, gp.TieredPrices):
        tiers = tuple(Tier(above=t.start, price=Decimal(t.price)) for t in value.tiers)
        return TieredPrice(base=Decimal(value.base), tiers=tiers)
    return Decimal(value)


def flatten(model_price: gp.ModelPrice) -> Rates | None:
    """Our Rates for a genai-prices ModelPrice; None when it prices no unit aispend records."""
    values = model_price.__dict__
    input_mtok = _price(values.get("input_mtok"))
    output_mtok = _price(values.get("output_mtok"))
    requests_kcount = values.get("requests_kcount")
    if input_mtok is None and output_mtok is None and requests_kcount is None:
        return None
    zero = Decimal(0)
    return Rates(
        input_mtok=input_mtok if input_mtok is not None else zero,
        output_mtok=output_mtok if output_mtok is not None else zero,
        cache_read_mtok=_price(values.get("cache_read_mtok")),
        cache_write_mtok=_price(values.get("cache_write_mtok")),
        reasoning_mtok=_price(values.get("output_reasoning_mtok")),
        per_request=Decimal(requests_kcount) / _THOUSAND if requests_kcount is not None else zero,
    )


class LibraryPrices:
    """Cached lookups into the bundled genai-prices snapshot."""

    def __init__(self, snapshot: data_snapshot.DataSnapshot | None = None) -> None:
        self._snapshot = snapshot or data_snapshot.get_snapshot()
        self._models: dict[tuple[str | None, str], LibraryModel | None] = {}
        self._rates: dict[int, tuple[gp.ModelPrice, Rates | None]] = {}

    def find(self, provider: str | None, model: str) -> LibraryModel | None:
        key = (provider, model)
        try:
            return self._models[key]
        except KeyError:
            pass
        found: LibraryModel | None = None
        for pid, name in names.candidates(provider, model):
            try:
                prov, info = self._snapshot.find_provider_model(name, None, pid, None)
            except LookupError:
                continue
            found = LibraryModel(provider_id=prov.id, model_id=info.id, info=info)
            break
        self._models[key] = found
        return found

    def rates(self, model: LibraryModel, when: datetime) -> Rates | None:
        model_price = model.info.get_prices(when)
        cached = self._rates.get(id(model_price))
        if cached is None or cached[0] is not model_price:
            cached = (model_price, flatten(model_price))
            self._rates[id(model_price)] = cached
        return cached[1]
