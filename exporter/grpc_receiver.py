"""OTLP/gRPC ``TraceService/Export``. Takes raw bytes so a malformed message is our error to count
and answer (INVALID_ARGUMENT), not an opaque failure inside grpcio.

Small exports are never starved by large ones: at most ``large_slots`` exports over
``LARGE_REQUEST`` bytes are read at a time, and one more is answered UNAVAILABLE at once (the
sender retries it after its backoff), so the other worker threads are always free for the small
exports an SDK sends.
"""

from __future__ import annotations

import logging
import socket
import threading
from concurrent import futures
from typing import Any

import grpc

from aispend.exporter import otlp
from aispend.exporter.config import parse_address
from aispend.exporter.pipeline import Pipeline, RetryableError
from aispend.exporter.tokens import bearer_matches

logger = logging.getLogger("aispend.exporter")
SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
EXPORT_METHOD = f"/{SERVICE}/Export"  # the full method name clients call
MAX_MESSAGE = 64 * 1024 * 1024
LARGE_REQUEST = 1024 * 1024  # an SDK's batch of 512 spans is ~150 kB; a collector's of 8192 ~2.5 MB
SMALL_WORKERS = 2  # worker threads only small exports can have


def _export(pipeline: Pipeline, auth_token: str | None, large: threading.BoundedSemaphore, slots: int) -> Any:
    def export(body: bytes, context: grpc.ServicerContext) -> Any:
        if auth_token is not None:
            metadata = dict(context.invocation_metadata() or ())
            if not bearer_matches(metadata.get("authorization"), (auth_token,)):
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        if len(body) <= LARGE_REQUEST:
            return _handle(pipeline, body, context)
        if not large.acquire(blocking=False):
            context.abort(
                grpc.StatusCode.UNAVAILABLE, f"busy: {slots} large exports are being read; retry this one later"
            )
        try:
            return _handle(pipeline, body, context)
        finally:
            large.release()

    return export


def _handle(pipeline: Pipeline, body: bytes, context: grpc.ServicerContext) -> Any:
    try:
        result = pipeline.export_payload(body)
    except otlp.TooManySpans as exc:
        pipeline.count_malformed(exc.reason)
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
    except otlp.MalformedPayload as exc:
        pipeline.count_malformed(exc.reason)
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    except RetryableError as exc:
        context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
    except Exception as exc:
        logger.exception("export failed")
        context.abort(grpc.StatusCode.UNAVAILABLE, f"internal error: {type(exc).__name__}")
    return otlp.response(result.rejected, result.message)


def _check_free(address: str) -> None:
    """An OSError naming the address if it cannot be bound; grpcio's own failure is a bare
    RuntimeError after a log line of its own on stderr."""
    host, port = parse_address(address)
    if port == 0:
        return
    try:
        family, kind, proto, _, where = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as grpcio binds
            probe.bind(where)
    except OSError as exc:
        raise OSError(f"cannot listen on {address} (OTLP/gRPC): {exc.strerror or exc}") from None


def serve_grpc(
    pipeline: Pipeline,
    address: str,
    auth_token: str | None = None,
    tls: tuple[bytes, bytes] | None = None,
    large_slots: int = 2,
) -> tuple[grpc.Server, int]:
    """Start the receiver; returns the server and the port it bound (address may use port 0).
    ``large_slots`` large exports are read at a time (more use more cores only with decode workers)."""
    workers = large_slots + SMALL_WORKERS
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Export": grpc.unary_unary_rpc_method_handler(
                _export(pipeline, auth_token, threading.BoundedSemaphore(large_slots), large_slots),
                request_deserializer=None,
                response_serializer=lambda message: message.SerializeToString(),
            )
        },
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="otlp-grpc"),
        options=[("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.so_reuseport", 0)],
    )
    server.add_generic_rpc_handlers((handler,))
    _check_free(address)
    try:
        if tls is not None:
            port = server.add_secure_port(address, grpc.ssl_server_credentials([tls]))
        else:
            port = server.add_insecure_port(address)
    except RuntimeError:  # grpcio says only "Failed to bind to address"
        port = 0
    if port == 0:
        raise OSError(f"cannot listen on {address} (OTLP/gRPC): the address is in use or not available here")
    server.start()
    return server, port
