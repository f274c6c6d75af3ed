"""The HTTP edges: OTLP/HTTP ``POST /v1/traces`` (protobuf or JSON, gzip) on one port, and
``/metrics`` plus the JSON API (``/v1/budgets``, ``/v1/usage``, ``/v1/calls``) on another.

Both are stdlib ``ThreadingHTTPServer``s: the hot path is the gRPC receiver, and these need
nothing a framework would add.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
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

logger = logging.getLogger("aispend.exporter")
MAX_BODY = 64 * 1024 * 1024
PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(BaseHTTPRequestHandler):
    server_version = "aispend"
    protocol_version = "HTTP/1.1"
    routes: ClassVar[dict[tuple[str, str], Callable[[_Handler], None]]] = {}
    prefix_routes: ClassVar[list[tuple[str, str, Callable[[_Handler, str], None]]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path
        route = self.routes.get((method, path))
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
            pass
        except Exception as exc:  # a bug must answer 500, not drop the connection
            logger.exception("%s %s failed", method, path)
            with contextlib.suppress(OSError):
                self.send_json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error: {type(exc).__name__}"})

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

    def read_body(self) -> bytes | None:
        """The request body, gunzipped; None (after answering 413/400) when it cannot be read."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.send_json(HTTPStatus.BAD_REQUEST, {"error": "bad Content-Length"})
            return None
        if length > MAX_BODY:
            self.send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body over {MAX_BODY} bytes"})
            return None
        body = self.rfile.read(length) if length else b""
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        if encoding in ("gzip", "deflate"):
            try:
                obj = zlib.decompressobj(zlib.MAX_WBITS | 32)
                body = obj.decompress(body, MAX_BODY)
                if obj.unconsumed_tail:
                    self.send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "decompressed body too large"})
                    return None
            except zlib.error as exc:
                self.send_json(HTTPStatus.BAD_REQUEST, {"error": f"bad {encoding} body: {exc}"})
                return None
        elif encoding not in ("", "identity"):
            self.send_json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": f"unsupported Content-Encoding {encoding}"})
            return None
        return body

    def bearer_ok(self, token: str | None) -> bool:
        if token is None:
            return True
        given = self.headers.get("Authorization") or ""
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

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


def _start(handler: type[_Handler], host: str, port: int, tls: ssl.SSLContext | None) -> tuple[_Server, int]:
    server = _Server((host, port), handler)
    if tls is not None:
        # handshake in the request thread, not in the accept loop a slow client could stall
        server.socket = tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=server.serve_forever, name=f"http-{server.server_address[1]}", daemon=True)
    thread.start()
    return server, server.server_address[1]


# -- OTLP/HTTP ------------------------------------------------------------------------------------
def serve_otlp_http(
    pipeline: Pipeline, host: str, port: int, auth_token: str | None = None, tls: ssl.SSLContext | None = None
) -> tuple[_Server, int]:
    def traces(h: _Handler) -> None:
        content_type = (h.headers.get("Content-Type") or PROTOBUF).split(";")[0].strip().lower()
        as_json = content_type == JSON
        if not h.bearer_ok(auth_token):
            h.send_json(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong bearer token"})
            return
        body = h.read_body()
        if body is None:
            return
        try:
            result = pipeline.export_payload(body, as_json)
        except otlp.MalformedPayload as exc:
            pipeline.count_malformed()
            h.send_json(HTTPStatus.BAD_REQUEST, {"code": 3, "message": str(exc)})
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
    return _start(handler, host, port, tls)


# -- /metrics, the JSON API and the console -------------------------------------------------------
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
        series: Report | None = None,
        labels: Report | None = None,
        read_token: str | None = None,
        budgets_token: str | None = None,
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
        self.read_token = read_token  # guards the usage, calls, series and labels reports
        self.budgets_token = budgets_token  # guards GET /v1/budgets (which the budget guard polls)
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


def serve_api(api: Api, host: str, port: int, tls: ssl.SSLContext | None = None) -> tuple[_Server, int]:
    from aispend.exporter import console

    def metrics(h: _Handler) -> None:
        encoder, content_type = choose_encoder(h.headers.get("Accept") or "")
        h.send_bytes(HTTPStatus.OK, encoder(api.registry), content_type)

    def healthz(h: _Handler) -> None:
        h.send_json(HTTPStatus.OK, {"status": "ok"})

    def readable(h: _Handler, token: str | None = api.read_token) -> bool:
        if h.bearer_ok(token):
            return True
        h.send_json(
            HTTPStatus.UNAUTHORIZED,
            {"error": "missing or wrong bearer token (send Authorization: Bearer <token>)"},
            {"WWW-Authenticate": 'Bearer realm="aispend"'},
        )
        return False

    def budgets(h: _Handler) -> None:
        if not readable(h, api.budgets_token):
            return
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
        body = h.read_body()
        if body is None:
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
            if not readable(h):
                return
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
        ("GET", "/metrics"): metrics,
        ("GET", "/healthz"): healthz,
        ("GET", "/v1/budgets"): budgets,
        ("GET", "/v1/usage"): report(api.usage),
        ("GET", "/v1/calls"): report(api.calls),
        ("GET", "/v1/series"): report(api.series),
        ("GET", "/v1/labels"): report(api.labels),
    }
    prefix_routes: list[tuple[str, str, Callable[[_Handler, str], None]]] = [("POST", "/v1/budgets/", change_budget)]
    if api.console:
        routes[("GET", "/")] = console_root
        routes[("GET", "/console/")] = console_file
        prefix_routes.append(("GET", "/console/", console_file))
    handler = type("ApiHandler", (_Handler,), {"routes": routes, "prefix_routes": prefix_routes})
    return _start(handler, host, port, tls)
