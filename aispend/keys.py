"""API-key aliases: a name for a key that never reveals the key.

The fingerprint shows a short prefix and the last four characters (``sk-proj-…a1b2``); short keys
show a hash instead. An alias map (``{"sk-…a1b2": "prod-backend"}``) gives fingerprints names. The
same map is read by the instrumentation (``AISPEND_KEY_ALIASES``) and the exporter (aispend.yaml).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

# Vendor key prefixes worth showing (they tell keys apart at a glance and are not secret).
_PREFIX_RE = re.compile(r"^(sk-(?:proj-|ant-|svcacct-|admin-)?|tvly-(?:dev-|prod-)?|AIza|xai-|gsk_|pplx-|fw_|r8_|BSA)")
_MIN_LEN_FOR_SUFFIX = 16


def fingerprint(secret: str) -> str:
    """``sk-proj-…a1b2`` for long keys, ``key-<sha256[:8]>`` for short ones; never the secret."""
    secret = secret.strip()
    if not secret:
        return ""
    if len(secret) < _MIN_LEN_FOR_SUFFIX:
        return "key-" + hashlib.sha256(secret.encode()).hexdigest()[:8]
    match = _PREFIX_RE.match(secret)
    return f"{match.group(1) if match else ''}…{secret[-4:]}"


def parse_aliases(text: str) -> dict[str, str]:
    """``"sk-…a1b2=prod-backend, tvly-…9f00=research"`` -> mapping (fingerprint -> alias)."""
    out: dict[str, str] = {}
    for part in re.split(r"[,;\n]", text or ""):
        fp, sep, alias = part.partition("=")
        if sep and fp.strip() and alias.strip():
            out[fp.strip()] = alias.strip()
    return out


def alias_for(secret: str, aliases: Mapping[str, str]) -> str:
    fp = fingerprint(secret)
    return aliases.get(fp, fp)
