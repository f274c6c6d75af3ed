"""The ``aispend`` command: wiring only; each subcommand's work lives in its own package."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aispend import __version__


def _count(text: str) -> int:
    """A non-negative integer flag (argparse prints the subcommand's usage and this message)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _when(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO date or date/time such as 2026-05-01, got {text!r}"
        ) from None


def _cmd_prices(args: argparse.Namespace) -> int:
    from aispend.pricing import PriceBookError, PriceEngine, UsageRecord, pricedata
    from aispend.pricing.show import describe

    data = pricedata.load()
    if args.model is None:  # which price data is in use
        return _price_data_info(args, data)
    provider, model = args.provider, args.model
    if provider is None and "/" in model:
        provider, model = model.split("/", 1)
    try:
        engine = PriceEngine.from_files(args.overrides, price_data=data)
    except PriceBookError as exc:
        print(f"aispend prices: {exc}", file=sys.stderr)
        return 2
    when = args.at or datetime.now(UTC)
    usage = UsageRecord(
        provider=provider or "",
        model=model,
        operation=args.operation,
        input_tokens=args.input,
        output_tokens=args.output,
        cache_read_tokens=args.cache_read,
        cache_write_tokens=args.cache_write,
        reasoning_tokens=args.reasoning,
        requests=args.requests,
        images=args.images,
        image_size=args.size,
        image_quality=args.quality,
        timestamp=when if when.tzinfo else when.replace(tzinfo=UTC),
    )
    result = engine.price(usage, free_used=args.free_used)
    if args.json:
        print(
            json.dumps(
                {
                    "model": usage.model,
                    "provider": usage.provider,
                    "matched": result.matched,
                    "source": result.source,
                    "matched_model": result.model_id,
                    "matched_provider": result.provider_id,
                    "cost_usd": str(result.cost),
                    "breakdown": {k: str(getattr(result.breakdown, k)) for k in result.breakdown.__slots__},
                    "free_units": result.free_units,
                    "price_data": data.labels() if result.source == "genai-prices" else None,
                }
            )
        )
    else:
        print(describe(usage, result))
        if result.source == "genai-prices":
            print(data.describe())
    return 0 if result.matched else 1


def _price_data_info(args: argparse.Namespace, data: Any) -> int:
    from aispend.exporter import price_sources
    from aispend.exporter.ledger import open_ledger
    from aispend.pricing import pricedata

    info: dict[str, Any] = {**data.labels(), "providers": data.providers, "models": data.models}
    text = f"{data.describe()}\ncache: {pricedata.cache_path()}"
    if args.ledger:
        try:
            ledger = open_ledger(args.ledger)
        except ValueError as exc:
            print(f"aispend prices: {exc}", file=sys.stderr)
            return 2
        info["ledger_history"] = price_sources.history(ledger) if ledger else []
        if ledger:
            ledger.close()
        text += "\nprice data the ledger's calls were priced with (cost_source genai-prices@<version>):"
        for row in info["ledger_history"]:
            used = datetime.fromtimestamp(row["first_used_ns"] / 1e9, UTC).isoformat(timespec="seconds")
            fetched = f"fetched {row['date']}" if row["date"] else "bundled"
            text += f"\n  {row['version']}: {row['source']} ({fetched}), first used {used}"
    print(json.dumps(info) if args.json else text)
    return 0


def _cmd_prices_update(args: argparse.Namespace) -> int:
    from aispend.pricing import pricedata

    try:
        data = pricedata.update(args.source)
    except pricedata.PriceDataError as exc:
        previous = pricedata.load()
        print(f"aispend prices update: {exc}\nnothing changed; still in use: {previous.describe()}", file=sys.stderr)
        return 1
    print(f"updated {pricedata.cache_path()}\n{data.describe()}")
    print(
        "a running aispend serve uses it after SIGHUP (kill -HUP <pid>) or a restart; calls already recorded "
        "keep their prices until you run aispend reprice"
    )
    return 0


