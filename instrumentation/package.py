# opentelemetry-instrument enables the instrumentor when ANY of these is installed
# (pyproject's `instruments-any` extra carries the same list).
_instruments_any = ("httpx >= 0.23", "httpx2", "requests >= 2.20", "aiohttp >= 3.9", "botocore >= 1.34")
_instruments = ()
