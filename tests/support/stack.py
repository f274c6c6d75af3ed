"""Shared set-up for tests that run the shipped configs and apps for real."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def point_alertmanager_at(config: dict, base_url: str) -> None:
    """The shipped alertmanager.yml, rewritten for a test only: every webhook and Slack URL goes to
    ``base_url/<receiver name>`` and group_wait / group_interval become 1s, so notifications arrive
    within seconds instead of the shipped 10s-5m. Routes, matchers, continue and inhibit rules
    stay exactly as shipped."""
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"{base_url}/{receiver['name']}"
        for slack in receiver.get("slack_configs", []):
            slack["api_url"] = f"{base_url}/{receiver['name']}"

    def shorten(route: dict) -> None:
        for key in ("group_wait", "group_interval"):
            if key in route:
                route[key] = "1s"
        for child in route.get("routes", []):
            shorten(child)

    config["route"]["group_wait"] = config["route"]["group_interval"] = "1s"
    shorten(config["route"])


def shop_app_env(fake_url: str, endpoint: str, protocol: str = "http/protobuf") -> dict[str, str]:
    """Environment for `opentelemetry-instrument python tests/apps/shop.py` against the fakes."""
    return {
        **os.environ,
        "FAKE_URL": fake_url,
        "PYTHONPATH": str(ROOT),
        "OTEL_SERVICE_NAME": "shop",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        # aispend alone; coexistence with openai-v2 has its own test
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "openai",  # openai-v2's entry point name
        "AISPEND_PROVIDER_URLS": ",".join(
            f"{provider}={fake_url}/{prefix}"
            for provider, prefix in (
                ("openai", "openai/v1"),
                ("anthropic", "anthropic"),
                ("serper", "serper"),
                ("unsplash", "unsplash"),
            )
        ),
    }
