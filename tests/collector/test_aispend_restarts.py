"""kill -9 of aispend, three times, under a steady load through the real collector: the collector's
on-disk queue and never-ending retries deliver every call once aispend is back, and aispend's
de-duplication (restored from its ledger at start) drops what it had recorded but not acknowledged."""

from __future__ import annotations

import time

from tests.support.aispend_serve import Aispend
from tests.support.collector import Collector
from tests.support.load import Figures, Load, rate_note, wait_for_ledger, wait_for_traffic

RATE = 300  # calls per second
SECONDS = 14


def test_kill_9_aispend_three_times_under_load(tmp_path, fake):
    ledger = f"sqlite:///{tmp_path}/ledger.sqlite"
    aispend = Aispend(tmp_path, ledger).start()
    collector = Collector(tmp_path, [aispend.grpc_address]).start()
    load = Load(fake, collector.grpc_endpoint, RATE, SECONDS)
    try:
        wait_for_traffic(ledger)
        for _ in range(3):
            time.sleep(SECONDS / 5)
            aispend.kill()
            time.sleep(1.0)  # down for a second: exports fail and wait in the queue
            aispend.start()
        counts = load.wait()
        rows, distinct = wait_for_ledger(ledger, counts["calls"])
        retried = collector.log().count("Will retry the request after interval")
    finally:
        load.kill()
        collector.stop()
        aispend.stop()
    figures = Figures("aispend killed -9 three times", counts["calls"], rows, distinct)
    figures.report(f"{rate_note(counts)}; {retried} exports to aispend failed and were retried")
    assert counts["calls"] >= RATE * SECONDS * 0.5, "the load was not steady enough to mean anything"
    assert retried > 0, "the kills did not interrupt any export"
    assert (figures.lost, figures.duplicated) == (0, 0)
    assert rows == counts["calls"]
