"""Slow and stalled senders cannot take the receivers away from everyone else: a silent HTTP
client is disconnected after request_timeout, and large gRPC exports cannot occupy every worker
thread while a small export waits."""

from __future__ import annotations

import socket
import threading
import time

import grpc

from aispend.exporter.grpc_receiver import EXPORT_METHOD
from tests.exporter.server import running, scrape, value
from tests.exporter.spans import llm, otlp_request


def _server_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("Thread-") and "process_request" in t.name)


def _closed(sock: socket.socket) -> bool:
    """The server closes the connection within 10 s (after answering what it could, if anything)."""
    sock.settimeout(10)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def test_stalled_http_clients_are_disconnected():
    with running(request_timeout=1) as exporter:
        baseline = _server_threads()
        stalled = []
        for port in (exporter.ports["otlp_http"], exporter.ports["metrics"]):
            for i in range(20):
                sock = socket.create_connection(("127.0.0.1", port))
                if i % 2:  # half stop inside the headers, half inside the body
                    sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Le")
                else:
                    sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
                stalled.append(sock)
        try:
            assert all(_closed(sock) for sock in stalled)
            deadline = time.monotonic() + 10
            while _server_threads() > baseline and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _server_threads() == baseline
        finally:
            for sock in stalled:
                sock.close()
        assert value(scrape(exporter.ports["metrics"]), "aispend_requests_total") == 0  # nothing half-read counted


def test_large_grpc_exports_do_not_starve_a_small_one():
    with running() as exporter:  # 2 slots for large exports, of 4 worker threads
        big = otlp_request([llm("openai", "gpt-4", 150, 75) for _ in range(10_000)]).SerializeToString()
        small = otlp_request([llm("openai", "gpt-4o", 10, 10) for _ in range(10)]).SerializeToString()
        assert len(big) > 2 * 1024 * 1024
        channel = grpc.insecure_channel(
            f"127.0.0.1:{exporter.ports['otlp_grpc']}", options=[("grpc.max_send_message_length", 64 << 20)]
        )
        export = channel.unary_unary(EXPORT_METHOD)
        outcomes: list[tuple[str, float]] = []

        def send_big() -> None:
            try:
                export(big, timeout=300)
                outcomes.append(("ok", time.monotonic()))
            except grpc.RpcError as err:
                outcomes.append((err.code().name, time.monotonic()))

        senders = [threading.Thread(target=send_big) for _ in range(4)]
        for sender in senders:
            sender.start()
        time.sleep(0.2)  # the four are in the server (a large one takes ~0.5 s or more here)
        small_sent = time.monotonic()
        export(small, timeout=300)
        small_done = time.monotonic()
        for sender in senders:
            sender.join()
        channel.close()
        finished = sorted(at for code, at in outcomes if code == "ok")
        assert finished, outcomes
        # the premise: a large export was still being read when the small one went in
        assert finished[0] > small_sent, "the large exports were done before the small one was sent"
        assert small_done < finished[0], "the small export waited for a large one"
        refused = [code for code, _ in outcomes if code != "ok"]
        assert refused == ["UNAVAILABLE"] * len(refused)  # a retryable "busy", at once
        text = scrape(exporter.ports["metrics"])
        assert value(text, "aispend_requests_total", model="gpt-4o") == 10
        assert value(text, "aispend_requests_total", model="gpt-4") == 10_000  # the same spans each time
