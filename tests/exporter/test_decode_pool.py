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


def _descendants(pid: int) -> set[int]:
    """Live processes below ``pid`` (zombies, dead but not yet reaped, do not count)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.add(pid)
        except OSError:
            pass
    return alive


def test_workers_die_with_their_parent_even_on_kill_9(tmp_path):
    import time

    from tests.exporter.server import ServeProcess

    serve = ServeProcess(tmp_path, "--decode-workers", "2", "--ledger", f"sqlite:///{tmp_path}/l.sqlite").start()
    assert serve.proc is not None
    try:
        # an export from a request thread that then ends: workers must not die with that thread
        url = f"http://127.0.0.1:{serve.ports['otlp_http']}/v1/traces"
        assert (
            post(url, otlp_request([llm("openai", "gpt-4", 150, 75)]).SerializeToString(), "application/x-protobuf")[0]
            == 200
        )
        assert (
            post(url, otlp_request([llm("openai", "gpt-4", 150, 75)]).SerializeToString(), "application/x-protobuf")[0]
            == 200
        )
        workers = _descendants(serve.proc.pid)
        assert len(workers) >= 2, workers  # the two workers (and multiprocessing's resource tracker)
    finally:
        os.kill(serve.proc.pid, signal.SIGKILL)
        serve.proc.wait()
    deadline = time.monotonic() + 10
    while _alive(workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(workers), f"orphaned decode workers still running: {sorted(_alive(workers))}"


def test_workers_outlive_the_thread_that_asked_for_them():
    """The kernel's parent-death signal follows the thread that started a worker: workers asked for
    from a short-lived thread (a request's, replacing a dead pool) must not die when it ends."""
    import threading
    import time

    from aispend.exporter.config import ExporterConfig
    from aispend.exporter.decode_pool import DecodePool

    pool = DecodePool(ExporterConfig(decode_workers=1))
    body = otlp_request([llm("openai", "gpt-4", 150, 75)]).SerializeToString()
    try:

        def replace() -> None:
            pool.reload()  # what SIGHUP and a dead worker do
            assert len(pool.read(body, False).calls) == 1  # the new worker is up while this thread runs

        thread = threading.Thread(target=replace)
        thread.start()
        thread.join()
        time.sleep(0.5)
        assert len(pool.read(body, False).calls) == 1  # the same worker, after that thread ended
    finally:
        pool.shutdown()