def _add_prices(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prices",
        help="look up a model's prices and what a call costs; without a model, the price data in use",
        epilog="aispend prices update [--from URL|FILE]: fetch, validate and cache newer genai-prices data",
    )
    p.add_argument("model", nargs="?", help="model name as you send it, e.g. gpt-4o-2024-08-06 or openai/gpt-4o")
    p.add_argument("--provider", help="provider name (openai, anthropic, gcp.gemini, serper, ...)")
    p.add_argument("--operation", default="chat")
    for flag in ("input", "output", "cache-read", "cache-write", "reasoning", "images", "free-used"):
        p.add_argument(f"--{flag}", type=_count, default=0, metavar="N")
    p.add_argument("--requests", type=_count, default=1, metavar="N", help="billable request units (default 1)")
    p.add_argument("--size", help="image size, e.g. 1024x1024")
    p.add_argument("--quality", help="image quality, e.g. standard, hd, low, medium, high")
    p.add_argument("--at", type=_when, help="price at this ISO date/time, e.g. 2026-05-01 (default now)")
    p.add_argument("--overrides", help="price overrides file (YAML)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--ledger", help="without a model: also list the price data this ledger's calls were priced with")
    p.set_defaults(func=_cmd_prices, parser=p)


def _cmd_serve(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from aispend.exporter import otlp_native
    from aispend.exporter.config import ConfigError, ExporterConfig
    from aispend.exporter.ledger import LedgerError
    from aispend.exporter.ledger_location import shown
    from aispend.exporter.service import Exporter

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    exporter = None
    try:
        config = ExporterConfig.load(_settings(args), config_file=args.config)
        exporter = Exporter(config)
        exporter.start()
    except (ConfigError, ValueError, OSError, LedgerError) as exc:
        if exporter is not None:  # a listener that did start must not keep the process alive
            exporter.stop(grace=0)
        print(f"aispend serve: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: exporter.reload())
    p = exporter.ports
    print(
        "aispend serve: "
        + ", ".join(
            f"{name} on {addr}"
            for name, addr in (
                ("OTLP/gRPC", f"{config.otlp_grpc.rsplit(':', 1)[0]}:{p['otlp_grpc']}" if "otlp_grpc" in p else ""),
                (
                    "OTLP/HTTP",
                    f"http://{config.otlp_http.rsplit(':', 1)[0]}:{p['otlp_http']}/v1/traces"
                    if "otlp_http" in p
                    else "",
                ),
                ("metrics", f"http://{config.metrics.rsplit(':', 1)[0]}:{p['metrics']}/metrics"),
            )
            if addr
        )
        + f"; ledger {shown(config.ledger)}; instance {exporter.pipeline.instance}"
        + f"; span reader {'compiled' if config.native_reader and otlp_native.available() else 'Python'}",
        flush=True,
    )
    # A process signal may be delivered to any thread; Python runs the handler in the main thread
    # only when it next executes bytecode, so wake up regularly rather than block forever.
    while not stop.wait(0.5):
        pass
    exporter.stop()
    return 0


_SERVE_FLAGS = {
    "otlp_grpc": "OTLP/gRPC listen address (default 127.0.0.1:4317; '' disables)",
    "otlp_http": "OTLP/HTTP listen address (default 127.0.0.1:4318; '' disables)",
    "metrics": "/metrics and JSON API listen address (default 127.0.0.1:9464)",
    "ledger": "ledger URL: sqlite:///relative/path or sqlite:////absolute/path (default {ledger}), "
    "postgresql://user:pw@host/db, or none",
    "retention_days": "days of per-call rows to keep (daily totals are kept forever; default 90)",
    "prices": "price overrides file (YAML)",
    "budgets": "budgets file (YAML); re-read on SIGHUP",
    "timezone": "timezone of calendar days and months (default UTC)",
    "auth_token": "bearer token required by the OTLP receivers",
    "admin_token": "bearer token required by POST /v1/budgets/{name} (it also reads)",
    "read_token": "bearer token for GET /metrics and /v1/* (without it, the admin or auth token reads; "
    "with no token at all, reads are open)",
    "tls_cert": "TLS certificate (PEM) for all listeners",
    "tls_key": "TLS private key (PEM)",
    "label_limits": "distinct values per label before __overflow__, e.g. customer=5000,model=500",
    "max_series": "label sets before new ones count with feature/customer/key __overflow__ (default 5000; 0: no bound)",
    "label_max_length": "characters per label value before it is cut (default 128)",
    "key_aliases": "key fingerprint aliases, e.g. 'sk-…a1b2=prod-backend'",
    "dedupe_window": "span ids remembered to drop retried exports (default 200000)",
    "max_tokens_per_call": "above this a token count is corrupt and its span rejected (default 50000000)",
    "max_spans_per_request": "more spans in one export request are refused: 413 / RESOURCE_EXHAUSTED (default 100000)",
    "max_resource_spans_per_request": "more resource spans in one export request are refused (default 10000)",
    "request_timeout": "seconds an HTTP client may stay silent before it is disconnected (default 30)",
    "decode_workers": "processes that decode and normalise OTLP payloads, for spare cores (default 0: none)",
    "instance_id": "this replica's name in the ledger (default: host name and OTLP gRPC port)",
    "settle_seconds": "how long other instrumentations' spans wait for aispend's span of the same call (default 15)",
    "budget_refresh_seconds": "how often budget spend is read back from the shared ledger (default 1)",
    "native_reader": "read OTLP protobuf with the compiled span reader when installed (default true)",
}


def _settings(args: argparse.Namespace) -> dict[str, object]:
    return {name: getattr(args, name) for name in _SERVE_FLAGS if getattr(args, name, None) is not None}


def _add_serve(sub: argparse._SubParsersAction) -> None:
    from aispend.exporter.ledger_location import default_ledger_url

    p = sub.add_parser("serve", help="run the exporter: OTLP in, priced Prometheus metrics and a ledger out")
    p.add_argument("--config", help="aispend.yaml (settings; flags and AISPEND_* env win over it)")
    for name, text in _SERVE_FLAGS.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, help=text.replace("{ledger}", default_ledger_url()))
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_cmd_serve, parser=p)


