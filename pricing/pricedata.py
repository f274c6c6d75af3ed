"""Which LLM price data aispend uses: genai-prices' bundled copy, or a newer one in the user's cache.

``aispend prices update`` fetches the genai-prices project's published data (``data.json``, the
list of providers its own ``UpdatePrices`` loads; or a URL or file you name), validates it with
genai-prices' own schema plus sanity checks, and stores it with where it came from and when in
``$XDG_CACHE_HOME/aispend/prices.json`` (``AISPEND_PRICE_CACHE`` names another file). ``serve``,
``prices``, ``reprice`` and the console then use it instead of the bundled copy. Nothing here runs
while a call is priced: the cache is read at start and on SIGHUP, and a missing or unreadable cache
means the bundled copy (with a warning saying why). A failed or invalid update writes nothing, so
the previous data stays in use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from importlib.metadata import version as _dist_version
from pathlib import Path
from typing import Any

from genai_prices import data_snapshot
from genai_prices import types as gp
from genai_prices.update_prices import DEFAULT_UPDATE_URL

from aispend.pricing.library import flatten

logger = logging.getLogger("aispend.pricing")

FORMAT = "aispend-price-data/1"
DEFAULT_URL = DEFAULT_UPDATE_URL  # what genai-prices' own UpdatePrices fetches
CORE_PROVIDERS = ("openai", "anthropic", "google")  # a file without them is not the full price data
MAX_MTOK = Decimal(100_000)  # USD per million tokens (or per thousand requests); above is a unit error
MAX_BYTES = 64 * 1024 * 1024
GENAI_PRICES_VERSION = _dist_version("genai-prices")


class PriceDataError(ValueError):
    """Price data that cannot be used; the message says why (the previous data stays in use)."""


@dataclass(frozen=True)
class PriceData:
    """One set of genai-prices price data and where it came from."""

    snapshot: data_snapshot.DataSnapshot = field(repr=False)
    origin: str  # "cache" (from aispend prices update) or "bundled" (inside the genai-prices package)
    source: str  # the URL or file the cache was fetched from; "genai-prices X.Y.Z" when bundled
    version: str  # the first 12 hex digits of the data's SHA-256 (cache), genai-prices' version (bundled)
    date: str  # when the cache was fetched (UTC, ISO 8601); "" for the bundled copy (its release date)
    sha256: str = ""
    providers: int = 0
    models: int = 0
    path: str = ""  # the cache file, when origin is "cache"
    warning: str = ""  # why a cache that exists is not in use

    def labels(self) -> dict[str, str]:
        """The labels of ``aispend_price_data_info``."""
        return {"origin": self.origin, "source": self.source, "version": self.version, "date": self.date}

    def describe(self) -> str:
        if self.origin == "cache":
            text = f"price data: {self.source}, fetched {self.date} (sha256 {self.version}, cached in {self.path})"
        else:
            text = f"price data: bundled with genai-prices {self.version}"
        text += f"; {self.providers} providers, {self.models} models"
        return text + (f"\nwarning: {self.warning}" if self.warning else "")


def cache_path(env: Mapping[str, str] | None = None) -> Path:
    """``AISPEND_PRICE_CACHE``, else ``$XDG_CACHE_HOME/aispend/prices.json`` (``~/.cache`` by default)."""
    env = os.environ if env is None else env
    if env.get("AISPEND_PRICE_CACHE"):
        return Path(env["AISPEND_PRICE_CACHE"]).expanduser()
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "aispend" / "prices.json"


def _count(providers: list[gp.Provider]) -> int:
    return sum(len(p.models) for p in providers)


def bundled(warning: str = "") -> PriceData:
    snapshot = data_snapshot._bundled_snapshot()  # the package's copy even if something set another
    return PriceData(
        snapshot=snapshot,
        origin="bundled",
        source=f"genai-prices {GENAI_PRICES_VERSION}",
        version=GENAI_PRICES_VERSION,
        date="",
        providers=len(snapshot.providers),
        models=_count(snapshot.providers),
        warning=warning,
    )


# -- validation ----------------------------------------------------------------------------------
def _prices(model: gp.ModelInfo) -> Iterator[gp.ModelPrice]:
    if isinstance(model.prices, list):
        yield from (c.prices for c in model.prices)
    else:
        yield model.prices
    for variant in model.price_variants or ():
        yield from _prices_of_variant(variant)


def _prices_of_variant(variant: Any) -> Iterator[gp.ModelPrice]:
    prices = getattr(variant, "prices", None)
    if isinstance(prices, list):
        yield from (getattr(c, "prices", c) for c in prices)
    elif prices is not None:
        yield prices


def _values(price: Any) -> Iterator[Decimal]:
    if isinstance(price, gp.TieredPrices):
        yield Decimal(price.base)
        yield from (Decimal(t.price) for t in price.tiers)
    elif price is not None:
        yield Decimal(price)


def validate(providers: list[gp.Provider]) -> None:
    """Sanity checks beyond the schema: raise PriceDataError naming the first problems."""
    problems: list[str] = []
    ids = [p.id for p in providers]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        problems.append(f"provider ids listed twice: {', '.join(duplicated)}")
    by_id = {p.id: p for p in providers}
    missing = [i for i in CORE_PROVIDERS if not (i in by_id and by_id[i].models)]
    if missing:
        problems.append(f"no models for {', '.join(missing)} (a partial or wrong file?)")
    now = datetime.now(UTC)
    for provider in providers:
        for model in provider.models:
            where = f"{provider.id}/{model.id}"
            try:
                for price in _prices(model):
                    for name, value in price.__dict__.items():
                        for amount in _values(value):
                            if not amount.is_finite() or amount < 0 or amount > MAX_MTOK:
                                problems.append(f"{where}: {name} = {amount} is not a plausible price")
                flatten(model.get_prices(now))  # what aispend will read of it
            except (ArithmeticError, TypeError, ValueError, AttributeError) as exc:
                problems.append(f"{where}: {type(exc).__name__}: {exc}")
            if len(problems) >= 5:
                break
    if problems:
        raise PriceDataError("; ".join(problems[:5]))


def parse(raw: bytes, origin: str) -> tuple[list[Any], list[gp.Provider]]:
    """The JSON document and genai-prices' providers read from it with its own schema; raises
    PriceDataError saying what is wrong."""
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PriceDataError(f"{origin} is not JSON: {exc}") from None
    if not isinstance(document, list) or not document:
        raise PriceDataError(f"{origin} is not genai-prices price data (expected a non-empty list of providers)")
    try:
        # the loader genai-prices' own UpdatePrices.fetch uses for the same published file
        providers = gp._providers_from_raw(document)
    except Exception as exc:  # pydantic's ValidationError, or whatever the schema raises
        first = str(exc).strip().splitlines()
        raise PriceDataError(f"{origin} does not match genai-prices' schema: {' '.join(first[:3])}") from None
    try:
        validate(providers)
    except PriceDataError as exc:
        raise PriceDataError(f"{origin}: {exc}") from None
    return document, providers


def _from_document(document: list[Any], providers: list[gp.Provider], meta: Mapping[str, Any], path: Path) -> PriceData:
    return PriceData(
        snapshot=data_snapshot.DataSnapshot(providers=providers, from_auto_update=False),
        origin="cache",
        source=str(meta.get("source", "")),
        version=str(meta.get("sha256", ""))[:12],
        date=str(meta.get("fetched_at", "")),
        sha256=str(meta.get("sha256", "")),
        providers=len(providers),
        models=_count(providers),
        path=str(path),
    )


# -- loading -------------------------------------------------------------------------------------
def load_cache(path: Path) -> PriceData:
    """The cached data; raises PriceDataError (or OSError) when it cannot be used."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        wrapper = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PriceDataError(f"{path} is not JSON: {exc}") from None
    if not isinstance(wrapper, dict) or wrapper.get("format") != FORMAT or "data" not in wrapper:
        raise PriceDataError(f"{path} is not an aispend price data cache ({FORMAT})")
    data = json.dumps(wrapper["data"], separators=(",", ":")).encode()
    document, providers = parse(data, str(path))
    return _from_document(document, providers, wrapper, path)


