"""An encoder for AWS's binary event stream (``application/vnd.amazon.eventstream``), as Bedrock's
ConverseStream and InvokeModelWithResponseStream send it.

Each message: a 12-byte prelude (total length, headers length, both big-endian uint32, then the
CRC32 of those 8 bytes), the headers, the payload, and the CRC32 of everything before it. A header
is a 1-byte name length, the name, a 1-byte value type and the value (strings: type 7, 2-byte
length, UTF-8). Tests check it against botocore's own parser (``botocore.eventstream``).
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from typing import Any

_STRING = 7
_BYTES = 6


HeaderValue = str | bytes | bool | int


def _header(name: str, value: HeaderValue) -> bytes:
    """A header: string (7), bytes (6), bool (0 true / 1 false, no value) or int32 (4)."""
    head = struct.pack("!B", len(name.encode())) + name.encode()
    if isinstance(value, bool):
        return head + struct.pack("!B", 0 if value else 1)
    if isinstance(value, int):
        return head + struct.pack("!Bi", 4, value)
    kind, raw = (_STRING, value.encode()) if isinstance(value, str) else (_BYTES, value)
    return head + struct.pack("!BH", kind, len(raw)) + raw


def message(headers: dict[str, HeaderValue], payload: bytes) -> bytes:
    """One event-stream message."""
    head = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack("!II", total, len(head))
    prelude += struct.pack("!I", binascii.crc32(prelude) & 0xFFFFFFFF)
    body = prelude + head + payload
    return body + struct.pack("!I", binascii.crc32(body) & 0xFFFFFFFF)


def event(event_type: str, payload: Any) -> bytes:
    """An ``event`` message with a JSON payload, as Bedrock frames each stream event."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return message(headers, data)


def exception(exception_type: str, text: str) -> bytes:
    """An ``exception`` message (e.g. ``throttlingException``, ``modelStreamErrorException``)."""
    headers = {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}
    return message(headers, json.dumps({"message": text}).encode())


def chunk(native: dict[str, Any], padding: str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0") -> bytes:
    """An InvokeModelWithResponseStream ``chunk`` event: model-native JSON, base64, with the
    ``p`` padding field Bedrock adds to hide the payload length."""
    data = base64.b64encode(json.dumps(native, separators=(",", ":")).encode()).decode()
    return event("chunk", {"bytes": data, "p": padding[: len(data) % 17 + 1]})
