"""An app whose spans are 90 % non-GenAI (an HTTP server span and database spans around each AI
call): the collector's filter drops those before they reach aispend, and its own counters
(self-telemetry) agree with aispend's."""

from __future__ import annotations

from tests.exporter.server import scrape, value
from tests.support.aispend_serve import Aispend
from tests.support.collector import Collector
from tests.support.load import Figures, Load, rate_note, wait_for_ledger
from tests.support.polling import eventually

RATE = 60
SECONDS = 5
NOISE = 9  # 1 HTTP server span + 8 database spans per AI call: 90 % of all spans


def test_only_genai_spans_reach_aispend(tmp_path, fake):
    ledger = f"sqlite:///{tmp_path}/ledger.sqlite"
    aispend = Aispend(tmp_path, ledger).start()
    collector = Collector(tmp_path, [aispend.grpc_address]).start()
    try:
        counts = Load(fake, collector.grpc_endpoint, RATE, SECONDS, noise=NOISE).wait()
        rows, distinct = wait_for_ledger(ledger, counts["calls"])
        total = counts["calls"] + counts["other_spans"]
        sent = "otelcol_exporter_sent_spans"
        assert eventually(lambda: value(collector.metrics(), sent, exporter="otlp_grpc/aispend") >= counts["calls"])
        metrics = collector.metrics()
        received = value(scrape(aispend.ports["metrics"]), "aispend_spans_received_total")
    finally:
        collector.stop()
        aispend.stop()
    accepted = value(metrics, "otelcol_receiver_accepted_spans", receiver="otlp")
    filtered = value(metrics, "otelcol_processor_filter_spans_filtered")
    forwarded = value(metrics, sent, exporter="otlp_grpc/aispend")
    figures = Figures("90 % non-GenAI spans", counts["calls"], rows, distinct)
    figures.report(
        f"{rate_note(counts)}; spans: app {total}, collector accepted {accepted:.0f}, filtered {filtered:.0f}, "
        f"forwarded {forwarded:.0f}, aispend received {received:.0f}"
    )
    assert counts["other_spans"] == NOISE * counts["calls"]
    assert accepted == total
    assert filtered == counts["other_spans"]
    assert forwarded == received == counts["calls"]
    assert (figures.lost, figures.duplicated) == (0, 0)
