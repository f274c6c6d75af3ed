"""The budget guard: stop a call before it leaves the process when an enforced budget is spent.

Opt-in with ``AISPEND_BUDGETS_URL`` (the exporter's ``GET /v1/budgets``; ``AISPEND_BUDGETS_TOKEN``
is the bearer token sent with it when the exporter protects reads). A daemon thread
refreshes the budget state every ``AISPEND_BUDGETS_REFRESH_SECONDS`` (default 10); the call's own
path only reads an index of the exhausted budgets, so a call no budget covers costs one or two
dict lookups. Per budget, ``enforce: true`` blocks (``aispend.BudgetExceededError``), ``warn`` logs
once per period and lets the call through, ``false`` only alerts (the exporter's business).

If the exporter cannot be reached the guard fails open (calls go through, one warning) unless
``AISPEND_BUDGETS_FAIL_CLOSED=true``, which blocks covered calls until it answers again.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opentelemetry.instrumentation.utils import suppress_instrumentation

from aispend.errors import BudgetExceededError
from aispend.instrumentation.attribution import Attribution
from aispend.instrumentation.config import InstrumentationConfig

logger = logging.getLogger("aispend.instrumentation")
_SCOPE_LABELS = ("provider", "model", "operation", "feature", "customer", "key", "service")


class BudgetStateUnavailableError(BudgetExceededError):
    """Fail-closed mode and the budget service has not answered: covered calls are held back."""

    def __str__(self) -> str:
        return f"aispend: budget state is unavailable ({self.budget}); the call was held back (fail-closed)"


@dataclass(frozen=True, slots=True)
class BudgetRule:
    name: str
    period: str
    scope: Mapping[str, frozenset[str]]
    limit_usd: float
    spend_usd: float
    exhausted: bool
    enforce: str  # true | warn | false
    resets_at: datetime

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BudgetRule:
        scope = {k: frozenset(str(v) for v in vs) for k, vs in (data.get("scope") or {}).items()}
        resets = datetime.fromisoformat(str(data.get("resets_at") or "2100-01-01T00:00:00+00:00"))
        return cls(
            name=str(data["name"]),
            period=str(data.get("period", "month")),
            scope=scope,
            limit_usd=float(data.get("limit_usd", 0)),
            spend_usd=float(data.get("spend_usd", 0)),
            exhausted=bool(data.get("exhausted", False)),
            enforce=str(data.get("enforce", "false")).lower(),
            resets_at=resets if resets.tzinfo else resets.replace(tzinfo=UTC),
        )

    def covers(self, values: Mapping[str, str]) -> bool:
        return all(values.get(label, "") in allowed for label, allowed in self.scope.items())

    def error(self) -> BudgetExceededError:
        return BudgetExceededError(self.name, self.limit_usd, self.spend_usd, self.period, self.resets_at)


class _Index:
    """Exhausted budgets by one of their scope values, so most calls need one lookup per label."""

    def __init__(self, rules: Iterable[BudgetRule]) -> None:
        self.unscoped: list[BudgetRule] = []
        self.by_label: dict[str, dict[str, list[BudgetRule]]] = {}
        for rule in rules:
            if not rule.scope:
                self.unscoped.append(rule)
                continue
            label, values = next(iter(rule.scope.items()))
            bucket = self.by_label.setdefault(label, {})
            for value in values:
                bucket.setdefault(value, []).append(rule)

    def __bool__(self) -> bool:
        return bool(self.unscoped or self.by_label)

    def matching(self, values: Mapping[str, str]) -> Iterable[BudgetRule]:
        yield from (r for r in self.unscoped if r.covers(values))
        for label, bucket in self.by_label.items():
            for rule in bucket.get(values.get(label, ""), ()):
                if rule.covers(values):
                    yield rule


class BudgetGuard:
    def __init__(
        self,
        url: str,
        refresh_seconds: float = 10.0,
        fail_closed: bool = False,
        service: str = "",
        fetch: Callable[[str], bytes] | None = None,
    ) -> None:
        self.url = url
        self.refresh_seconds = max(refresh_seconds, 0.05)
        self.fail_closed = fail_closed
        self.service = service
        self._fetch = fetch or _http_get
        self._block = _Index(())
        self._warn = _Index(())
        self._enforced = _Index(())
        self._warned: set[tuple[str, datetime]] = set()
        self._reachable = False
        self._ever_loaded = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unreachable_logged = False

    @classmethod
    def from_config(cls, config: InstrumentationConfig) -> BudgetGuard:
        import os

        token = config.budgets_token
        return cls(
            url=config.budgets_url or "",
            refresh_seconds=config.budgets_refresh_seconds,
            fail_closed=config.budgets_fail_closed,
            service=os.environ.get("OTEL_SERVICE_NAME", ""),
            fetch=(lambda url: _http_get(url, token)) if token else None,
        )

    # -- background refresh ---------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="aispend-budgets", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while True:
            self.refresh()
            if self._stop.wait(self.refresh_seconds):
                return

    def refresh(self) -> bool:
        try:
            with suppress_instrumentation():
                data = json.loads(self._fetch(self.url))
            rules = [BudgetRule.from_json(b) for b in data.get("budgets", [])]
        except Exception as exc:  # unreachable, timeout, bad JSON: fail open (or closed) as configured
            self._reachable = False
            if not self._unreachable_logged:
                self._unreachable_logged = True
                mode = "blocking covered calls (fail-closed)" if self.fail_closed else "letting calls through"
                logger.warning("aispend: budget state at %s unavailable (%s); %s", self.url, type(exc).__name__, mode)
            return False
        self.load_rules(rules)
        if self._unreachable_logged:
            logger.warning("aispend: budget state at %s is available again", self.url)
        self._unreachable_logged = False
        return True

    def load_rules(self, rules: Iterable[BudgetRule]) -> None:
        rules = list(rules)
        self._block = _Index(r for r in rules if r.exhausted and r.enforce == "true")
        self._warn = _Index(r for r in rules if r.exhausted and r.enforce == "warn")
        self._enforced = _Index(r for r in rules if r.enforce == "true")
        self._reachable = self._ever_loaded = True

    # -- the call path ------------------------------------------------------------------------------
    def check(self, provider: str, model: str | None, who: Attribution, operation: str = "") -> None:
        """Raise ``BudgetExceededError`` if an enforced, exhausted budget covers this call."""
        block, warn = self._block, self._warn
        if self._reachable:
            if not block and not warn:
                return
        elif not self.fail_closed:
            return
        values = {
            "provider": provider,
            "model": model or "",
            "operation": operation,
            "feature": who.feature or "",
            "customer": who.customer or "",
            "key": who.key or "",
            "service": self.service,
        }
        if not self._reachable:  # fail-closed: hold back whatever an enforced budget may cover
            if not self._ever_loaded or any(True for _ in self._enforced.matching(values)):
                raise BudgetStateUnavailableError(self.url, 0.0, 0.0, "", datetime.now(UTC))
            return
        for rule in block.matching(values):
            raise rule.error()
        for rule in warn.matching(values):
            key = (rule.name, rule.resets_at)
            if key not in self._warned:
                self._warned.add(key)
                logger.warning("aispend: %s (enforce: warn, the call goes through)", rule.error())


def _http_get(url: str, token: str | None = None) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=2) as response:
        return response.read()