def _cmd_usage(args: argparse.Namespace) -> int:
    from aispend.exporter import usage
    from aispend.exporter.config import ConfigError, ExporterConfig
    from aispend.exporter.ledger import LedgerError, is_ephemeral, open_ledger
    from aispend.exporter.ledger_location import require_existing

    try:
        config = ExporterConfig.load({"ledger": args.ledger, "timezone": args.timezone}, config_file=args.config)
        if is_ephemeral(config.ledger):
            print("aispend usage: no ledger configured (ledger: none)", file=sys.stderr)
            return 2
        require_existing(config.ledger)  # reading never creates an empty ledger
        ledger = open_ledger(config.ledger)
    except (ConfigError, ValueError, LedgerError) as exc:
        print(f"aispend usage: {exc}", file=sys.stderr)
        return 2
    from aispend.exporter.queries import CALLS_PARAMS, USAGE_PARAMS

    allowed = CALLS_PARAMS if args.calls else USAGE_PARAMS
    params = {k: v for k, v in vars(args).items() if isinstance(v, str) and k in allowed}
    params["limit"] = str(args.limit)
    try:
        if args.calls:
            rows = usage.calls_report(ledger, params, tz=config.timezone)
            data: object = rows
            columns = [
                "time",
                "service",
                "provider",
                "model",
                "operation",
                "feature",
                "customer",
                "key",
                "status",
                "input_tokens",
                "output_tokens",
                "cache_read_tokens",
                "requests",
                "cost_usd",
                "cost_source",
            ]
            table = usage.to_table([{c: r.get(c) for c in columns} for r in rows])
        else:
            report = usage.usage_report(ledger, params, tz=config.timezone)
            data, rows = report, report["rows"]
            totals = report["totals"]
            lines = [
                f"{name.replace('_', ' '):<11} ${t['cost_usd']}  ({t['calls']} calls)"
                for name, t in (
                    ("today", totals["today"]),
                    ("this_month", totals["this_month"]),
                    ("all_time", totals["all_time"]),
                )
            ]
            if report["group_by"] or any(p in params for p in ("since", "until")):
                lines.append(f"selected    ${report['selected']['cost_usd']}  ({report['selected']['calls']} calls)")
            table = "\n".join(lines) + ("\n\n" + usage.to_table(rows) if rows else "")
    except (usage.UsageQueryError, LedgerError) as exc:
        print(f"aispend usage: {exc}", file=sys.stderr)
        return 2
    finally:
        ledger.close()
    if args.format == "json":
        print(usage.to_json(data))
    elif args.format == "csv":
        print(usage.to_csv(rows), end="")
    else:
        print(table)
    return 0


