"""`--decode-workers`: payloads read in other processes give the same metrics, the same
rejections and the same malformed-payload answers as reading in-process; a worker that dies makes
that export retryable and the pool is replaced."""

from __future__ import annotations

import gzip
import json
import os
import signal

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

from aispend.exporter.grpc_receiver import EXPORT_METHOD
from tests.exporter.server import running, scrape, value
from tests.exporter.spans import llm, otlp_request
from tests.exporter.test_receivers import MIX, _hex_json, check_mix, post, send_with_sdk


def test_same_results_as_reading_in_process():
    with running(decode_workers=1) as exporter:
        send_with_sdk(GrpcExporter(endpoint=f"127.0.0.1:{exporter.ports['otlp_grpc']}", insecure=True), MIX)
        url = f"http://127.0.0.1:{exporter.ports['otlp_http']}/v1/traces"
        bad = otlp_request([llm("openai", "gpt-4", -1, 1), llm("openai", "gpt-4", 150, 75)], service="other")
        status, body = post(url, gzip.compress(_hex_json(bad)), "application/json", "gzip")
        reply = json.loads(body)
        assert status == 200 and reply["partialSuccess"]["rejectedSpans"] == "1"
        assert "negative_tokens" in reply["partialSuccess"]["errorMessage"]
        assert post(url, b"\xff\x00garbage", "application/x-protobuf")[0] == 400
        assert post(url, b"{not json", "application/json")[0] == 400
        text = scrape(exporter.ports["metrics"])
        check_mix(text)
        assert value(text, "aispend_cost_usd_total", service="other") == pytest.approx(0.009, abs=1e-9)
        assert value(text, "aispend_spans_rejected_total", reason="negative_tokens") == 1
        assert value(text, "aispend_spans_rejected_total", reason="malformed_payload") == 2
        assert value(text, "aispend_spans_received_total") == len(MIX) + 2


def test_a_dead_worker_makes_the_export_retryable_then_recovers():
    with running(decode_workers=1) as exporter:
        pids = list(exporter.decoders._executor._processes)  # the pool's worker processes
        assert pids and all(pid != os.getpid() for pid in pids)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        body = otlp_request([llm("openai", "gpt-4", 150, 75)]).SerializeToString()
        with grpc.insecure_channel(f"127.0.0.1:{exporter.ports['otlp_grpc']}") as channel:
            export = channel.unary_unary(EXPORT_METHOD)
            with pytest.raises(grpc.RpcError) as err:
                export(body, timeout=30)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert value(scrape(exporter.ports["metrics"]), "aispend_requests_total") == 0  # nothing recorded
            export(body, timeout=30)  # the collector's retry, on new workers
        assert value(scrape(exporter.ports["metrics"]), "aispend_cost_usd_total") == pytest.approx(0.009, abs=1e-9)


def serper(queries: int) -> dict:
    return {
        "gen_ai.provider.name": "serper",
        "gen_ai.operation.name": "search",
        "aispend.service.kind": "search",
        "aispend.key": "serper-prod",
        "aispend.usage.requests": queries,
    }


@pytest.mark.parametrize("workers", [0, 1])
def test_free_tier_prices_stay_with_the_pipeline(workers):
    """A price with a free tier needs the units the key already used: the workers leave those calls
    to the main process, which gives the 2,501st query its price either way."""
    with running(decode_workers=workers) as exporter:
        url = f"http://127.0.0.1:{exporter.ports['otlp_http']}/v1/traces"
        for batch in ([serper(2500)], [serper(1), llm("openai", "gpt-4", 150, 75)]):
            assert post(url, otlp_request(batch).SerializeToString(), "application/x-protobuf")[0] == 200
        text = scrape(exporter.ports["metrics"])
        assert value(text, "aispend_cost_usd_total", provider="serper") == pytest.approx(0.001, abs=1e-12)
        assert value(text, "aispend_cost_usd_total", provider="openai") == pytest.approx(0.009, abs=1e-12)


def test_workers_price_with_the_reloaded_overrides(tmp_path):
    prices = tmp_path / "prices.yaml"
    prices.write_text('prices:\n  - {provider: openai, models: [gpt-4], input_mtok: "1", output_mtok: "2"}\n')
    with running(decode_workers=1, prices=str(prices)) as exporter:
        url = f"http://127.0.0.1:{exporter.ports['otlp_http']}/v1/traces"
        body = lambda: otlp_request([llm("openai", "gpt-4", 1_000_000, 1_000_000)]).SerializeToString()  # noqa: E731
        post(url, body(), "application/x-protobuf")
        assert value(scrape(exporter.ports["metrics"]), "aispend_cost_usd_total") == pytest.approx(3.0)
        prices.write_text('prices:\n  - {provider: openai, models: [gpt-4], input_mtok: "10", output_mtok: "20"}\n')
        exporter.reload()  # what SIGHUP does
        post(url, body(), "application/x-protobuf")
        assert value(scrape(exporter.ports["metrics"]), "aispend_cost_usd_total") == pytest.approx(33.0)


def test_what_a_worker_returns(tmp_path):
    """In-process, the worker's own function: stateless prices set, free-tier ones left to the
    pipeline, labels cleaned and counted; a broken overrides file means no prices at all."""
    from decimal import Decimal

    from aispend.exporter import decode_pool
    from aispend.exporter.config import ExporterConfig
    from aispend.exporter.reading import unpacked

    body = otlp_request(
        [llm("openai", "gpt-4", 150, 75, **{"aispend.customer": "acme\x07"}), serper(1)]
    ).SerializeToString()
    decode_pool._init(ExporterConfig())
    batch = unpacked(decode_pool._read(body, False))
    assert batch.prepared and batch.clamped == {"label_control_chars": 1}
    gpt, search = batch.calls
    assert (gpt.cost, gpt.priced, gpt.customer) == (Decimal("0.009"), True, "acme")
    assert search.cost is None  # Serper's free tier: priced by the pipeline
    broken = tmp_path / "prices.yaml"
    broken.write_text("prices: [{models: [x], input_mtok: -3}]")
    decode_pool._init(ExporterConfig(prices=str(broken)))
    batch = unpacked(decode_pool._read(body, False))
    assert not batch.prepared and all(c.cost is None for c in batch.calls)
    decode_pool._init(ExporterConfig())
