"""The collector stopped (SIGTERM, and separately kill -9) with a backlog in its on-disk queue while
aispend is down: after the collector restarts and aispend comes up, the whole backlog reaches aispend
and nothing is counted twice."""

from __future__ import annotations

import signal

import pytest

from tests.exporter.server import value
from tests.support.aispend_serve import Aispend
from tests.support.collector import Collector
from tests.support.load import Figures, Load, rate_note, wait_for_ledger
from tests.support.polling import eventually

RATE = 200
SECONDS = 4


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "kill-9"])
def test_backlog_in_the_file_queue_survives_a_collector_stop(tmp_path, fake, stop):
    ledger = f"sqlite:///{tmp_path}/ledger.sqlite"
    aispend = Aispend(tmp_path, ledger)  # not started yet: aispend is down
    collector = Collector(tmp_path, [aispend.grpc_address]).start()
    try:
        counts = Load(fake, collector.grpc_endpoint, RATE, SECONDS).wait()
        # every call's span was accepted by the collector (the app's exporter got its answers)
        accepted = value(collector.metrics(), "otelcol_receiver_accepted_spans")
        assert accepted == counts["calls"]
        backlog = eventually(lambda: value(collector.metrics(), "otelcol_exporter_queue_size"), timeout=5)
        assert backlog, "nothing waits in the queue"
        code = collector.stop(stop)
        assert code == (0 if stop == signal.SIGTERM else -signal.SIGKILL)
        queue_files = sorted(p.name for p in collector.queue.iterdir())
        assert queue_files, "the queue left no file behind"
        collector.start()  # same config, same queue directory
        aispend.start()
        rows, distinct = wait_for_ledger(ledger, counts["calls"])
    finally:
        collector.stop()
        aispend.stop()
    name = "SIGTERM" if stop == signal.SIGTERM else "kill -9"
    figures = Figures(f"collector stopped ({name}) with a backlog, aispend down", counts["calls"], rows, distinct)
    figures.report(f"{rate_note(counts)}; {backlog:.0f} export requests waiting in the file queue at the stop")
    assert (figures.lost, figures.duplicated) == (0, 0)
    assert rows == counts["calls"]
