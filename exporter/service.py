"""``aispend serve``: wires config, pricing, ledger, budgets, pipeline, receivers and API together.

No logic lives here beyond start-up order and reloads: restore from the ledger first, then open
the receivers, so nothing is counted before the counters are back.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry

from aispend.exporter import console_warmup, price_sources, queries
from aispend.exporter.budgets import BudgetsError, BudgetsFile, BudgetTracker, load_budgets
from aispend.exporter.config import ConfigError, ExporterConfig, parse_address
from aispend.exporter.decode_pool import DecodePool
from aispend.exporter.grpc_receiver import serve_grpc
from aispend.exporter.http_server import Api, serve_api, serve_otlp_http
from aispend.exporter.ledger import Ledger, is_ephemeral, open_ledger
from aispend.exporter.metrics import UsageMetrics
from aispend.exporter.pipeline import Pipeline
from aispend.exporter.tokens import read_tokens
from aispend.pricing import PriceBookError, PriceEngine, load_book, pricedata

logger = logging.getLogger("aispend.exporter")


class _Collector:
    def __init__(self, metrics: UsageMetrics, config_errors: dict[str, int]) -> None:
        self._metrics = metrics
        self._config_errors = config_errors

    def collect(self) -> Any:
        yield from self._metrics.collect()
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily(
            "aispend_config_errors", "Config files that could not be loaded (the previous one stays).", labels=["file"]
        )
        for name, count in dict(self._config_errors).items():
            family.add_metric([name], count)
        yield family


@dataclass
class Exporter:
    config: ExporterConfig
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=False))
    ports: dict[str, int] = field(default_factory=dict)
    config_errors: dict[str, int] = field(default_factory=dict)
    warm_console: bool = True  # read the console's default pages once at start (benchmarks turn it off)

    def __post_init__(self) -> None:
        self.ledger: Ledger = open_ledger(self.config.ledger, writer=True)
        self.engine = PriceEngine(price_data=pricedata.bundled())
        self.reload_prices(at_start=True)
        self.budgets: BudgetTracker | None = None
        budgets_file = self._read_budgets(at_start=True)
        if budgets_file is not None or self.config.budgets:
            self.budgets = BudgetTracker(
                budgets_file or BudgetsFile(timezone=self.config.timezone),
                self.ledger,
                refresh=self.config.budget_refresh_seconds,
            )
        self.metrics = UsageMetrics(budget_samples=self.budgets.samples if self.budgets else None)
        self.metrics.price_data = lambda: self.engine.price_data.labels()  # type: ignore[union-attr]
        self.decoders: DecodePool | None = None
        if self.config.decode_workers > 0:
            self.decoders = DecodePool(self.config)
        self.pipeline = Pipeline(self.config, self.engine, self.ledger, self.metrics, self.budgets, self.decoders)
        self.registry.register(_Collector(self.metrics, self.config_errors))
        self._servers: list[Any] = []
        self._stop = threading.Event()
        self.warmed = threading.Event()  # the console's default pages were read once (console_warmup)

    # -- config reloads (start-up and SIGHUP) -----------------------------------------------------
    def _error(self, name: str, exc: Exception) -> None:
        self.config_errors[name] = self.config_errors.get(name, 0) + 1
        logger.error("%s; keeping the previous %s", exc, name)

    # A broken file at start stops the start (running without it would silently drop its prices or
    # turn budget enforcement off while /healthz says ok); on SIGHUP the previous one stays.
    def reload_prices(self, at_start: bool = False) -> None:
        """The price data (``aispend prices update``'s cache, else bundled) and the overrides file."""
        data, current = pricedata.load(), self.engine.price_data
        if current is None or (data.origin, data.sha256) != (current.origin, current.sha256):
            self.engine = self.engine.with_price_data(data)
            logger.info("%s", data.describe())
            if getattr(self, "ledger", None) is not None:
                price_sources.record(self.ledger, data, time.time_ns())
        if data.warning:
            self._error("price_data", pricedata.PriceDataError(data.warning))
        if self.config.prices:
            try:
                self.engine = self.engine.with_overrides(load_book(self.config.prices))
            except PriceBookError as exc:
                if at_start:
                    raise ConfigError(f"prices: {exc}") from None
                self._error("prices", exc)
        if hasattr(self, "pipeline"):
            self.pipeline.engine = self.engine
        if getattr(self, "decoders", None) is not None:
            self.decoders.reload()

    def _read_budgets(self, at_start: bool = False) -> BudgetsFile | None:
        if not self.config.budgets:
            return None
        try:
            return load_budgets(self.config.budgets)
        except BudgetsError as exc:
            if at_start:
                raise ConfigError(f"budgets: {exc}") from None
            self._error("budgets", exc)
            return None

    def reload(self) -> None:
        """SIGHUP: re-read budgets.yaml and the price overrides; a broken file keeps the old one."""
        self.reload_prices()
        budgets_file = self._read_budgets()
        if budgets_file is not None and self.budgets is not None:
            self.budgets.reload(budgets_file)
        logger.info("configuration reloaded")

    # -- run ---------------------------------------------------------------------------------------
    def start(self) -> None:
        self.pipeline.restore()
        if self.decoders is not None:
            self.decoders.warm_up()
        self.ledger.prune(self.config.retention_days, time.time_ns())
        cfg = self.config
        tls = _tls_context(cfg)
        if cfg.otlp_grpc:
            creds = _tls_pair(cfg)
            large_slots = max(2, cfg.decode_workers)  # large exports read at once: more only with more cores
            server, port = serve_grpc(self.pipeline, cfg.otlp_grpc, cfg.auth_token, creds, large_slots)
            self._servers.append(("grpc", server))
            self.ports["otlp_grpc"] = port
        if cfg.otlp_http:
            host, port = parse_address(cfg.otlp_http)
            server, port = serve_otlp_http(self.pipeline, host, port, cfg.auth_token, tls, cfg.request_timeout)
            self._servers.append(("http", server))
            self.ports["otlp_http"] = port
        host, port = parse_address(cfg.metrics)
        server, port = serve_api(self._api(), host, port, tls, cfg.request_timeout)
        self._servers.append(("http", server))
        self.ports["metrics"] = port
        threading.Thread(target=self._housekeeping, name="aispend-retention", daemon=True).start()
        threading.Thread(target=self._settling, name="aispend-settle", daemon=True).start()
        self._warm_console()

    def _warm_console(self) -> None:
        """Read the console's default pages once in the background, so their first load is fast;
        on its own read connections, so the receivers (open by now) are not held up."""
        if is_ephemeral(self.config.ledger) or not self.warm_console:
            self.warmed.set()
            return
        budgets = self.budgets
        threading.Thread(
            target=console_warmup.keep_warm,
            args=(self.ledger, self.config.timezone, (lambda: budgets.as_json()) if budgets else None, self._stop),
            kwargs={"warmed": self.warmed},
            name="aispend-console-warmup",
            daemon=True,
        ).start()

    def _api(self) -> Api:
        ledger, tz = self.ledger, self.config.timezone
        budgets = self.budgets
        return Api(
            registry=self.registry,
            budgets=(lambda: queries.budgets(budgets.as_json())) if budgets else None,
            change_budget=self._change_budget if self.budgets else None,
            usage=(lambda p: queries.usage(ledger, p, tz=tz)) if ledger else None,
            calls=(lambda p: queries.calls(ledger, p, tz=tz)) if ledger else None,
            series=(lambda p: queries.series(ledger, p, tz=tz)) if ledger else None,
            labels=(lambda p: queries.labels(ledger, p)) if ledger else None,
            admin_token=self.config.admin_token,
            read_tokens=read_tokens(self.config),
            problem=ledger.problem if ledger else None,
        )

    def _change_budget(self, name: str, amount: Decimal | None, reset: bool) -> dict[str, Any]:
        assert self.budgets is not None
        self.budgets.override(name, amount, reset)
        return next(b for b in self.budgets.as_json() if b["name"] == name)

    def _housekeeping(self) -> None:
        while not self._stop.wait(3600):
            try:
                self.ledger.prune(self.config.retention_days, time.time_ns())
            except Exception:
                logger.exception("retention pruning failed")

    def _settling(self) -> None:
        """Count spans that waited long enough for a better span of their call (any replica may)."""
        interval = min(1.0, max(self.config.settle_seconds / 4, 0.05))
        while not self._stop.wait(interval):
            try:
                while self.pipeline.settle() >= 2000:  # a backlog: keep going
                    pass
            except Exception as exc:  # the ledger is away: the next round tries again
                logger.warning("settling pending spans failed: %s", exc)

    def stop(self, grace: float = 5.0) -> None:
        self._stop.set()
        for kind, server in self._servers:
            if kind == "grpc":
                server.stop(grace).wait()
            else:
                server.shutdown()
                server.server_close()
        self._servers.clear()
        if self.decoders is not None:
            self.decoders.shutdown()
        self.ledger.close()


def _tls_pair(cfg: ExporterConfig) -> tuple[bytes, bytes] | None:
    if not (cfg.tls_cert and cfg.tls_key):
        return None
    with open(cfg.tls_key, "rb") as key, open(cfg.tls_cert, "rb") as cert:
        return key.read(), cert.read()


def _tls_context(cfg: ExporterConfig) -> ssl.SSLContext | None:
    if not (cfg.tls_cert and cfg.tls_key):
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cfg.tls_cert, cfg.tls_key)
    return context
