"""The seeds' figures, sent through the real exporter (OTLP/HTTP) for the console's tests."""

from __future__ import annotations

import time
import urllib.request

from tests.exporter.spans import llm, otlp_request

DAY_NS = 86_400 * 1_000_000_000
OLD_NS = time.time_ns() - 40 * DAY_NS  # in an earlier calendar month whatever today is


def _serper(queries: int, **extra: str) -> dict:
    return {
        "gen_ai.provider.name": "serper",
        "gen_ai.operation.name": "search",
        "aispend.service.kind": "search",
        "aispend.key": "serper-prod",
        "aispend.usage.requests": queries,
        **extra,
    }


def _unsplash(**extra: str) -> dict:
    return {
        "gen_ai.provider.name": "unsplash",
        "gen_ai.operation.name": "search",
        "aispend.service.kind": "image_search",
        "aispend.key": "unsplash-app",
        **extra,
    }


def _attrs(feature: str, customer: str, key: str) -> dict[str, str]:
    return {"aispend.feature": feature, "aispend.customer": customer, "aispend.key": key}


# (service, spans): costs per the seeds' prices
BATCHES = [
    (
        "shop",
        [
            # Claude 3.5 Haiku $0.80 / $4.00 per 1M: 1,000,000 in + 100,000 out = $0.80 + $0.40
            llm(
                "anthropic", "claude-3-5-haiku-20241022", 1_000_000, 100_000, **_attrs("chat", "globex", "prod-backend")
            ),
            # Claude 3.5 Sonnet $3 / $15 per 1M: 10,000 in + 2,000 out = $0.03 + $0.03
            llm("anthropic", "claude-3-5-sonnet-20241022", 10_000, 2_000, **_attrs("summary", "acme", "prod-backend")),
            # GPT-4: 150 + 75 tokens = $0.009
            llm("openai", "gpt-4", 150, 75, **_attrs("summary", "acme", "ci-runner")),
            llm("openai", "gpt-4", 150, 75, **_attrs("chat", "initech", "prod-backend")),
            {
                **llm("openai", "gpt-4", 0, 0, **_attrs("chat", "globex", "prod-backend")),
                "error.type": "rate_limit_exceeded",
                "http.response.status_code": 429,
            },
        ],
    ),
    # Serper: 2,500 free queries, then $1.00 per 1,000 (the next 3 cost $0.003)
    ("research", [_serper(2500, **{"aispend.feature": "research", "aispend.customer": "acme"})]),
    ("research", [_serper(3, **{"aispend.feature": "research", "aispend.customer": "acme"})]),
    # Unsplash: $0
    ("shop", [_unsplash(**{"aispend.feature": "images", "aispend.customer": "globex"})]),
]
# many free calls, so the call log has more than one page
BATCHES.append(("shop", [_unsplash(**{"aispend.feature": "gallery", "aispend.customer": "bulkco"}) for _ in range(55)]))
OLD = ("shop", [{**llm("openai", "gpt-4", 150, 75, **_attrs("legacy", "oldco", "ci-runner")), "start": OLD_NS}])


def send(otlp_http_port: int, token: str | None = None) -> None:
    for service, spans in [*BATCHES, OLD]:
        body = otlp_request(spans, service=service).SerializeToString()
        request = urllib.request.Request(
            f"http://127.0.0.1:{otlp_http_port}/v1/traces",
            data=body,
            headers={
                "Content-Type": "application/x-protobuf",
                **({"Authorization": f"Bearer {token}"} if token else {}),
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200


BATCH_SPANS = [span for _, spans in BATCHES for span in spans]
