"""Reward models, one interface: ``score(candidates) -> list[float]`` for a batch of candidates.

- ``ClassifierRewardModel``: a sequence-classification model with a scalar head (Skywork-Reward,
  Qwen2.5-Math-RM), any Hugging Face directory; it reads the chat (user prompt, assistant completion) with its
  own template and the score is the head's output at the last token.
- ``JudgeRewardModel``: the LLM judge of ``classifiers/judge.py`` (any of its engines) as a generative RM: the
  expected 0-5 rating from the next-token distribution, weighted over its rubric dimensions.
- verifiable math is per prompt (it needs all ``n`` samples): ``qurate.synth.mathcheck``.

``RewardScorer`` runs the configured per-candidate RMs behind the request cache and loads each model on its first
cache miss, so a re-run whose scores are cached loads no model at all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from qurate.classifiers.judge import right_padded
from qurate.synth.cache import RequestCache, cache_key
from qurate.synth.config import ClassifierRM, JudgeRM, SynthConfig
from qurate.verdicts import error_text, run_batch

LOG = logging.getLogger(__name__)
Candidate = dict[str, Any]


class ClassifierRewardModel:
    name = "classifier"

    def __init__(self, cfg: ClassifierRM, model: Any = None, tokenizer: Any = None):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.torch, self.cfg = torch, cfg
        self.tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(cfg.path)
        if model is None:
            device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
            dtype = cfg.dtype if cfg.dtype != "auto" else ("bfloat16" if device == "cuda" else "float32")
            model = AutoModelForSequenceClassification.from_pretrained(cfg.path, dtype=getattr(torch, dtype))
            model = model.to(device)
        self.model = model.eval()
        if getattr(self.model.config, "num_labels", 1) != 1:
            raise ValueError(f"reward model {cfg.path} has {self.model.config.num_labels} labels; a scalar head "
                             "(num_labels=1) is needed")
        self.device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (self.tokenizer.eos_token_id or 0)
        if self.model.config.pad_token_id is None:  # the head reads the last non-pad token
            self.model.config.pad_token_id = self.pad_id

    def encode(self, prompt: str, response: str) -> list[int]:
        """The chat (user prompt, assistant response) as token ids, the prompt cut first to fit ``max_tokens``."""
        limit = self.cfg.max_tokens
        response_ids = self.tokenizer(response, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        room = max(limit // 4, limit - len(response_ids) - 32)
        prompt_ids = self.tokenizer(prompt, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        prompt = self.tokenizer.decode(prompt_ids[:room]) if len(prompt_ids) > room else prompt
        if getattr(self.tokenizer, "chat_template", None):
            ids = self._chat_ids(prompt, response)
        else:
            ids = self.tokenizer(prompt + "\n\n" + response, add_special_tokens=False,
                                 split_special_tokens=True)["input_ids"]
        return ids[:limit]

    def _chat_ids(self, prompt: str, response: str) -> list[int]:
        # The template rendered around placeholders; contents tokenized with special tokens off (no injection).
        marked = [{"role": "user", "content": "\x00P\x00"}, {"role": "assistant", "content": "\x00R\x00"}]
        rendered = self.tokenizer.apply_chat_template(marked, tokenize=False)
        head, rest = rendered.split("\x00P\x00", 1)
        middle, tail = rest.split("\x00R\x00", 1)
        enc = self.tokenizer

        def plain(text: str) -> list[int]:
            return list(enc(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])

        return (enc.encode(head, add_special_tokens=False) + plain(prompt) + enc.encode(middle, add_special_tokens=False)
                + plain(response) + enc.encode(tail, add_special_tokens=False))

    def score_ids(self, batch: Sequence[list[int]]) -> list[float]:
        """Scalar rewards of token-id sequences (right-padded batch; the head reads each row's last token)."""
        torch = self.torch
        ids, mask = right_padded(torch, batch, self.pad_id)
        ids, mask = ids.to(self.device), mask.to(self.device)
        head = getattr(self.model, "score", None)  # decoder RMs (Qwen2, Llama, Mistral, Gemma): a linear head
        with torch.inference_mode():
            if head is None:  # other architectures pool as they were trained to
                return self.model(input_ids=ids, attention_mask=mask).logits.float()[:, 0].cpu().tolist()
            base = getattr(self.model, self.model.base_model_prefix)
            hidden = base(input_ids=ids, attention_mask=mask).last_hidden_state
            # the last real token of each row, found from the mask (a pad id inside the text cannot mislead it)
            rows = hidden[torch.arange(len(batch), device=self.device), mask.sum(-1) - 1]
            return head(rows).float()[:, 0].cpu().tolist()

    def score(self, candidates: Sequence[Candidate]) -> list[float]:
        encoded = [self.encode(c["_prompt"], c["_completion"]) for c in candidates]
        out: list[float] = []
        for start in range(0, len(encoded), self.cfg.batch_size):
            out += self.score_ids(encoded[start:start + self.cfg.batch_size])
        return out


class JudgeRewardModel:
    """The judge's expected rating of the synthetic doc's text, weighted over the RM's dimensions."""

    name = "judge"

    def __init__(self, cfg: JudgeRM, judge: Any = None):
        from qurate.classifiers.quality_config import QualityConfig

        self.quality = QualityConfig(backend="judge", judge=cfg.judge, dimensions=cfg.dimensions)
        if judge is None:
            from qurate.classifiers.judge import make_judge

            judge = make_judge(self.quality)
        self.judge = judge

    def score(self, candidates: Sequence[Candidate]) -> list[float]:
        rows = self.judge.score_texts([c["text"] for c in candidates])
        return [self.quality.aggregate(row) for row in rows]


def rm_key(config: SynthConfig, name: str, candidate: Candidate) -> str:
    if name == "classifier":
        rm = config.rewards.classifier
        assert rm is not None
        return cache_key("rm-classifier", path=rm.path, dtype=rm.dtype, max_tokens=rm.max_tokens,
                         prompt=candidate["_prompt"], response=candidate["_completion"])
    judge = config.rewards.judge
    assert judge is not None
    return cache_key("rm-judge", judge=judge.judge.model_dump(mode="json"),
                     dimensions=[d.model_dump(mode="json") for d in judge.dimensions], text=candidate["text"])


class RewardScorer:
    """The per-candidate RMs of a recipe behind the request cache; models load on their first cache miss.

    ``score(candidates)`` returns per candidate ``{rm name: score}`` or ``{"error": ..., "error_class": ...}``
    when an RM failed on it (a failed batch is retried candidate by candidate).
    """

    def __init__(self, config: SynthConfig, models: dict[str, Any] | None = None):
        self.config = config
        self.names = [n for n in ("classifier", "judge") if getattr(config.rewards, n) is not None]
        self.cache = RequestCache(config.cache_path())
        self._models = dict(models or {})
        self.model_calls = 0
        self.cache_hits = 0

    def model(self, name: str) -> Any:
        if name not in self._models:
            if name == "classifier":
                assert self.config.rewards.classifier is not None
                self._models[name] = ClassifierRewardModel(self.config.rewards.classifier)
            else:
                assert self.config.rewards.judge is not None
                self._models[name] = JudgeRewardModel(self.config.rewards.judge)
        return self._models[name]

    def score(self, candidates: Sequence[Candidate]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{} for _ in candidates]
        for name in self.names:
            keys, missing = [], []
            for i, c in enumerate(candidates):
                if "error" in out[i]:
                    keys.append("")
                    continue
                key = rm_key(self.config, name, c)
                keys.append(key)
                hit = self.cache.get(key)
                if hit is not None:
                    out[i][name] = float(hit)
                    out[i]["_hits"] = out[i].get("_hits", 0) + 1
                    self.cache_hits += 1
                else:
                    missing.append(i)
            if not missing:
                continue
            model = self.model(name)
            self.model_calls += len(missing)
            todo = [candidates[i] for i in missing]
            scores = run_batch(model.score, lambda c, m=model: m.score([c])[0], todo)
            for i, score in zip(missing, scores):
                if isinstance(score, BaseException):
                    LOG.warning("synth: reward model %s failed on %s: %s", name, candidates[i].get("id"), score)
                    out[i] = {"error": f"{name} reward model: {error_text(score)}",
                              "error_class": type(score).__name__}
                    continue
                self.cache.put(keys[i], float(score))
                out[i][name] = float(score)
                out[i]["_calls"] = out[i].get("_calls", 0) + 1
        return out