def _add_usage(sub: argparse._SubParsersAction) -> None:
    from aispend.exporter.ledger_location import default_ledger_url

    p = sub.add_parser("usage", help="per-call log and spend summaries from the ledger")
    p.add_argument("--config", help="aispend.yaml (for the ledger URL and timezone)")
    p.add_argument("--ledger", help=f"ledger URL (default from config, else {default_ledger_url()})")
    p.add_argument("--timezone", help="timezone for today / this month (default from config: UTC)")
    p.add_argument("--since", help="24h, 7d, today, month, or an ISO date/time")
    p.add_argument("--until", help="same forms as --since")
    for name in ("service", "provider", "model", "operation", "feature", "customer", "key", "status"):
        p.add_argument(f"--{name}", help=f"only calls with this {name}")
    p.add_argument("--group-by", dest="group_by", help="comma-separated: model,feature,customer,key,day,...")
    p.add_argument("--calls", action="store_true", help="list individual calls (newest first)")
    p.add_argument("--limit", type=_count, default=100, help="rows to show (default 100)")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.set_defaults(func=_cmd_usage, parser=p)


def _cmd_reprice(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo

    from aispend.exporter import price_sources, queries, reprice, usage
    from aispend.exporter.config import ConfigError, ExporterConfig
    from aispend.exporter.ledger import LedgerError, is_ephemeral, open_ledger
    from aispend.pricing import PriceBookError, PriceEngine, pricedata

    settings = {"ledger": args.ledger, "timezone": args.timezone, "prices": args.prices}
    try:
        config = ExporterConfig.load({k: v for k, v in settings.items() if v}, config_file=args.config)
        zone, now = ZoneInfo(config.timezone), datetime.now(UTC)
        since = queries.parse_when(args.since, now, zone)
        until = queries.parse_when(args.until, now, zone, "until") if args.until else None
        data = pricedata.load()
        engine = PriceEngine.from_files(config.prices, price_data=data)
        ledger = open_ledger(config.ledger)
    except (ConfigError, ValueError, PriceBookError, OSError) as exc:
        print(f"aispend reprice: {exc}", file=sys.stderr)
        return 2
    if is_ephemeral(config.ledger):
        print("aispend reprice: no ledger configured (ledger: none)", file=sys.stderr)
        return 2
    span = f"{since.isoformat()} .. {until.isoformat() if until else 'now'}"
    try:
        since_ns, until_ns = int(since.timestamp() * 1e9), int(until.timestamp() * 1e9) if until else None
        plan = reprice.plan(ledger, engine, since_ns, until_ns, args.provider, args.model)
        if not args.dry_run and plan.staged:
            price_sources.record(ledger, data, time.time_ns())
        changed = 0 if args.dry_run else reprice.apply(ledger, plan)
    except LedgerError as exc:
        print(f"aispend reprice: {exc}; nothing changed", file=sys.stderr)
        return 1
    finally:
        ledger.close()
    if args.format == "json":
        report = {
            "since": since.isoformat(),
            "until": until.isoformat() if until else None,
            "dry_run": args.dry_run,
            "price_data": data.labels(),
            "overrides": config.prices,
            "models": plan.rows(),
            "difference_usd": str(reprice.total(plan)),
            "changed_calls": len(plan.staged),
            "skipped": plan.skipped,
        }
        print(usage.to_json(report))
        return 0
    print(f"calls {span}\n{data.describe()}\noverrides: {config.prices or 'none'}")
    print(usage.to_table(plan.rows()) if plan.models else "(no calls in the range)")
    print(f"difference: {reprice.total(plan):+.9f} USD over {len(plan.staged)} call(s)")
    for reason, n in sorted(plan.skipped.items()):
        print(f"left as recorded: {n} call(s): {reason}")
    if args.dry_run:
        print("dry run: nothing changed")
    else:
        print(
            f"updated {changed} call(s) and their daily totals in one transaction (the Prometheus counters "
            "keep what they counted; reports from the ledger show the new figures)"
        )
    return 0


def _add_reprice(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reprice",
        help="recompute stored costs with the prices in force at each call's time (after a price update)",
        description="Price the ledger's calls again from their stored usage with the current price data "
        "and overrides (effective dates respected), print the difference per model, and update the calls "
        "and daily totals in one transaction. Calls priced at a provider-reported cost keep it.",
    )
    p.add_argument("--since", required=True, help="7d, month, or an ISO date/time (in --timezone)")
    p.add_argument("--until", help="same forms as --since (exclusive; default now)")
    p.add_argument("--provider", help="only calls to this provider")
    p.add_argument("--model", help="only calls with this model label (the model the app asked for)")
    p.add_argument("--dry-run", action="store_true", help="print the difference, change nothing")
    p.add_argument("--ledger", help="ledger URL (default from config: sqlite:///aispend.sqlite)")
    p.add_argument("--config", help="aispend.yaml (ledger URL, price overrides, timezone)")
    p.add_argument("--prices", help="price overrides file (YAML); default from config")
    p.add_argument("--timezone", help="timezone of dates without one (default from config: UTC)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=_cmd_reprice)


def _cmd_budgets_render(args: argparse.Namespace) -> int:
    from aispend.exporter.budget_rules import render
    from aispend.exporter.budgets import BudgetsError, load_budgets

    try:
        text = render(load_budgets(args.file), args.file)
    except BudgetsError as exc:
        print(f"aispend budgets render: {exc}", file=sys.stderr)
        return 2
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        print(text, end="")
    return 0


def _add_budgets(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("budgets", help="budget tools")
    budgets_sub = p.add_subparsers(dest="budgets_command", required=True)
    r = budgets_sub.add_parser("render", help="Prometheus alert rules for budgets.yaml thresholds")
    r.add_argument("file", help="budgets.yaml")
    r.add_argument("-o", "--output", help="write here instead of standard output")
    r.set_defaults(func=_cmd_budgets_render, parser=r)


def _prices_update_parser() -> argparse.ArgumentParser:
    from aispend.pricing import pricedata

    p = argparse.ArgumentParser(
        prog="aispend prices update",
        description="Fetch genai-prices' published price data, validate it and store it in the local cache "
        f"({pricedata.cache_path()}; AISPEND_PRICE_CACHE names another file). serve, prices and reprice "
        "then use it instead of the copy bundled with genai-prices. An invalid file changes nothing.",
    )
    p.add_argument("--from", dest="source", metavar="URL|FILE", help=f"default {pricedata.DEFAULT_URL}")
    p.set_defaults(func=_cmd_prices_update)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aispend", description=__doc__)
    parser.add_argument("--version", action="version", version=f"aispend {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve(sub)
    _add_usage(sub)
    _add_prices(sub)
    _add_reprice(sub)
    _add_budgets(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["prices", "update"]:  # a subcommand beside `aispend prices MODEL`
        args = _prices_update_parser().parse_args(argv[2:])
    else:
        parser = build_parser()
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # argparse would blame the top-level command; the subcommand's usage is what helps
            getattr(args, "parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
