"""aispend's price engine: what one AI, search or image call cost, in exact Decimal USD.

LLM token prices come from the maintained ``genai-prices`` library (bundled data, offline);
search, image and per-request services from aispend's own ``pricebook.yaml``; the user's
overrides file wins over both.
"""

from aispend.pricing.book import PriceBook, PriceBookError, load_book, shipped_book
from aispend.pricing.engine import PriceEngine, default_engine, price
from aispend.pricing.records import CostBreakdown, FreeTier, PriceResult, Rates, UsageRecord

__all__ = [
    "CostBreakdown",
    "FreeTier",
    "PriceBook",
    "PriceBookError",
    "PriceEngine",
    "PriceResult",
    "Rates",
    "UsageRecord",
    "default_engine",
    "load_book",
    "price",
    "shipped_book",
]
