"""Make a BudgetExceededError pass through the SDK that made the request, unwrapped and unretried.

The Stainless-generated SDKs (openai >= 2, anthropic) re-raise their own error types unchanged
but wrap other exceptions from the transport in ``APIConnectionError`` and retry them. Raising an
error that is BOTH ``aispend.BudgetExceededError`` and the SDK's base error lets it reach the
app as itself. (openai < 2 wraps every exception; there the app sees ``APIConnectionError``
whose ``__cause__`` is the ``BudgetExceededError``.)
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from aispend.errors import BudgetExceededError

# User-Agent prefix -> (module, base error class), looked up only if the SDK is already imported
_SDKS = {"Anthropic/": ("anthropic", "AnthropicError"), "OpenAI/": ("openai", "OpenAIError")}
_classes: dict[tuple[type, type], type] = {}


def for_sdk(error: BudgetExceededError, headers: Mapping[str, str]) -> BudgetExceededError:
    agent = headers.get("user-agent", "")
    for prefix, (module_name, class_name) in _SDKS.items():
        if not agent.startswith(prefix):
            continue
        module = sys.modules.get(module_name)
        base = getattr(module, class_name, None) if module is not None else None
        if not isinstance(base, type) or isinstance(error, base):
            return error
        combined = _classes.get((type(error), base))
        if combined is None:
            combined = type(type(error).__name__, (type(error), base), {"__module__": type(error).__module__})
            _classes[(type(error), base)] = combined
        return combined(error.budget, error.limit_usd, error.spend_usd, error.period, error.resets_at)
    return error
