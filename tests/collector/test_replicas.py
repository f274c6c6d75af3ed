"""The collector's load-balancing exporter (routing by trace ID, static resolver, the shipped
collector/scale-out.yaml) spreads the load over N aispend replicas on one PostgreSQL ledger: the
totals are exact, also when one replica is killed -9 mid-load and restarted,
and the sum of the replicas' own counters equals the ledger.
"""

from __future__ import annotations

import time

import pytest

from tests.exporter.server import scrape, value
from tests.support.aispend_serve import Aispend, psycopg
from tests.support.collector import Collector
from tests.support.load import Figures, Load, rate_note, wait_for_ledger, wait_for_traffic

REPLICAS = [3]  # three replicas on one PostgreSQL ledger: identity is enforced by the ledger (issue 11)
RATE = 300
SECONDS = 12


def _cost(url: str) -> tuple[int, int, int]:
    """(sum, min, max) of the ledger's per-call cost in nano-dollars."""
    assert psycopg is not None
    with psycopg.connect(url) as conn:
        total, low, high = conn.execute("SELECT sum(cost_nusd), min(cost_nusd), max(cost_nusd) FROM calls").fetchone()
    return int(total), int(low), int(high)


@pytest.mark.parametrize("replicas", REPLICAS)
def test_load_spread_over_replicas_one_killed_mid_load(tmp_path, fake, postgres, replicas):
    ledger = postgres.create_database(f"collector_replicas_{replicas}")
    servers = [Aispend(tmp_path, ledger, f"aispend-{i}").start() for i in range(replicas)]
    collector = Collector(tmp_path, [s.grpc_address for s in servers], load_balancing=True).start()
    assert collector.exporter_id == "load_balancing/aispend"
    load = Load(fake, collector.grpc_endpoint, RATE, SECONDS)
    try:
        wait_for_traffic(ledger)
        time.sleep(SECONDS / 4)
        servers[0].kill()
        time.sleep(1.0)
        servers[0].start()
        counts = load.wait()
        rows, distinct = wait_for_ledger(ledger, counts["calls"])
        received = [value(scrape(s.ports["metrics"]), "aispend_spans_received_total") for s in servers]
        counted = sum(value(scrape(s.ports["metrics"]), "aispend_requests_total") for s in servers)
        total, low, high = _cost(ledger)
        retried = collector.log().count("Will retry the request after interval")
    finally:
        load.kill()
        collector.stop()
        for s in servers:
            s.stop()
    figures = Figures(
        f"{replicas} aispend replica(s) behind loadbalancing, one killed -9", counts["calls"], rows, distinct
    )
    figures.report(f"{rate_note(counts)}; {retried} exports failed and were retried; spans per replica: {received}")
    assert retried > 0, "the kill did not interrupt any export"
    assert (figures.lost, figures.duplicated) == (0, 0)
    assert rows == counts["calls"] == counted  # the replicas' counters add up to the ledger
    # every call is the same priced gpt-4o-mini call: the cost total is exactly calls x one call's cost
    assert low == high > 0 and total == low * counts["calls"]
    if replicas > 1:
        assert all(r > 0 for r in received[1:]), "the load was not spread over the replicas"
