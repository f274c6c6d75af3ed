"""aispend: OpenTelemetry-native cost tracking for paid AI, search and image APIs.

``aispend.attribute(feature=..., customer=..., key=...)`` attributes the calls made inside a block
or decorated function; ``aispend.BudgetExceededError`` is raised when an enforced budget is spent.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("aispend")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["BudgetExceededError", "__version__", "attribute"]


def __getattr__(name: str) -> Any:
    # Imported lazily so `import aispend.pricing` does not pull in OpenTelemetry.
    if name == "attribute":
        from aispend.instrumentation.attribution import attribute

        return attribute
    if name == "BudgetExceededError":
        from aispend.errors import BudgetExceededError

        return BudgetExceededError
    raise AttributeError(f"module 'aispend' has no attribute {name!r}")
