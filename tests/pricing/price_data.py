"""A small price data file in genai-prices' published format (``data.json``: a list of providers),
written by the tests themselves: no network. DeepSeek's chat price is a parameter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _provider(pid: str, name: str, api: str, models: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": pid, "name": name, "api_pattern": api, "model_match": {"starts_with": pid}, "models": models}


def _model(mid: str, prices: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": mid, "name": mid, "match": {"starts_with": mid}, "prices": prices}


def document(deepseek_input: str = "0.28", deepseek_output: str = "0.42") -> list[dict[str, Any]]:
    return [
        _provider(
            "openai", "OpenAI", r"https://api\.openai\.com", [_model("gpt-4", {"input_mtok": 30, "output_mtok": 60})]
        ),
        _provider(
            "anthropic",
            "Anthropic",
            r"https://api\.anthropic\.com",
            [_model("claude-3-5-haiku", {"input_mtok": 0.8, "output_mtok": 4})],
        ),
        _provider(
            "google",
            "Google",
            r"https://generativelanguage\.googleapis\.com",
            [_model("gemini-2.0-flash", {"input_mtok": 0.1, "output_mtok": 0.4})],
        ),
        _provider(
            "deepseek",
            "Deepseek",
            r"https://api\.deepseek\.com",
            [
                _model(
                    "deepseek-chat",
                    [
                        {"prices": {"input_mtok": 0.27, "output_mtok": 1.1}},
                        {
                            "constraint": {"start_date": "2025-09-05"},
                            "prices": {"input_mtok": float(deepseek_input), "output_mtok": float(deepseek_output)},
                        },
                    ],
                )
            ],
        ),
    ]


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path
