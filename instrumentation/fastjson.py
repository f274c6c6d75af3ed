"""JSON decoding of the bodies and events aispend reads: jiter when it is installed, else the
standard library, with the same values either way.

jiter (pydantic's parser, a dependency of the openai and anthropic SDKs, so nearly always here)
decodes a provider's body about 2.5 times faster than ``json``. It is only tried first: on
anything it rejects (invalid UTF-8, a lone surrogate escape, a UTF-16 body, junk) the standard
library decides, as it did before, so an input gives exactly the result ``json`` gives.
"""

from __future__ import annotations

import json
from typing import Any

try:
    from jiter import from_json as _jiter
except ImportError:  # pragma: no cover - exercised by the fallback test with jiter hidden
    _jiter = None

_DECODER = json.JSONDecoder()


def loads(data: bytes | bytearray | str) -> Any:
    """``json.loads`` of UTF-8 bytes or text (no encoding detection); raises ``ValueError`` on
    anything that is not one JSON document."""
    if _jiter is not None and type(data) is bytes:
        try:
            return _jiter(data, cache_mode="keys")
        except ValueError:
            pass  # the standard library decides: same answer as without jiter
    # decode() skips json.loads' checks for bytes and options
    return _DECODER.decode(data if isinstance(data, str) else data.decode("utf-8"))


def loads_lenient(data: bytes | str) -> Any:
    """The data of one SSE event or stream frame: invalid UTF-8 is replaced, as an SSE parser
    decodes an event's data; raises ``ValueError`` on anything that is not JSON."""
    if _jiter is not None and type(data) is bytes:
        try:
            return _jiter(data, cache_mode="keys")
        except ValueError:
            pass
    return _DECODER.decode(data if isinstance(data, str) else data.decode("utf-8", "replace"))
