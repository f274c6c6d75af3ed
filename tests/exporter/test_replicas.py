"""Three real `aispend serve` replicas on one real PostgreSQL ledger: the ledger is the truth.

At every step the ledger's total, the truth (what was sent, each call once) and the sum of every
replica's ``aispend_cost_usd_total`` agree to 1e-9: through interleaved sends, retries that land
on another replica, rolling restarts and kill -9 of each replica. Budgets and free tiers are one
figure for all replicas, and concurrent writers never deadlock.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import urllib.request
from decimal import Decimal

import grpc
import pytest

from aispend.exporter.grpc_receiver import EXPORT_METHOD
from aispend.exporter.ledger import Filters, open_ledger
from tests.exporter.server import ServeProcess, scrape, value
from tests.exporter.spans import llm, otlp_request
from tests.support.polling import eventually

GPT4 = Decimal("0.009")  # 150 + 75 tokens
HAIKU = Decimal("0.0048")  # 1,000 + 1,000 tokens of Claude 3.5 Haiku ($0.80 / $4.00)


def export(port: int, request, timeout: float = 30) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        channel.unary_unary(EXPORT_METHOD)(request.SerializeToString(), timeout=timeout)


def export_until_acked(ports: list[int], request) -> int:
    """A sender that retries on the next replica until one acknowledges (as a Collector does)."""
    for attempt in range(60):
        try:
            export(ports[attempt % len(ports)], request)
            return attempt
        except grpc.RpcError:
            continue
    raise AssertionError("no replica acknowledged the batch")


class Replicas:
    def __init__(self, tmp, url: str, n: int, *args: str) -> None:
        self.tmp, self.url, self.args = tmp, url, args
        self.token = args[args.index("--admin-token") + 1] if "--admin-token" in args else None  # it reads too
        self.procs = [self._new(i) for i in range(n)]

    def _new(self, i: int) -> ServeProcess:
        return ServeProcess(self.tmp, "--ledger", self.url, "--instance-id", f"replica-{i}", *self.args).start()

    def restart(self, i: int, sig: int = signal.SIGTERM) -> None:
        self.procs[i].stop(sig)
        self.procs[i] = self._new(i)

    @property
    def grpc_ports(self) -> list[int]:
        return [p.ports["otlp_grpc"] for p in self.procs]

    def metrics_total(self, name: str = "aispend_cost_usd_total", **labels: str) -> float:
        return sum(value(scrape(p.ports["metrics"], token=self.token), name, **labels) for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            p.stop()


def ledger_totals(url: str) -> tuple[Decimal, int]:
    ledger = open_ledger(url)
    try:
        rows = ledger.summary(Filters(), [])
        daily = ledger.summary(Filters(), [], from_daily=True)
        calls = (rows[0]["cost_nusd"], rows[0]["calls"]) if rows else (0, 0)
        assert calls == ((daily[0]["cost_nusd"], daily[0]["calls"]) if daily else (0, 0))  # rows = daily totals
        return Decimal(calls[0]) / 10**9, calls[1]
    finally:
        ledger.close()


def batch(n: int, customer: str = "acme"):
    return otlp_request(
        [llm("openai", "gpt-4", 150, 75, **{"aispend.customer": customer}) for _ in range(n // 2)]
        + [llm("anthropic", "claude-3-5-haiku-20241022", 1000, 1000) for _ in range(n - n // 2)]
    )


def batch_cost(n: int) -> Decimal:
    return GPT4 * (n // 2) + HAIKU * (n - n // 2)


def assert_exact(replicas: Replicas, truth: Decimal, calls: int) -> None:
    cost, counted = ledger_totals(replicas.url)
    assert (cost, counted) == (truth, calls)
    assert replicas.metrics_total() == pytest.approx(float(truth), abs=1e-9)
    assert replicas.metrics_total("aispend_requests_total") == calls


@pytest.mark.integration
def test_three_replicas_restarts_kill_and_cross_replica_retries(tmp_path, postgres):
    url = postgres.create_database("replicas")
    replicas = Replicas(tmp_path, url, 3)
    truth, calls = Decimal(0), 0
    try:
        for i in range(9):  # interleaved: each replica takes every third batch
            export(replicas.grpc_ports[i % 3], batch(40))
            truth, calls = truth + batch_cost(40), calls + 40
        assert_exact(replicas, truth, calls)

        retried = batch(40)
        for port in replicas.grpc_ports:  # a Collector retrying the same batch on each backend
            export(port, retried)
        truth, calls = truth + batch_cost(40), calls + 40
        assert_exact(replicas, truth, calls)

        for i in range(3):  # a rolling restart: each replica restores only its own counters
            replicas.restart(i)
            assert_exact(replicas, truth, calls)
            export(replicas.grpc_ports[(i + 1) % 3], batch(20))
            truth, calls = truth + batch_cost(20), calls + 20
            assert_exact(replicas, truth, calls)

        for i in range(3):  # kill -9 while a big batch is in flight, then the sender retries elsewhere
            big = batch(2000)
            sender = threading.Thread(target=lambda b=big, p=replicas.grpc_ports[i]: _ignore_errors(p, b))
            sender.start()
            replicas.procs[i].stop(signal.SIGKILL)
            sender.join()
            others = [p for j, p in enumerate(replicas.grpc_ports) if j != i]
            export_until_acked(others, big)
            replicas.procs[i] = replicas._new(i)
            export_until_acked(replicas.grpc_ports, big)  # and once more after the restart: still once
            truth, calls = truth + batch_cost(2000), calls + 2000
            assert_exact(replicas, truth, calls)
        print(f"\n3 replicas: {calls} calls, ${truth} in the ledger = sum of the replicas' counters")
    finally:
        replicas.stop()


def _ignore_errors(port: int, request) -> None:
    with contextlib.suppress(grpc.RpcError):
        export(port, request)


def budgets_json(port: int) -> dict:
    # the replicas run with an admin token, which then also guards reads
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/budgets", headers={"Authorization": "Bearer adm"})
    return {b["name"]: b for b in json.load(urllib.request.urlopen(request))["budgets"]}


@pytest.mark.integration
def test_budgets_and_free_tier_are_one_figure_for_all_replicas(tmp_path, postgres):
    url = postgres.create_database("shared_state")
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("budgets:\n  - {name: daily, period: day, amount_usd: 15}\n")
    replicas = Replicas(tmp_path, url, 3, "--budgets", str(budgets), "--admin-token", "adm")
    try:
        # $18.10 spent across the replicas: 2,000 GPT-4 calls ($18) and 20 Haiku ones ($0.096) + 1 more GPT-4 ...
        spans = [llm("openai", "gpt-4", 150, 75) for _ in range(2000)]
        spans += [llm("openai", "gpt-4", 100, 0) for _ in range(25)]  # $0.003 each: $0.075
        spans += [llm("openai", "gpt-4", 0, 25) for _ in range(5)]  # $0.0015 each
        threads = [
            threading.Thread(target=export, args=(replicas.grpc_ports[i % 3], otlp_request(spans[i::6])))
            for i in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert ledger_totals(url)[0] == Decimal("18.0825")

        def everywhere(spend: float, limit: float) -> bool:
            states = [budgets_json(p.ports["metrics"])["daily"] for p in replicas.procs]
            return all(s["spend_usd"] == pytest.approx(spend, abs=1e-9) and s["limit_usd"] == limit for s in states)

        assert eventually(lambda: everywhere(18.0825, 15.0), timeout=5)  # within one refresh, on every replica
        for p in replicas.procs:
            assert budgets_json(p.ports["metrics"])["daily"]["exhausted"] is True
            assert value(
                scrape(p.ports["metrics"], token="adm"), "aispend_budget_spend_usd", budget="daily"
            ) == pytest.approx(18.0825, abs=1e-9)

        # an override on one replica is every replica's
        request = urllib.request.Request(
            f"http://127.0.0.1:{replicas.procs[0].ports['metrics']}/v1/budgets/daily",
            data=b'{"amount_usd": 40}',
            headers={"Authorization": "Bearer adm", "Content-Type": "application/json"},
        )
        assert urllib.request.urlopen(request).status == 200
        assert eventually(lambda: everywhere(18.0825, 40.0), timeout=5)

        # 5,000 one-query Serper calls on one key over 3 replicas at once: the first 2,500 are free
        search = {
            "gen_ai.provider.name": "serper",
            "gen_ai.operation.name": "search",
            "aispend.service.kind": "search",
            "aispend.key": "serper-shared",
        }
        senders = []
        for r in range(3):
            for part in range(5):
                n = 5000 // 15 + (1 if r * 5 + part < 5000 % 15 else 0)
                senders.append(
                    threading.Thread(target=export, args=(replicas.grpc_ports[r], otlp_request([search] * n)))
                )
        for t in senders:
            t.start()
        for t in senders:
            t.join()
        serper = open_ledger(url).summary(Filters(equals={"provider": "serper"}), [])[0]
        assert (serper["calls"], Decimal(serper["cost_nusd"]) / 10**9) == (5000, Decimal("2.50"))
        assert replicas.metrics_total("aispend_cost_usd_total", provider="serper") == pytest.approx(2.5, abs=1e-9)
    finally:
        replicas.stop()


@pytest.mark.integration
def test_concurrent_writers_never_deadlock(tmp_path, postgres):
    """2 replicas x 4 senders x 80 batches of 512 spans, 256 customers in every batch."""
    url = postgres.create_database("deadlocks")
    replicas = Replicas(tmp_path, url, 2)
    errors: list[str] = []
    try:

        def sender(port: int, seed: int) -> None:
            for b in range(80):
                customers = [f"c{(seed * 7 + b + i) % 256}" for i in range(256)]
                request = otlp_request(
                    [llm("openai", "gpt-4", 150, 75, **{"aispend.customer": customers[i % 256]}) for i in range(512)]
                )
                try:
                    export(port, request, timeout=60)
                except grpc.RpcError as exc:
                    errors.append(f"{exc.code()}: {exc.details()}")

        threads = [threading.Thread(target=sender, args=(replicas.grpc_ports[i % 2], i)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert_exact(replicas, GPT4 * 8 * 80 * 512, 8 * 80 * 512)
    finally:
        replicas.stop()
