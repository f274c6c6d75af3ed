"""Services billed per request rather than per token (web search, image search).

Each such provider is data: which paths are billable, what each is called (the ``model`` label),
its service kind, where the key travels, and how many billable units a request carries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aispend import semconv as sc
from aispend.instrumentation.adapters.base import CallStart, Observed, error_type_from_body, num
from aispend.instrumentation.exchange import HttpRequest, HttpResponse

UnitsFn = Callable[[HttpRequest, object], int]


def one(request: HttpRequest, body: object) -> int:
    return 1


@dataclass(frozen=True)
class Endpoint:
    suffix: str
    model: str
    kind: str = "search"
    units: UnitsFn = one


@dataclass
class PerRequestAdapter:
    provider: str
    methods: tuple[str, ...]
    endpoints: tuple[Endpoint, ...]
    key_headers: tuple[str, ...] = ()
    key_params: tuple[str, ...] = ()
    key_body_field: str | None = None
    key_auth_schemes: tuple[str, ...] = ("bearer",)
    # response JSON field holding the units actually billed (e.g. Serper "credits")
    units_from_response: Callable[[object], int | None] | None = field(default=None)

    def _endpoint(self, request: HttpRequest) -> Endpoint | None:
        if request.method not in self.methods:
            return None
        path = request.path.rstrip("/")
        for endpoint in self.endpoints:
            if path.endswith(endpoint.suffix):
                return endpoint
        return None

    def matches(self, request: HttpRequest) -> bool:
        return self._endpoint(request) is not None

    def api_key(self, request: HttpRequest) -> str | None:
        for name in self.key_headers:
            if request.headers.get(name):
                return request.headers[name]
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() in self.key_auth_schemes and token.strip():
            return token.strip()
        params = request.query_params() if self.key_params else {}
        for name in self.key_params:
            if params.get(name):
                return params[name]
        if self.key_body_field:
            body = request.json()
            if isinstance(body, dict) and isinstance(body.get(self.key_body_field), str):
                return body[self.key_body_field]
        return None

    def request_attributes(self, request: HttpRequest) -> CallStart | None:
        endpoint = self._endpoint(request)
        if endpoint is None:
            return None
        units = endpoint.units(request, request.json() if request.body else None)
        return CallStart(
            operation="search",
            kind=endpoint.kind,
            model=endpoint.model,
            attributes={sc.AISPEND_USAGE_REQUESTS: units},
        )

    def response_attributes(self, start: CallStart, response: HttpResponse, observed: Observed) -> None:
        if response.status >= 400:
            observed.error_type = error_type_from_body(response.json())
            return
        observed.usage_reported = True
        if self.units_from_response is not None:
            units = self.units_from_response(response.json())
            if units is not None:
                observed.attributes[sc.AISPEND_USAGE_REQUESTS] = units

    def stream_observer(self, start: CallStart, observed: Observed) -> None:
        return None


def count_field(*path: str) -> Callable[[object], int | None]:
    """Read a billed-units number from a response body (summed over a batch list)."""

    def read(body: object) -> int | None:
        items = body if isinstance(body, list) else [body]
        total, found = 0, False
        for item in items:
            value: object = item
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            n = num(value)
            if n is not None:
                total, found = total + n, True
        return total if found else None

    return read
