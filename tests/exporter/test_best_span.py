"""The best span of a call wins, whatever the order and the batches its spans arrive in.

One Anthropic call seen three times: aispend's span (attribution, cache tokens), the Anthropic
SDK's own span around it (its parent) and OpenLLMetry's in a trace of its own (same response id).
One OpenAI call seen twice: aispend's span inside openai-v2's. Every arrival order and every split
into consecutive OTLP batches gives one ledger row, with aispend's attribution and tokens.
"""

from __future__ import annotations

import itertools
import time

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from aispend.exporter.config import ExporterConfig
from aispend.exporter.ledger import Filters, open_ledger
from aispend.exporter.metrics import UsageMetrics
from aispend.exporter.pipeline import Pipeline
from aispend.pricing import PriceEngine
from tests.exporter.spans import NOW_NS, any_value, new_id

ENGINE = PriceEngine()
ATTRIBUTION = {"aispend.feature": "summaries", "aispend.customer": "acme", "aispend.key": "sk-…a1b2"}


def anthropic_call() -> list[dict]:
    trace, sdk_span = new_id(16), new_id(8)
    common = {
        "gen_ai.provider.name": "anthropic",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "claude-3-5-haiku-20241022",
        "gen_ai.response.id": f"msg_{new_id().hex()}",
    }
    return [
        {  # aispend: full usage, cache tokens and attribution
            "scope": "aispend",
            "trace_id": trace,
            "parent": sdk_span,
            "attributes": {
                **common,
                **ATTRIBUTION,
                "aispend.service.kind": "llm",
                "gen_ai.usage.input_tokens": 17,
                "gen_ai.usage.output_tokens": 6,
                "gen_ai.usage.cache_read.input_tokens": 3,
                "gen_ai.usage.cache_creation.input_tokens": 5,
            },
        },
        {  # the SDK's own span, the parent
            "scope": "com.anthropic.sdk.python",
            "trace_id": trace,
            "span_id": sdk_span,
            "attributes": {**common, "gen_ai.usage.input_tokens": 17, "gen_ai.usage.output_tokens": 6},
        },
        {  # OpenLLMetry: a trace of its own, one output token too many
            "scope": "opentelemetry.instrumentation.anthropic",
            "attributes": {**common, "gen_ai.usage.input_tokens": 17, "gen_ai.usage.output_tokens": 7},
        },
    ]


def openai_call() -> list[dict]:
    trace, v2_span = new_id(16), new_id(8)
    common = {
        "gen_ai.system": "openai",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.id": f"chatcmpl-{new_id().hex()}",
    }
    return [
        {
            "scope": "aispend",
            "trace_id": trace,
            "parent": v2_span,
            "attributes": {
                **common,
                **ATTRIBUTION,
                "aispend.service.kind": "llm",
                "gen_ai.usage.input_tokens": 20,
                "gen_ai.usage.output_tokens": 9,
                "gen_ai.usage.cache_read.input_tokens": 4,
            },
        },
        {  # openai-v2 of a stream without usage: no tokens at all
            "scope": "opentelemetry.util.genai.handler",
            "trace_id": trace,
            "span_id": v2_span,
            "attributes": common,
        },
    ]


def request(spans: list[dict]) -> ExportTraceServiceRequest:
    out = ExportTraceServiceRequest()
    rs = out.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=any_value("app")))
    for spec in spans:
        ss = rs.scope_spans.add()
        ss.scope.name = spec["scope"]
        span = Span(
            trace_id=spec.get("trace_id") or new_id(16),
            span_id=spec.get("span_id") or new_id(8),
            parent_span_id=spec.get("parent", b""),
            name="chat",
            kind=Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=NOW_NS,
            end_time_unix_nano=NOW_NS + 400_000_000,
        )
        for key, value in spec["attributes"].items():
            span.attributes.append(KeyValue(key=key, value=any_value(value)))
        ss.spans.append(span)
    return out