def load(path: Path | None = None) -> PriceData:
    """The price data to use: the cache when there is a usable one, else the bundled copy."""
    path = path or cache_path()
    if not path.exists():
        return bundled()
    try:
        return load_cache(path)
    except (PriceDataError, OSError) as exc:
        warning = f"the price data cache is not used ({exc}); run aispend prices update"
        logger.warning("%s; using the prices bundled with genai-prices %s", warning, GENAI_PRICES_VERSION)
        return bundled(warning)


# -- updating ------------------------------------------------------------------------------------
def fetch(source: str, timeout: float = 30.0) -> bytes:
    """The bytes of an http(s) URL, a file:// URL or a file path."""
    if source.startswith(("http://", "https://")):
        request = urllib.request.Request(source, headers={"User-Agent": "aispend-prices-update"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read(MAX_BYTES + 1)
        except OSError as exc:  # URLError, HTTPError, timeouts
            raise PriceDataError(f"could not fetch {source}: {exc}") from None
    else:
        path = Path(source[len("file://") :] if source.startswith("file://") else source).expanduser()
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise PriceDataError(f"could not read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise PriceDataError(f"{source} is larger than {MAX_BYTES // 1024 // 1024} MB")
    return raw


def update(source: str | None = None, path: Path | None = None, now: datetime | None = None) -> PriceData:
    """Fetch, validate and cache price data; raises PriceDataError and leaves the cache as it was."""
    source = source or DEFAULT_URL
    path = path or cache_path()
    if not source.startswith(("http://", "https://", "file://")):
        source = str(Path(source).expanduser().resolve())
    raw = fetch(source)
    document, providers = parse(raw, source)
    meta = {
        "format": FORMAT,
        "source": source,
        "fetched_at": (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "genai_prices_version": GENAI_PRICES_VERSION,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".prices.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({**meta, "data": document}, out, separators=(",", ":"))
            os.chmod(tmp, 0o644)  # public data: the exporter may run as another user
            os.replace(tmp, path)  # atomic: readers see the old file or the new one
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        raise PriceDataError(f"could not write the price data cache {path}: {exc}") from None
    return _from_document(document, providers, meta, path)


__all__ = ["PriceData", "PriceDataError", "bundled", "cache_path", "load", "update"]
