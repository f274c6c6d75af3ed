"""The HTTP edges: OTLP/HTTP ``POST /v1/traces`` (protobuf or JSON, gzip) on one port, and
``/metrics`` plus the JSON API (``/v1/budgets``, ``/v1/usage``, ``/v1/calls``) on another.

Both are stdlib ``ThreadingHTTPServer``s: the hot path is the gRPC receiver, and these need
nothing a framework would add. A client silent for ``timeout`` seconds (mid-headers, mid-body or
idle between keep-alive requests) is disconnected, so stalled connections do not hold a thread each
forever.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import ssl
import threading
import zlib
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from aispend.exporter import otlp
from aispend.exporter.ledger import LedgerError
from aispend.exporter.pipeline import Pipeline, RetryableError
from aispend.exporter.tokens import bearer_matches

logger = logging.getLogger("aispend.exporter")
MAX_BODY = 64 * 1024 * 1024
CLIENT_TIMEOUT = 30.0  # seconds; request_timeout in the config
PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class BodyError(Exception):
    """A request body that cannot be read: the status to answer and the reason to count."""

    def __init__(self, status: HTTPStatus, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the listen backlog (socketserver's 5 makes a burst of senders wait)


class _Handler(BaseHTTPRequestHandler):
    server_version = "aispend"
    protocol_version = "HTTP/1.1"
    routes: ClassVar[dict[tuple[str, str], Callable[[_Handler], None]]] = {}
    prefix_routes: ClassVar[list[tuple[str, str, Callable[[_Handler, str], None]]]] = []
    _body_read = False  # per request: whether the route read the body (else the connection closes)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path
        route = self.routes.get((method, path))
        self._body_read = False
        try:
            if route is not None:
                route(self)
                return
            for m, prefix, handler in self.prefix_routes:
                if m == method and path.startswith(prefix) and len(path) > len(prefix):
                    handler(self, path[len(prefix) :])
                    return
            self.send_json(HTTPStatus.NOT_FOUND, {"error": f"no route for {method} {path}"})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except TimeoutError:  # a client that stopped sending mid-body: nothing was recorded for it
            logger.debug("%s stalled; connection closed", self.address_string())
            self.close_connection = True
        except Exception as exc:  # a bug must answer 500, not drop the connection
            logger.exception("%s %s failed", method, path)
            with contextlib.suppress(OSError):
                self.send_json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error: {type(exc).__name__}"})
        declared = (self.headers.get("Content-Length") or "0").strip() != "0" or "Transfer-Encoding" in self.headers
        if declared and not self._body_read:
            self.close_connection = True  # an unread body would be taken for the next request

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # -- helpers ------------------------------------------------------------------------------
    def query(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def query_lists(self) -> dict[str, list[str]]:
        """Every parameter with all its values (so a repeated one can be refused); ValueError when
        there are more than 50 or one is not UTF-8."""
        return parse_qs(
            urlsplit(self.path).query,
            keep_blank_values=True,
            strict_parsing=False,
            errors="strict",
            max_num_fields=50,
        )

    def read_body(self) -> bytes:
        """The request body (Content-Length or chunked, at most MAX_BODY), decompressed. Raises
        ``BodyError`` when it cannot be read; the connection is then closed, since what is left of
        the body on it cannot be told from a next request."""
        self._body_read = True
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = self._read_chunked()
        elif self.headers.get("Transfer-Encoding"):
            raise BodyError(HTTPStatus.NOT_IMPLEMENTED, "unsupported_encoding", "only chunked Transfer-Encoding")
        else:
            text = self.headers.get("Content-Length")
            if text is None:
                raise BodyError(HTTPStatus.LENGTH_REQUIRED, "length_required", "send Content-Length (or chunked)")
            if not (text.strip().isascii() and text.strip().isdigit()):  # refuses "-1", which read() takes as "all"
                raise BodyError(HTTPStatus.BAD_REQUEST, "malformed_payload", f"bad Content-Length {text[:20]!r}")
            length = int(text)
            if length > MAX_BODY:
                raise BodyError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload_too_large", f"body over {MAX_BODY} bytes")
            body = self._read_exactly(length)
        encoding = (self.headers.get("Content-Encoding") or "").lower().strip()
        if encoding in ("gzip", "deflate"):
            try:
                obj = zlib.decompressobj(zlib.MAX_WBITS | 32)
                body = obj.decompress(body, MAX_BODY)
            except zlib.error as exc:
                raise BodyError(HTTPStatus.BAD_REQUEST, "bad_compression", f"bad {encoding} body: {exc}") from None
            if obj.unconsumed_tail:
                raise BodyError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload_too_large", "decompressed body too large")
        elif encoding not in ("", "identity"):
            raise BodyError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_encoding", f"unsupported Content-Encoding {encoding}"
            )
        return body

    def _read_exactly(self, length: int) -> bytes:
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            raise BodyError(HTTPStatus.BAD_REQUEST, "malformed_payload", "the body ended before Content-Length")
        return body

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BodyError(HTTPStatus.BAD_REQUEST, "malformed_payload", "bad chunked body") from None
            if size < 0 or not line.endswith(b"\n"):
                raise BodyError(HTTPStatus.BAD_REQUEST, "malformed_payload", "bad chunked body")
            if size == 0:
                break
            total += size
            if total > MAX_BODY:
                raise BodyError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload_too_large", f"body over {MAX_BODY} bytes")
            parts.append(self._read_exactly(size))
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise BodyError(HTTPStatus.BAD_REQUEST, "malformed_payload", "bad chunked body")
        for _ in range(100):  # trailers, up to the blank line
            if self.rfile.readline(8192) in (b"\r\n", b"\n", b""):
                break
        else:
            raise BodyError(HTTPStatus.BAD_REQUEST, "malformed_payload", "bad chunked body")
        return b"".join(parts)

    def refuse(self, error: BodyError) -> None:
        self.close_connection = True
        self.send_json(error.status, {"error": error.message}, {"Connection": "close"})

    def bearer_ok(self, token: str | None) -> bool:
        return token is None or bearer_matches(self.headers.get("Authorization"), (token,))

    def send_bytes(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(status, json.dumps(data, default=str).encode(), JSON, headers)


def require_read(h: _Handler, tokens: tuple[str, ...]) -> bool:
    """The read check of every GET that shows spend (``/metrics``, ``/v1/*``; the console too):
    open while ``tokens`` is empty, else a bearer token among them. Answers 401 itself."""
    if not tokens or bearer_matches(h.headers.get("Authorization"), tokens):
        return True
    h.send_json(
        HTTPStatus.UNAUTHORIZED,
        {"error": "missing or wrong bearer token (the read token or the admin token)"},
        {"WWW-Authenticate": 'Bearer realm="aispend"'},
    )
    return False


def _start(
    handler: type[_Handler], host: str, port: int, tls: ssl.SSLContext | None, timeout: float
) -> tuple[_Server, int]:
    handler.timeout = timeout  # socketserver applies it to each connection's socket (TLS handshake too)
    try:
        server = _Server((host, port), handler)
    except OSError as exc:
        what = "OTLP/HTTP" if ("POST", "/v1/traces") in handler.routes else "metrics and API"
        raise OSError(f"cannot listen on {host}:{port} ({what}): {exc.strerror or exc}") from None
    if tls is not None:
        # handshake in the request thread, not in the accept loop a slow client could stall
        server.socket = tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=server.serve_forever, name=f"http-{server.server_address[1]}", daemon=True)
    thread.start()
    return server, server.server_address[1]


# -- OTLP/HTTP ------------------------------------------------------------------------------------
def serve_otlp_http(
    pipeline: Pipeline,
    host: str,
    port: int,
    auth_token: str | None = None,
    tls: ssl.SSLContext | None = None,
    timeout: float = CLIENT_TIMEOUT,
) -> tuple[_Server, int]:
    def traces(h: _Handler) -> None:
        content_type = (h.headers.get("Content-Type") or PROTOBUF).split(";")[0].strip().lower()
        as_json = content_type == JSON
        if not h.bearer_ok(auth_token):
            h.send_json(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong bearer token"})
            return
        try:
            body = h.read_body()
        except BodyError as exc:
            pipeline.count_malformed(exc.reason)
            h.refuse(exc)
            return
        try:
            result = pipeline.export_payload(body, as_json)
        except otlp.MalformedPayload as exc:
            pipeline.count_malformed(exc.reason)
            too_many = isinstance(exc, otlp.TooManySpans)
            status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE if too_many else HTTPStatus.BAD_REQUEST
            h.send_json(status, {"code": 8 if too_many else 3, "message": str(exc)})
            return
        except RetryableError as exc:
            h.send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"code": 14, "message": str(exc)}, {"Retry-After": "1"})
            return
        except Exception as exc:
            logger.exception("export failed")
            h.send_json(
                HTTPStatus.SERVICE_UNAVAILABLE, {"code": 14, "message": f"internal error: {type(exc).__name__}"}
            )
            return
        response = otlp.response(result.rejected, result.message)
        if as_json:
            from google.protobuf import json_format

            h.send_bytes(HTTPStatus.OK, json_format.MessageToJson(response).encode(), JSON)
        else:
            h.send_bytes(HTTPStatus.OK, response.SerializeToString(), PROTOBUF)

    handler = type("OtlpHandler", (_Handler,), {"routes": {("POST", "/v1/traces"): traces}, "prefix_routes": []})
    return _start(handler, host, port, tls, timeout)


# -- /metrics and the JSON API --------------------------------------------------------------------
MAX_ADMIN_BODY = 64 * 1024
MAX_JSON_DEPTH = 20
Report = Callable[[dict[str, list[str]]], Any]


class Api:
    """What the API routes need; built by ``serve``. A report takes the query's parameters (each
    with all its values) and raises ValueError (answered 400) for one it cannot use."""

    def __init__(
        self,
        registry: CollectorRegistry,
        budgets: Callable[[], list[dict[str, Any]]] | None,
        change_budget: Callable[[str, Decimal | None, bool], dict[str, Any]] | None,
        usage: Report | None,
        calls: Report | None,
        admin_token: str | None,
        read_tokens: tuple[str, ...] = (),
        problem: Callable[[], str | None] | None = None,
        series: Report | None = None,
        labels: Report | None = None,
        console: bool = True,
    ) -> None:
        self.registry = registry
        self.budgets = budgets
        self.change_budget = change_budget
        self.usage = usage
        self.calls = calls
        self.series = series
        self.labels = labels
        self.admin_token = admin_token
        self.read_tokens = read_tokens  # tokens.read_tokens(config): empty means reads are open
        self.problem = problem  # why the exporter cannot record (None: it can), for /healthz
        self.console = console


def _json_depth(text: bytes) -> int:
    """The deepest nesting of brackets in a JSON text (strings skipped), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in text:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def parse_budget_change(body: bytes) -> tuple[Decimal | None, bool]:
    """The amount and reset of POST /v1/budgets/{name}; ValueError naming what is wrong."""
    if len(body) > MAX_ADMIN_BODY:
        raise ValueError(f"body over {MAX_ADMIN_BODY} bytes")
    if _json_depth(body) > MAX_JSON_DEPTH:
        raise ValueError(f"body nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(body or b"{}")
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError('body must be a JSON object, e.g. {"amount_usd": 100}')
    unknown = set(data) - {"amount_usd", "reset"}
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(map(repr, unknown)))} (fields: amount_usd, reset)")
    amount = data.get("amount_usd")
    if amount is not None:
        if isinstance(amount, bool) or not isinstance(amount, int | float | str) or len(str(amount)) > 40:
            raise ValueError('amount_usd: a positive number of dollars, e.g. 100 or "12.50"')
        try:
            amount = Decimal(str(amount))
        except InvalidOperation:
            raise ValueError(f"amount_usd: not a number: {amount!r}") from None
        if not amount.is_finite() or amount <= 0 or amount >= Decimal(10) ** 12:
            raise ValueError("amount_usd: must be positive and under 1,000,000,000,000")
    reset = data.get("reset", False)
    if not isinstance(reset, bool):
        raise ValueError("reset: true or false")
    if amount is None and not reset:
        raise ValueError('give "amount_usd" and/or "reset": true')
    return amount, reset


def serve_api(
    api: Api, host: str, port: int, tls: ssl.SSLContext | None = None, timeout: float = CLIENT_TIMEOUT
) -> tuple[_Server, int]:
    from aispend.exporter import console

    def metrics(h: _Handler) -> None:
        encoder, content_type = choose_encoder(h.headers.get("Accept") or "")
        h.send_bytes(HTTPStatus.OK, encoder(api.registry), content_type)

    def healthz(h: _Handler) -> None:
        problem = api.problem() if api.problem is not None else None
        if problem is not None:
            h.send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "failing", "reason": problem})
        else:
            h.send_json(HTTPStatus.OK, {"status": "ok", "pid": os.getpid()})  # who answers (make run checks)

    def budgets(h: _Handler) -> None:
        try:
            from aispend.exporter.queries import NO_PARAMS, check_params

            check_params(h.query_lists(), NO_PARAMS)
        except ValueError as exc:
            h.send_json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        h.send_json(HTTPStatus.OK, {"budgets": api.budgets() if api.budgets else []})

    def change_budget(h: _Handler, name: str) -> None:
        if api.change_budget is None:
            h.send_json(HTTPStatus.NOT_FOUND, {"error": "no budgets are configured"})
            return
        if api.admin_token is None:
            h.send_json(HTTPStatus.FORBIDDEN, {"error": "set admin_token (AISPEND_ADMIN_TOKEN) to allow changes"})
            return
        if not h.bearer_ok(api.admin_token):
            h.send_json(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong bearer token"})
            return
        try:
            body = h.read_body()
        except BodyError as exc:
            h.refuse(exc)
            return
        try:
            amount, reset = parse_budget_change(body)
        except ValueError as exc:
            h.send_json(HTTPStatus.BAD_REQUEST, {"error": f"bad request: {exc}"})
            return
        try:
            h.send_json(HTTPStatus.OK, api.change_budget(name, amount, reset))
        except KeyError:
            h.send_json(HTTPStatus.NOT_FOUND, {"error": f"no budget named {name!r}"})

    def report(fn: Report | None) -> Callable[[_Handler], None]:
        def handle(h: _Handler) -> None:
            if fn is None:
                h.send_json(HTTPStatus.NOT_FOUND, {"error": "no ledger is configured (ledger: none)"})
                return
            try:
                h.send_json(HTTPStatus.OK, fn(h.query_lists()))
            except LedgerError as exc:  # the database is away: try again later
                h.send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)})
            except ValueError as exc:
                h.send_json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})

        return handle

    def reader(handle: Callable[[_Handler], None]) -> Callable[[_Handler], None]:
        def guarded(h: _Handler) -> None:
            if require_read(h, api.read_tokens):
                handle(h)

        return guarded

    def console_root(h: _Handler) -> None:
        h.send_bytes(HTTPStatus.FOUND, b"", "text/plain", {"Location": "/console/"})

    def console_file(h: _Handler, name: str = "index.html") -> None:
        found = console.asset(name)
        if found is None:
            h.send_json(HTTPStatus.NOT_FOUND, {"error": f"no console file {name!r}"})
            return
        body, content_type = found
        headers = dict(console.HEADERS)
        if "gzip" in (h.headers.get("Accept-Encoding") or "") and len(body) > 1024:
            body = console.gzipped(name, body)
            headers["Content-Encoding"] = "gzip"
        h.send_bytes(HTTPStatus.OK, body, content_type, headers)

    routes: dict[tuple[str, str], Callable[[_Handler], None]] = {
        ("GET", "/metrics"): reader(metrics),
        ("GET", "/healthz"): healthz,  # open: says nothing about spend
        ("GET", "/v1/budgets"): reader(budgets),
        ("GET", "/v1/usage"): reader(report(api.usage)),
        ("GET", "/v1/calls"): reader(report(api.calls)),
        ("GET", "/v1/series"): reader(report(api.series)),
        ("GET", "/v1/labels"): reader(report(api.labels)),
    }
    prefix_routes: list[tuple[str, str, Callable[[_Handler, str], None]]] = [("POST", "/v1/budgets/", change_budget)]
    if api.console:  # the page itself holds no data: open, it asks for the read token when one is set
        routes[("GET", "/")] = console_root
        routes[("GET", "/console/")] = console_file
        prefix_routes.append(("GET", "/console/", console_file))
    handler = type("ApiHandler", (_Handler,), {"routes": routes, "prefix_routes": prefix_routes})
    return _start(handler, host, port, tls, timeout)
