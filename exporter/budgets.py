"""Budgets: ``budgets.yaml`` parsing, calendar-period spend per budget, and run-time overrides.

PromQL cannot take ``increase()`` over a calendar month (range selectors are constants), so the
exporter keeps each budget's calendar day / month-to-date spend itself, in the configured
timezone, and exposes it as ``aispend_budget_spend_usd``. The spend lives in the ledger (one
figure for all replicas, changed in each batch's transaction), so a restart loses nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aispend.exporter.config import LABELS
from aispend.exporter.ledger import BudgetWindow, Ledger
from aispend.yamlfile import load_yaml

PERIODS = ("day", "month")
ENFORCE_MODES = ("false", "true", "warn")
DEFAULT_THRESHOLDS = (50, 75, 90, 100)
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


class BudgetsError(ValueError):
    """budgets.yaml cannot be used; the message names the place."""


@dataclass(frozen=True, slots=True)
class Budget:
    name: str
    period: str
    amount: Decimal
    scope: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS
    enforce: str = "false"  # false (alert only) | true (block) | warn (log and let through)
    labels: Mapping[str, str] = field(default_factory=dict)  # extra alert labels, e.g. team

    def covers(self, values: Mapping[str, str]) -> bool:
        return all(values.get(label) in allowed for label, allowed in self.scope.items())


@dataclass(frozen=True, slots=True)
class BudgetsFile:
    budgets: tuple[Budget, ...] = ()
    timezone: str = "UTC"


def _scope(raw: Any, where: str) -> dict[str, tuple[str, ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BudgetsError(f"{where}.scope: expected a mapping of label -> value(s)")
    out = {}
    for label, value in raw.items():
        if label not in LABELS:
            raise BudgetsError(f"{where}.scope: unknown label {label!r} (labels: {', '.join(LABELS)})")
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str | int) and str(v) for v in values):
            raise BudgetsError(f"{where}.scope.{label}: expected a value or a list of values")
        out[label] = tuple(str(v) for v in values)
    return out


def _budget(raw: Any, where: str) -> Budget:
    if not isinstance(raw, dict):
        raise BudgetsError(f"{where}: a budget must be a mapping")
    unknown = set(raw) - {"name", "scope", "period", "amount_usd", "thresholds", "enforce", "labels", "description"}
    if unknown:
        raise BudgetsError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    name = raw.get("name")
    if not isinstance(name, str) or not name or not set(name) <= _NAME_CHARS:
        raise BudgetsError(f"{where}.name: letters, digits, '-', '_' and '.' only")
    period = raw.get("period", "month")
    if period not in PERIODS:
        raise BudgetsError(f"{where}.period: one of {', '.join(PERIODS)}")
    try:
        amount = Decimal(str(raw.get("amount_usd")))
    except (InvalidOperation, ValueError):
        raise BudgetsError(f"{where}.amount_usd: expected a number") from None
    if not amount.is_finite() or amount <= 0:
        raise BudgetsError(f"{where}.amount_usd: must be a positive number")
    thresholds = raw.get("thresholds", list(DEFAULT_THRESHOLDS))
    if (
        not isinstance(thresholds, list)
        or not thresholds
        or not all(isinstance(t, int) and not isinstance(t, bool) and 0 < t <= 1000 for t in thresholds)
    ):
        raise BudgetsError(f"{where}.thresholds: a list of percentages, e.g. [50, 75, 90, 100]")
    enforce = raw.get("enforce", False)
    enforce = {True: "true", False: "false"}.get(enforce, enforce) if isinstance(enforce, bool) else str(enforce)
    if enforce not in ENFORCE_MODES:
        raise BudgetsError(f"{where}.enforce: true, false or warn")
    labels = raw.get("labels") or {}
    if not isinstance(labels, dict):
        raise BudgetsError(f"{where}.labels: expected a mapping")
    return Budget(
        name=name,
        period=period,
        amount=amount,
        scope=_scope(raw.get("scope"), where),
        thresholds=tuple(sorted(set(thresholds))),
        enforce=enforce,
        labels={str(k): str(v) for k, v in labels.items()},
    )


def parse_budgets(data: Any, origin: str = "budgets.yaml") -> BudgetsFile:
    if data is None:
        return BudgetsFile()
    if not isinstance(data, dict):
        raise BudgetsError(f"{origin}: the top level must be a mapping with 'budgets'")
    unknown = set(data) - {"budgets", "timezone"}
    if unknown:
        raise BudgetsError(f"{origin}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    tz = data.get("timezone", "UTC")
    try:
        ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        raise BudgetsError(f"{origin}: unknown timezone {tz!r}") from None
    raw = data.get("budgets") or []
    if not isinstance(raw, list):
        raise BudgetsError(f"{origin}: 'budgets' must be a list")
    budgets = tuple(_budget(b, f"{origin}: budgets[{i}]") for i, b in enumerate(raw))
    names = [b.name for b in budgets]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise BudgetsError(f"{origin}: duplicate budget name(s) {', '.join(sorted(duplicates))}")
    return BudgetsFile(budgets=budgets, timezone=str(tz))


def load_budgets(path: str | Path) -> BudgetsFile:
    return parse_budgets(load_yaml(path, BudgetsError), str(path))


def period_bounds(period: str, now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """Start and end (exclusive) of the calendar day or month containing ``now``, in ``tz``."""
    local = now.astimezone(tz)
    if period == "day":
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + timedelta(days=1)  # wall-clock arithmetic: right across DST changes
    else:
        start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def _ns(dt: datetime) -> int:
    return int(dt.timestamp()) * 1_000_000_000


@dataclass(slots=True)
class BudgetState:
    budget: Budget
    start: datetime
    end: datetime
    spend: Decimal
    limit: Decimal


class BudgetTracker:
    """Budgets' current periods and their spend, as every replica sees it: spend and overrides are
    kept in the ledger (changed in each batch's transaction) and read back at most every
    ``refresh`` seconds; thread-safe."""

    def __init__(
        self,
        budgets: BudgetsFile,
        ledger: Ledger,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        refresh: float = 1.0,
    ) -> None:
        self._ledger = ledger
        self._clock = clock
        self._refresh = refresh
        self._lock = threading.Lock()
        self._cache: tuple[float, list[BudgetState]] | None = None
        self._overrides: tuple[float, dict[str, tuple[str | None, int | None]]] | None = None
        self.file = budgets

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.file.timezone)

    def reload(self, budgets: BudgetsFile) -> None:
        with self._lock:
            self.file = budgets
            self._cache = None

    def changed(self) -> None:
        """Spend was recorded here: the next read shows it (other replicas' within ``refresh``)."""
        self._cache = None

    def _current_overrides(self) -> dict[str, tuple[str | None, int | None]]:
        now = time.monotonic()
        cached = self._overrides
        if cached is None or now - cached[0] >= self._refresh:
            cached = self._overrides = (now, self._ledger.budget_overrides())
        return cached[1]

    def windows(self, now_ns: int | None = None) -> list[BudgetWindow]:
        """Each budget's current period, from its start (or its last reset) to its end."""
        now = datetime.fromtimestamp(now_ns / 1e9, UTC) if now_ns is not None else self._clock()
        overrides = self._current_overrides()
        out = []
        for b in self.file.budgets:
            start, end = period_bounds(b.period, now, self.tz)
            since_ns = _ns(start)
            reset_at_ns = overrides.get(b.name, (None, None))[1]
            if reset_at_ns is not None and reset_at_ns >= since_ns:
                since_ns = reset_at_ns + 1  # calls that started after the reset
            out.append(BudgetWindow(b.name, b.scope, since_ns, _ns(end)))
        return out

    def states(self) -> list[BudgetState]:
        now = time.monotonic()
        with self._lock:
            cached = self._cache
            if cached is not None and now - cached[0] < self._refresh:
                return cached[1]
            when = self._clock()
            windows = self.windows(int(when.timestamp() * 1e9))
            spend = self._ledger.budget_spend(windows)
            overrides = self._current_overrides()
            states = []
            for b in self.file.budgets:
                start, end = period_bounds(b.period, when, self.tz)
                amount = overrides.get(b.name, (None, None))[0]
                limit = Decimal(amount) if amount is not None else b.amount
                states.append(BudgetState(b, start, end, spend.get(b.name, Decimal(0)), limit))
            self._cache = (now, states)
            return states

    def samples(self) -> Iterator[tuple[str, str, float, float]]:
        for s in self.states():
            yield s.budget.name, s.budget.period, float(s.spend), float(s.limit)

    def override(self, name: str, amount: Decimal | None, reset: bool) -> None:
        """Raise/lower a limit or restart a period's spend from zero, for every replica."""
        if not any(b.name == name for b in self.file.budgets):
            raise KeyError(name)
        reset_at_ns = int(self._clock().timestamp() * 1e9) if reset else None
        self._ledger.set_budget_override(name, str(amount) if amount is not None else None, reset_at_ns)
        with self._lock:
            self._cache = self._overrides = None

    def as_json(self) -> list[dict[str, Any]]:
        out = []
        for s in self.states():
            ratio = float(s.spend / s.limit) if s.limit else 0.0
            out.append(
                {
                    "name": s.budget.name,
                    "period": s.budget.period,
                    "scope": {k: list(v) for k, v in s.budget.scope.items()},
                    "limit_usd": float(s.limit),
                    "spend_usd": float(s.spend),
                    "remaining_usd": float(max(s.limit - s.spend, Decimal(0))),
                    "ratio": ratio,
                    "exhausted": s.spend >= s.limit,
                    "enforce": s.budget.enforce,
                    "thresholds": list(s.budget.thresholds),
                    "period_start": s.start.isoformat(),
                    "resets_at": s.end.isoformat(),
                }
            )
        return out
