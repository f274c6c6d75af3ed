"""How far each way aispend can estimate tokens is from the real count, for gpt-4o (o200k_base).

The truth needs o200k_base in tiktoken's cache (the instrumentation never downloads it), e.g. on
a machine with internet: TIKTOKEN_CACHE_DIR=/some/dir python -c "import tiktoken; tiktoken.get_encoding('o200k_base')"
Run: TIKTOKEN_CACHE_DIR=/some/dir .venv/bin/python benchmarks/token_estimates.py
Compared: 4 characters per token (no tokenizer) and cl100k_base (what aispend[tokenizer] ships).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from aispend.instrumentation import tokens  # noqa: E402

SAMPLES = {
    "English prose (README)": (ROOT / "README.md").read_text()[:6000],
    "Python code": (ROOT / "exporter" / "pipeline.py").read_text()[:6000],
    "JSON (a dashboard)": (ROOT / "grafana" / "dashboards" / "aispend-overview.json").read_text()[:6000],
    "German": "Die Kosten für jeden Aufruf werden innerhalb von Sekunden erfasst und nach Modell, "
    "Funktion, Kunde und Schlüssel aufgeschlüsselt. " * 20,
    "Chinese": "每次调用的费用在几秒钟内被记录下来，并按模型、功能、客户和密钥进行细分。"
    "预算会在账单到来之前发出警报。" * 20,
    "Japanese": "各呼び出しのコストは数秒以内に記録され、モデル、機能、顧客、キーごとに分類されます。" * 20,
}


def main() -> None:
    if not tokens.in_tiktoken_cache("o200k_base"):
        sys.exit("o200k_base is not in tiktoken's cache: see this file's docstring")
    truth = tokens.counter_for("gpt-4o")
    cl100k = tokens.counter_for("gpt-4")
    assert truth.name == "o200k_base" and cl100k.name == "cl100k_base", (truth.name, cl100k.name)
    print(f"{'text':<24}{'o200k (real)':>13}{'chars/4':>9}{'error':>8}{'cl100k':>9}{'error':>8}")
    for name, text in SAMPLES.items():
        real = truth.count([text])
        chars = math.ceil(len(text) / tokens.CHARS_PER_TOKEN)
        cl = cl100k.count([text])
        print(f"{name:<24}{real:>13}{chars:>9}{(chars - real) / real:>8.0%}{cl:>9}{(cl - real) / real:>8.0%}")


if __name__ == "__main__":
    main()
