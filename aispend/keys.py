"""API-key aliases: a name for a key that never reveals the key.

The fingerprint shows a short prefix and the last four characters (``sk-proj-…a1b2``); short keys
show a hash instead. An alias map (``{"sk-…a1b2": "prod-backend"}``) gives fingerprints names. The
same map is read by the instrumentation (``AISPEND_KEY_ALIASES``) and the exporter (aispend.yaml).
``looks_secret`` recognises a raw key where only a name should be (the exporter fingerprints such
values in any label before they reach the ledger or Prometheus).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping

# Vendor key prefixes worth showing (they tell keys apart at a glance and are not secret).
_PREFIX_RE = re.compile(
    r"^(sk-(?:proj-|ant-|svcacct-|admin-)?|tvly-(?:dev-|prod-)?|AIza|xai-|gsk_|pplx-|fw_|r8_|BSA|AKIA|ASIA)"
)
_MIN_LEN_FOR_SUFFIX = 16
# How keys and tokens of common providers begin (AWS access key ids, GitHub, Slack, Hugging Face,
# Stripe, JWTs too): a value of secret length that starts so is taken for a secret.
_SECRET_PREFIXES = (
    *("sk-", "sk_live_", "sk_test_", "rk_live_", "AIza", "xai-", "gsk_", "pplx-", "tvly-", "fw_", "r8_"),
    *("AKIA", "ASIA", "hf_", "ghp_", "gho_", "ghs_", "github_pat_", "xoxb-", "xoxp-", "glpat-", "eyJ"),
)
_TOKEN = re.compile(r"[A-Za-z0-9_\-+/=.]+")  # what keys are made of: no spaces, no punctuation
_SEPARATORS = re.compile(r"[-_./+=]")
_MIN_RANDOM_RUN = 32  # longer than the random ids apps use for customers (Clerk 27, Firebase 28)


def fingerprint(secret: str) -> str:
    """``sk-proj-…a1b2`` for long keys, ``key-<sha256[:8]>`` for short ones; never the secret."""
    secret = secret.strip()
    if not secret:
        return ""
    if len(secret) < _MIN_LEN_FOR_SUFFIX:
        return "key-" + hashlib.sha256(secret.encode()).hexdigest()[:8]
    match = _PREFIX_RE.match(secret)
    return f"{match.group(1) if match else ''}…{secret[-4:]}"


def looks_secret(value: str) -> bool:
    """A known key prefix on a value of key length, or a long high-entropy token (mixed case and
    digits: hex digests and UUIDs, which have one case, are ids, not secrets)."""
    if len(value) < _MIN_LEN_FOR_SUFFIX or not value.isascii() or not _TOKEN.fullmatch(value):
        return False  # short, already a fingerprint ("…"), or has spaces
    if value.startswith(_SECRET_PREFIXES):
        return True
    return len(value) >= _MIN_RANDOM_RUN and any(map(_random_run, _SEPARATORS.split(value)))


def _random_run(run: str) -> bool:
    if len(run) < _MIN_RANDOM_RUN or run.isdigit() or run.islower() or run.isupper() or run.isalpha():
        return False
    counts = [run.count(c) for c in set(run)]
    entropy = -sum(n / len(run) * math.log2(n / len(run)) for n in counts)
    return entropy >= 4.0


def redacted(value: str) -> str:
    """What a message may say about a value that was rejected: its length and fingerprint."""
    return f"<{len(value)} chars, {fingerprint(value) or 'blank'}>"


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