def splits(n: int) -> list[list[int]]:
    """Every way to cut n spans into consecutive non-empty batches, as batch sizes."""
    out = []
    for cuts in itertools.product((False, True), repeat=n - 1):
        sizes, size = [], 1
        for cut in cuts:
            if cut:
                sizes.append(size)
                size = 1
            else:
                size += 1
        out.append([*sizes, size])
    return out


def deliveries(spans: list[dict]) -> list[list[list[dict]]]:
    out = []
    for order in itertools.permutations(spans):
        for sizes in splits(len(spans)):
            batches, i = [], 0
            for size in sizes:
                batches.append(list(order[i : i + size]))
                i += size
            out.append(batches)
    return out


def one_row(url: str, spans: list[dict], batches: list[list[dict]]) -> dict:
    ledger = open_ledger(url)
    pipeline = Pipeline(ExporterConfig(settle_seconds=15), ENGINE, ledger, UsageMetrics())
    now = time.time_ns()
    for i, b in enumerate(batches):
        pipeline.export(request(b))
        pipeline.settle(now_ns=now + i * 1_000_000_000)  # batches a second apart: nothing is due yet
    pipeline.settle(now_ns=now + 60 * 1_000_000_000)  # all waiting spans are due
    rows = ledger.calls(Filters(), limit=10)
    assert ledger.pending_count() == 0
    assert sum(pipeline.metrics.requests.values()) == 1  # counted once, by the counters too
    ledger.close()
    assert len(rows) == 1
    return rows[0]


@pytest.mark.parametrize("make", [anthropic_call, openai_call])
def test_every_order_and_split_counts_aispends_span_once(make, tmp_path):
    template = make()
    cases = deliveries(template)
    assert len(cases) == (24 if len(template) == 3 else 4)
    for n, _ in enumerate(cases):
        spans = make()  # fresh ids for every case
        batches = deliveries(spans)[n]
        row = one_row(f"sqlite:///{tmp_path}/{n}.sqlite", spans, batches)
        expected = spans[0]["attributes"]
        assert (row["feature"], row["customer"], row["key"]) == ("summaries", "acme", "sk-…a1b2"), batches
        assert row["input_tokens"] == expected["gen_ai.usage.input_tokens"]
        assert row["output_tokens"] == expected["gen_ai.usage.output_tokens"]
        assert row["cache_read_tokens"] == expected["gen_ai.usage.cache_read.input_tokens"]


def test_on_postgresql_too(postgres):
    spans = anthropic_call()
    for n, batches in enumerate(deliveries(spans)[::5]):
        spans = anthropic_call()
        order = deliveries(spans)[n * 5]
        row = one_row(postgres.create_database(f"best{n}"), spans, order)
        assert (row["customer"], row["output_tokens"], row["cache_write_tokens"]) == ("acme", 6, 5), batches


def test_the_sdk_span_beats_a_peer_without_aispend(tmp_path):
    """No aispend instrumentation: the Anthropic SDK's own span wins over OpenLLMetry's, in any order."""
    for n, order in enumerate(itertools.permutations([1, 2])):
        spans = anthropic_call()
        row = one_row(f"sqlite:///{tmp_path}/sdk{n}.sqlite", spans, [[spans[i]] for i in order])
        assert (row["output_tokens"], row["customer"]) == (6, "")


def test_a_better_span_after_settling_is_not_counted_again(tmp_path):
    """Past the settle delay the call is counted: counters never go down, so a late better span is a duplicate."""
    spans = openai_call()
    ledger = open_ledger(f"sqlite:///{tmp_path}/late.sqlite")
    pipeline = Pipeline(ExporterConfig(settle_seconds=15), ENGINE, ledger, UsageMetrics())
    pipeline.export(request([spans[1]]))
    assert pipeline.settle(now_ns=time.time_ns() + 20 * 10**9) == 1
    result = pipeline.export(request([spans[0]]))
    assert (result.recorded, result.duplicates) == (0, 1)
    assert pipeline.metrics.deduplicated == {"same_response_id": 1}
    assert len(ledger.calls(Filters())) == 1
