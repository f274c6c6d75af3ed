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
