"""Exceptions aispend raises into the user's code on purpose (and only these)."""

from __future__ import annotations

from datetime import datetime


class BudgetExceededError(Exception):
    """An enforced budget covering this call is spent; the request was not sent.

    Raised by the instrumentation's budget guard before the request leaves the process.
    """

    def __init__(self, budget: str, limit_usd: float, spend_usd: float, period: str, resets_at: datetime) -> None:
        self.budget = budget
        self.limit_usd = limit_usd
        self.spend_usd = spend_usd
        self.period = period
        self.resets_at = resets_at
        super().__init__(
            f"aispend budget {budget!r} is exhausted: spent ${spend_usd:.2f} of ${limit_usd:.2f} this {period}; "
            f"resets at {resets_at.isoformat()}"
        )
