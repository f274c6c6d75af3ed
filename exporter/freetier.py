"""Free-tier units each key has used per provider and period, restored lazily from the ledger."""

from __future__ import annotations

from datetime import UTC, datetime

from aispend.exporter.ledger import Ledger
from aispend.pricing import FreeTier


def period_start_day(tier: FreeTier, when: datetime) -> str | None:
    """First UTC day of the free tier's current period (None: the tier is for the key's lifetime)."""
    when = when.astimezone(UTC)
    if tier.period == "day":
        return when.strftime("%Y-%m-%d")
    if tier.period == "month":
        return when.strftime("%Y-%m-01")
    return None


class FreeTierUsage:
    def __init__(self, ledger: Ledger | None) -> None:
        self._ledger = ledger
        self._used: dict[tuple[str, str, str | None], int] = {}
        self._pending: dict[tuple[str, str, str | None], int] = {}

    def used(self, provider: str, key: str, tier: FreeTier, when: datetime) -> int:
        slot = (provider, key, period_start_day(tier, when))
        if slot not in self._used:
            self._used[slot] = self._ledger.units_used(provider, key, slot[2]) if self._ledger else 0
        return self._used[slot] + self._pending.get(slot, 0)

    def stage(self, provider: str, key: str, tier: FreeTier, when: datetime, units: int) -> None:
        slot = (provider, key, period_start_day(tier, when))
        self._pending[slot] = self._pending.get(slot, 0) + units

    def commit(self) -> None:
        for slot, units in self._pending.items():
            self._used[slot] = self._used.get(slot, 0) + units
        self._pending.clear()

    def rollback(self) -> None:
        self._pending.clear()
