"""The judge's rubric and prompts, shared by every judge backend.

A document is judged on K dimensions, each 0-5. The K prompts of one document differ only in their last
part (the question), so they are built as one shared *prefix* (chat-template head, instructions, the truncated
document) plus K short *suffixes* (question, chat-template tail up to the assistant's first token). Backends
get token ids, never text, so the transformers, vLLM and HTTP backends see exactly the same inputs.

A score is the expected value of the next-token distribution renormalized over the six tokens "0".."5":
no text is generated or parsed, so a model cannot return an unparseable answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SCORE_TOKENS = ("0", "1", "2", "3", "4", "5")
_DOC, _QUESTION = "\x00QURATE_DOC\x00", "\x00QURATE_QUESTION\x00"

DEFAULT_SYSTEM = (
    "You rate web documents for a language-model pretraining corpus. Given a document and one criterion, "
    "answer with a single digit from 0 (worst) to 5 (best) and nothing else."
)

# (name, question): every dimension reads "higher is better", so the aggregate is a plain weighted mean.
# Questions are short on purpose: they are the per-dimension suffix, computed K times per document.
# The default rubric is the one dimension the bundled classifier was trained on (FineWeb-Edu's educational value,
# see classifiers/data/README.md); MORE_DIMENSIONS are further questions for a recipe that runs its own judge.
DEFAULT_DIMENSIONS: tuple[tuple[str, str], ...] = (
    ("educational_value", "Educational value: would a student learn from it? (5 = textbook quality)"),
)
MORE_DIMENSIONS: tuple[tuple[str, str], ...] = (
    ("knowledge_density", "Knowledge density: facts and concrete details per sentence (5 = dense)"),
    ("coherence", "Coherence and writing quality (5 = fluent, well-ordered prose; 0 = garbled)"),
    ("reasoning_depth", "Reasoning depth: explanations, arguments or derivations (5 = deep)"),
    ("noise_free", "Freedom from ads, spam, boilerplate and navigation text (5 = none at all)"),
)


@dataclass(frozen=True)
class JudgePrompt:
    """One document's prompts as token ids: ``prefix + suffixes[k]`` is the full prompt for dimension k."""

    prefix: list[int]
    suffixes: list[list[int]]
    doc_tokens: int  # document tokens after truncation
    truncated: bool

    def full(self, k: int) -> list[int]:
        return self.prefix + self.suffixes[k]


def score_token_ids(tokenizer: Any) -> list[int]:
    """Ids of "0".."5" as the assistant's first token; each must be a single token in this vocabulary."""
    ids = []
    for digit in SCORE_TOKENS:
        encoded = tokenizer.encode(digit, add_special_tokens=False)
        if len(encoded) != 1:
            raise ValueError(f"score token {digit!r} is {len(encoded)} tokens in this tokenizer; need exactly 1")
        ids.append(encoded[0])
    return ids


class PromptBuilder:
    """Turns a document's text into a ``JudgePrompt`` with the model's own chat template.

    The template is rendered once with placeholders and split around them, so a document costs one tokenizer
    call. The document is tokenized with special-token parsing off (a page containing ``<|im_start|>`` cannot
    inject chat turns) and cut to ``max_doc_tokens``.
    """

    def __init__(self, tokenizer: Any, questions: Sequence[str], max_doc_tokens: int,
                 system: str = DEFAULT_SYSTEM):
        if not questions:
            raise ValueError("the rubric needs at least one dimension")
        self.tokenizer = tokenizer
        self.max_doc_tokens = max_doc_tokens
        user = "<document>\n" + _DOC + "\n</document>\nCriterion: " + _QUESTION
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        if getattr(tokenizer, "chat_template", None):
            rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:  # a base model without a template: a plain-text layout
            rendered = f"{system}\n\n{user}\n\nRating: "
        head, rest = rendered.split(_DOC)
        middle, tail = rest.split(_QUESTION)
        self._head = self._encode(head, special=True)
        self._middle = self._encode(middle, special=True)
        self._suffixes = [self._encode(q, special=False) + self._encode(tail, special=True) for q in questions]
        self.score_ids = score_token_ids(tokenizer)

    def _encode(self, text: str, special: bool) -> list[int]:
        if special:
            return list(self.tokenizer.encode(text, add_special_tokens=False))
        return list(self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])

    def build(self, text: str) -> JudgePrompt:
        doc = self._encode(text, special=False)
        truncated = len(doc) > self.max_doc_tokens
        doc = doc[: self.max_doc_tokens]
        return JudgePrompt(self._head + doc + self._middle, [list(s) for s in self._suffixes], len(doc),
                           truncated)


def expected_score(score_logprobs: Sequence[float | None]) -> float:
    """Expected score under the distribution renormalized over the score tokens present.

    ``score_logprobs[i]`` is the log-probability (or logit: only differences matter) of token ``str(i)``;
    ``None`` marks a token the backend did not return (counted as probability 0). Computed in float64.
    """
    present = [(i, lp) for i, lp in enumerate(score_logprobs) if lp is not None and math.isfinite(lp)]
    if not present:
        raise ValueError("no score token had a finite log-probability")
    top = max(lp for _, lp in present)
    weights = [(i, math.exp(lp - top)) for i, lp in present]
    total = sum(w for _, w in weights)
    return sum(i * w for i, w in weights) / total
