"""The ``aispend`` command: wiring only; each subcommand's work lives in its own package."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from aispend import __version__


def _cmd_prices(args: argparse.Namespace) -> int:
    from aispend.pricing import PriceBookError, PriceEngine, UsageRecord
    from aispend.pricing.show import describe

    provider, model = args.provider, args.model
    if provider is None and "/" in model:
        provider, model = model.split("/", 1)
    try:
        engine = PriceEngine.from_files(args.overrides)
    except PriceBookError as exc:
        print(f"aispend prices: {exc}", file=sys.stderr)
        return 2
    when = datetime.fromisoformat(args.at) if args.at else datetime.now(UTC)
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
                }
            )
        )
    else:
        print(describe(usage, result))
    return 0 if result.matched else 1


def _add_prices(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prices", help="look up a model's prices and what a call costs")
    p.add_argument("model", help="model name as you send it, e.g. gpt-4o-2024-08-06 or openai/gpt-4o")
    p.add_argument("--provider", help="provider name (openai, anthropic, gcp.gemini, serper, ...)")
    p.add_argument("--operation", default="chat")
    for flag in ("input", "output", "cache-read", "cache-write", "reasoning", "images", "free-used"):
        p.add_argument(f"--{flag}", type=int, default=0, metavar="N")
    p.add_argument("--requests", type=int, default=1, metavar="N", help="billable request units (default 1)")
    p.add_argument("--size", help="image size, e.g. 1024x1024")
    p.add_argument("--quality", help="image quality, e.g. standard, hd, low, medium, high")
    p.add_argument("--at", help="price at this ISO date/time (default now)")
    p.add_argument("--overrides", help="price overrides file (YAML)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_prices)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aispend", description=__doc__)
    parser.add_argument("--version", action="version", version=f"aispend {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_prices(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
