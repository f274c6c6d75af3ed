"""Exporter settings, one frozen dataclass: command-line argument > ``AISPEND_*`` env > aispend.yaml > default.

Every key below is also the name used in aispend.yaml and (upper-cased, ``AISPEND_`` prefixed)
in the environment, so there is one name per setting.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aispend.exporter.ledger_location import default_ledger_url
from aispend.keys import parse_aliases
from aispend.yamlfile import load_yaml

LABELS = ("service", "provider", "model", "operation", "feature", "customer", "key")

DEFAULT_LABEL_LIMITS = {
    "service": 200,
    "provider": 100,
    "model": 1000,
    "operation": 50,
    "feature": 1000,
    "customer": 10000,
    "key": 1000,
}
MAX_TOKENS_LIMIT = 10**12
# settings read as non-negative integers (from flags, the environment and aispend.yaml alike)
_INTEGERS = (
    "retention_days",
    "label_max_length",
    "max_series",
    "dedupe_window",
    "max_tokens_per_call",
    "decode_workers",
    "max_spans_per_request",
    "max_resource_spans_per_request",
)


class ConfigError(ValueError):
    """A setting that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True)
class ExporterConfig:
    otlp_grpc: str = "127.0.0.1:4317"  # "" disables
    otlp_http: str = "127.0.0.1:4318"  # "" disables
    metrics: str = "127.0.0.1:9464"  # /metrics and the /v1 JSON API
    ledger: str = field(default_factory=default_ledger_url)  # the user's data dir; "none": metrics only
    retention_days: int = 90
    label_limits: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_LABEL_LIMITS))
    label_max_length: int = 128
    # label sets (series of aispend_cost_usd_total) before new ones are counted coarser: keeps a
    # scrape well inside Prometheus's scrape timeout (benchmarks/metrics_scrape.py); 0: no bound
    max_series: int = 5000
    key_aliases: Mapping[str, str] = field(default_factory=dict)
    prices: str | None = None  # user price overrides file
    budgets: str | None = None  # budgets.yaml
    timezone: str = "UTC"  # calendar day / month for budgets and `aispend usage`
    auth_token: str | None = None  # bearer token required on OTLP receivers
    admin_token: str | None = None  # bearer token required to change budgets at run time
    read_token: str | None = None  # bearer token for GET /metrics and /v1/* (see exporter/tokens.py)
    tls_cert: str | None = None
    tls_key: str | None = None
    dedupe_window: int = 200_000  # span ids remembered to drop retried exports
    max_tokens_per_call: int = 50_000_000  # above this a token count is treated as corrupt
    decode_workers: int = 0  # processes that decode and normalise payloads (0: in the receiving thread)
    instance_id: str = ""  # this replica's name in the ledger ("": host name and OTLP gRPC port)
    settle_seconds: float = 15.0  # how long other instrumentations' spans wait for aispend's span of the call
    budget_refresh_seconds: float = 1.0  # how often budget spend is read back from the shared ledger
    max_spans_per_request: int = 100_000  # more in one export request: 413 / RESOURCE_EXHAUSTED
    max_resource_spans_per_request: int = 10_000
    request_timeout: float = 30.0  # seconds an HTTP client may stay silent before it is disconnected
    native_reader: bool = True  # the compiled OTLP reader (package aispend-native), when installed

    @classmethod
    def load(
        cls,
        args: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        config_file: str | Path | None = None,
    ) -> ExporterConfig:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        path = config_file or env.get("AISPEND_CONFIG")
        if path:
            values.update(_read_file(Path(path)))
        for f in fields(cls):
            env_value = env.get(f"AISPEND_{f.name.upper()}")
            if env_value is not None:
                values[f.name] = env_value
        for name, value in (args or {}).items():
            if value is not None:
                values[name] = value
        return cls._coerce(values)

    @classmethod
    def _coerce(cls, values: dict[str, Any]) -> ExporterConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        out: dict[str, Any] = {}
        for name, value in values.items():
            if name in _INTEGERS:
                try:
                    out[name] = int(value)
                except (TypeError, ValueError):
                    raise ConfigError(f"{name}: expected an integer, got {value!r}") from None
                if out[name] < 0:
                    raise ConfigError(f"{name}: must not be negative")
                if name.startswith("max_") and name.endswith("_per_request") and out[name] < 1:
                    raise ConfigError(f"{name}: must be at least 1")
                if name == "max_tokens_per_call" and out[name] > MAX_TOKENS_LIMIT:
                    raise ConfigError(f"{name}: at most {MAX_TOKENS_LIMIT:,} (the ledger sums 64-bit integers)")
            elif name in ("settle_seconds", "budget_refresh_seconds"):
                try:
                    out[name] = float(value)
                except (TypeError, ValueError):
                    raise ConfigError(f"{name}: expected a number of seconds, got {value!r}") from None
                if not 0 <= out[name] <= 3600:
                    raise ConfigError(f"{name}: must be between 0 and 3600 seconds")
            elif name == "request_timeout":
                try:
                    out[name] = float(value)
                except (TypeError, ValueError):
                    raise ConfigError(f"{name}: expected a number of seconds, got {value!r}") from None
                if not 0 < out[name] < 86_400:
                    raise ConfigError(f"{name}: must be above 0 and below a day")
            elif name == "native_reader":
                out[name] = _boolean(name, value)
            elif name == "label_limits":
                limits = dict(DEFAULT_LABEL_LIMITS)
                limits.update(_limits(value))
                out[name] = limits
            elif name == "timezone":
                out[name] = _timezone(value)
            elif name == "key_aliases":
                out[name] = parse_aliases(value) if isinstance(value, str) else dict(value or {})
            else:
                out[name] = None if value in ("", None) and name not in ("otlp_grpc", "otlp_http") else value
        return cls(**out)

    def instance(self) -> str:
        """The replica's identity: configured, else host name and OTLP port, so two replicas on one
        host differ without configuration."""
        if self.instance_id:
            return self.instance_id
        port = (self.otlp_grpc or self.otlp_http).rpartition(":")[2]
        return f"{socket.gethostname()}:{port}"


def _limits(value: Any) -> dict[str, int]:
    if isinstance(value, str):  # "customer=5000,model=500"
        pairs = [p.split("=", 1) for p in value.split(",") if "=" in p]
        value = {k.strip(): v.strip() for k, v in pairs}
    if not isinstance(value, Mapping):
        raise ConfigError("label_limits: expected a mapping of label -> limit")
    out = {}
    for label, limit in value.items():
        if label not in LABELS:
            raise ConfigError(f"label_limits: unknown label {label!r} (labels: {', '.join(LABELS)})")
        try:
            out[label] = int(limit)
        except (TypeError, ValueError):
            raise ConfigError(f"label_limits.{label}: expected an integer") from None
    return out


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected true or false, got {value!r}")


def _timezone(value: Any) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"timezone: unknown timezone {value!r} (an IANA name, e.g. Europe/Berlin or UTC)") from None
    return str(value)


def _read_file(path: Path) -> dict[str, Any]:
    data = load_yaml(path, ConfigError)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"not a host:port address: {address!r}")
    return host.strip("[]") or "0.0.0.0", int(port)
