"""Text generation for ``synth``: the judge's three engines, generating instead of reading one distribution.

- ``TransformersGenerator`` (CPU/GPU): prompts left-padded into one batch, one prefill, then one decode step per
  token for the whole batch against the shared KV cache; each row samples with its own ``torch.Generator``
  seeded from its request, so a sample does not depend on the batch it lands in (up to float rounding of
  batched kernels; the request cache makes re-runs exact).
- ``VLLMGenerator`` (in-process): ``LLM.generate`` with one ``SamplingParams(seed=...)`` per request.
- ``OpenAIGenerator``: an OpenAI-compatible ``/v1/completions`` server, token-id prompts, ``seed`` per request,
  ``concurrency`` requests in flight, transient errors (connection, timeout, HTTP 429/5xx) retried with
  exponential backoff.

The model is loaded as the judge loads it (``classifiers/judge.py``: ``smollm2`` GGUF or any HF directory).
``SynthGenerator`` puts the request cache in front of an engine it loads only on the first cache miss, so a run
whose answers are all cached never loads a model. Heavy imports happen in constructors, never at import.
"""

from __future__ import annotations

import abc
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from qurate.synth.cache import RequestCache, cache_key
from qurate.synth.config import GeneratorConfig
from qurate.synth.tasks import Request, messages
from qurate.verdicts import error_text, run_batch

LOG = logging.getLogger(__name__)
Completion = dict[str, Any]  # {"text", "n_tokens", "finish"}


class PromptTooLong(ValueError):
    """prompt + max_tokens does not fit the model's context."""


class TransientHTTPError(RuntimeError):
    transient = True  # qurate.verdicts.is_transient: worth another try


_MARK = "\x00QURATE_MSG{}\x00"


def encode_chat(tokenizer: Any, msgs: Sequence[dict[str, str]]) -> list[int]:
    """Token ids of a chat with the model's own template, the generation prompt appended.

    The template is rendered around placeholders and the message contents are tokenized with special-token
    parsing off, so a seed page holding ``<|im_start|>`` cannot inject chat turns.
    """
    marked = [{"role": m["role"], "content": _MARK.format(i)} for i, m in enumerate(msgs)]
    if getattr(tokenizer, "chat_template", None):
        rendered = tokenizer.apply_chat_template(marked, tokenize=False, add_generation_prompt=True)
    else:  # a base model without a template: a plain-text layout
        rendered = "\n\n".join(m["content"] for m in marked) + "\n\n"
    ids: list[int] = []
    rest = rendered
    for i, m in enumerate(msgs):
        head, rest = rest.split(_MARK.format(i), 1)
        ids += tokenizer.encode(head, add_special_tokens=False)
        ids += tokenizer(m["content"], add_special_tokens=False, split_special_tokens=True)["input_ids"]
    return ids + tokenizer.encode(rest, add_special_tokens=False)


class Engine(abc.ABC):
    """``generate(requests) -> completions`` (the engine's own batching); raises for the whole batch."""

    name = "base"

    @abc.abstractmethod
    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        """One completion per request, in order."""

    def validate(self, request: Request) -> None:  # noqa: B027 - optional hook; most engines run any request
        """Raises for a request the engine cannot run (checked one by one, so it does not fail its batch)."""


def _eos_ids(tokenizer: Any, model: Any = None) -> set[int]:
    ids: set[int] = set()
    for value in (tokenizer.eos_token_id, getattr(getattr(model, "generation_config", None), "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>") if hasattr(tokenizer, "convert_tokens_to_ids") else None
    if isinstance(im_end, int) and im_end != getattr(tokenizer, "unk_token_id", None):
        ids.add(im_end)
    return ids


class TransformersGenerator(Engine):
    name = "transformers"

    def __init__(self, cfg: GeneratorConfig, model: Any = None, tokenizer: Any = None):
        import torch
        from qurate.classifiers.judge import load_tokenizer, load_transformers_model

        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.torch = torch
        self.cfg = cfg
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(cfg)  # type: ignore[arg-type]
        self.model = (model if model is not None else load_transformers_model(cfg)).eval()  # type: ignore[arg-type]
        self.device = next(self.model.parameters()).device
        self.eos = _eos_ids(self.tokenizer, self.model)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else min(self.eos) if self.eos else 0
        self.max_context = cfg.max_context or getattr(self.model.config, "max_position_embeddings", None)
        # transformers 5 renamed ``past_key_values`` to ``cache`` (the old name warns, then goes away)
        import inspect

        self._cache_kw = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"

    def validate(self, request: Request) -> None:  # noqa: B027 - optional hook; most engines run any request
        self.prompt_ids(request)

    def prompt_ids(self, request: Request) -> list[int]:
        ids = encode_chat(self.tokenizer, messages(request))
        if self.max_context and len(ids) + request["max_tokens"] > self.max_context:
            raise PromptTooLong(f"prompt {len(ids)} + max_tokens {request['max_tokens']} tokens > context "
                                f"{self.max_context}")
        return ids

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        prompts = [self.prompt_ids(r) for r in requests]
        # Similar lengths together (less padding), input order kept in the answer.
        order = sorted(range(len(requests)), key=lambda i: len(prompts[i]))
        out: list[Completion] = [{} for _ in requests]
        step = self.cfg.batch_size
        for start in range(0, len(order), step):
            idx = order[start:start + step]
            for i, completion in zip(idx, self.generate_ids([prompts[i] for i in idx], [requests[i] for i in idx])):
                out[i] = completion
        return out

    def generate_ids(self, prompts: Sequence[list[int]], requests: Sequence[Request]) -> list[Completion]:
        """One padded batch: prefill, then a decode step per token until every row stopped."""
        torch = self.torch
        dev, n = self.device, len(prompts)
        width = max(len(p) for p in prompts)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for b, p in enumerate(prompts):
            ids[b, width - len(p):] = torch.tensor(p)
            mask[b, width - len(p):] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        gens = [torch.Generator(device="cpu").manual_seed(int(r["seed"])) for r in requests]
        limits = [int(r["max_tokens"]) for r in requests]
        produced: list[list[int]] = [[] for _ in range(n)]
        finish = ["length"] * n
        done = [False] * n
        with torch.inference_mode():
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                             logits_to_keep=1)
            cache = getattr(out, self._cache_kw)
            next_pos = positions[:, -1:] + 1
            for _ in range(max(limits)):
                chosen = self._sample(out.logits[:, -1, :].float().cpu(), requests, gens, done)
                for b, token in enumerate(chosen):
                    if done[b]:
                        continue
                    if token in self.eos:
                        done[b], finish[b] = True, "stop"
                        continue
                    produced[b].append(token)
                    if len(produced[b]) >= limits[b]:
                        done[b] = True
                if all(done):
                    break
                step_ids = torch.tensor(chosen, dtype=torch.long, device=dev)[:, None]
                mask = torch.cat([mask, torch.ones((n, 1), dtype=torch.long, device=dev)], dim=1)
                out = self.model(input_ids=step_ids, attention_mask=mask, position_ids=next_pos,
                                 use_cache=True, **{self._cache_kw: cache})
                cache = getattr(out, self._cache_kw)
                next_pos = next_pos + 1
        return [{"text": self.tokenizer.decode(toks, skip_special_tokens=True), "n_tokens": len(toks),
                 "finish": fin} for toks, fin in zip(produced, finish)]

    def _sample(self, logits: Any, requests: Sequence[Request], gens: Sequence[Any], done: Sequence[bool]
                ) -> list[int]:
        """The next token of every row still running (the pad id for the others)."""
        torch = self.torch
        temps = torch.tensor([max(float(r["temperature"]), 1e-6) for r in requests])[:, None]
        greedy = torch.argmax(logits, dim=-1).tolist()
        probs = torch.softmax(logits / temps, dim=-1)
        out = []
        for b, request in enumerate(requests):
            if done[b]:
                out.append(self.pad_id)
            elif float(request["temperature"]) <= 0:
                out.append(int(greedy[b]))
            else:
                out.append(self._nucleus(probs[b], float(request["top_p"]), gens[b]))
        return out

    def _nucleus(self, probs: Any, top_p: float, gen: Any) -> int:
        """A draw from the smallest set of most likely tokens whose mass reaches ``top_p``. The set is found in
        the top k (k doubling until it holds the mass) rather than by sorting the whole vocabulary each step."""
        torch = self.torch
        if top_p >= 1:
            return int(torch.multinomial(probs, 1, generator=gen))
        k = min(256, probs.numel())
        while True:
            values, index = torch.topk(probs, k)
            if k == probs.numel() or float(values.sum()) >= top_p:
                break
            k = min(k * 4, probs.numel())
        keep = (values.cumsum(-1) - values) < top_p  # tokens before which the mass is still short of top_p
        values = values * keep
        return int(index[torch.multinomial(values / values.sum(), 1, generator=gen)])


class VLLMGenerator(Engine):
    """vLLM in-process: every request its own ``SamplingParams`` (seed, temperature, top_p, max_tokens)."""

    name = "vllm"

    def __init__(self, cfg: GeneratorConfig, llm: Any = None, tokenizer: Any = None):
        from qurate.classifiers.judge import load_tokenizer, resolve_model, vllm_engine
        from vllm import SamplingParams

        self.cfg, self.SamplingParams = cfg, SamplingParams
        model_path, _ = resolve_model(cfg)  # type: ignore[arg-type]
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(cfg)  # type: ignore[arg-type]
        self.llm = llm if llm is not None else vllm_engine(cfg, model_path)

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        prompts = [{"prompt_token_ids": encode_chat(self.tokenizer, messages(r))} for r in requests]
        params = [self.SamplingParams(n=1, temperature=float(r["temperature"]), top_p=float(r["top_p"]),
                                      max_tokens=int(r["max_tokens"]), seed=int(r["seed"])) for r in requests]
        outs = self.llm.generate(prompts, params, use_tqdm=False)
        result = []
        for out in outs:
            choice = out.outputs[0]
            result.append({"text": choice.text, "n_tokens": len(choice.token_ids),
                           "finish": "stop" if choice.finish_reason == "stop" else "length"})
        return result


class OpenAIGenerator(Engine):
    """An OpenAI-compatible ``/v1/completions`` server; prompts are token ids built with the chat template."""

    name = "openai"

    def __init__(self, cfg: GeneratorConfig, tokenizer: Any = None, backoff_s: float = 0.5):
        from qurate.classifiers.judge import load_tokenizer

        self.cfg = cfg
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(cfg)  # type: ignore[arg-type]
        self.url = cfg.base_url.rstrip("/") + "/completions"
        self.model_name = cfg.served_model or cfg.model
        self.backoff_s = backoff_s
        self.pool = ThreadPoolExecutor(max_workers=cfg.concurrency)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.cfg.api_key_env, "") if self.cfg.api_key_env else ""  # never from the recipe
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.cfg.timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            detail = err.read()[:300].decode("utf-8", "replace")
            if err.code == 429 or err.code >= 500:
                raise TransientHTTPError(f"HTTP {err.code}: {detail}") from err
            raise RuntimeError(f"HTTP {err.code}: {detail}") from err
        except urllib.error.URLError as err:
            raise ConnectionError(f"{self.url}: {err.reason}") from err

    def complete_one(self, request: Request) -> Completion:
        body = {"model": self.model_name, "prompt": encode_chat(self.tokenizer, messages(request)),
                "max_tokens": int(request["max_tokens"]), "temperature": float(request["temperature"]),
                "top_p": float(request["top_p"]), "seed": int(request["seed"]), "n": 1}
        from qurate.verdicts import is_transient

        for attempt in range(self.cfg.retries + 1):
            try:
                answer = self._post(body)
                break
            except Exception as err:
                if is_transient(err) and attempt < self.cfg.retries:
                    time.sleep(self.backoff_s * 2**attempt)
                    continue
                raise
        choice = answer["choices"][0]
        usage = answer.get("usage") or {}
        text = choice.get("text") or ""
        n_tokens = usage.get("completion_tokens")
        if n_tokens is None:
            n_tokens = len(self.tokenizer.encode(text, add_special_tokens=False))
        return {"text": text, "n_tokens": int(n_tokens),
                "finish": "stop" if choice.get("finish_reason") == "stop" else "length"}

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return list(self.pool.map(self.complete_one, requests))

    def generate_isolated(self, requests: Sequence[Request]) -> list[Completion | BaseException]:
        """Each request on its own (already concurrent): a failed one does not cost the others."""
        def safe(request: Request) -> Completion | BaseException:
            try:
                return self.complete_one(request)
            except Exception as err:
                return err
        return list(self.pool.map(safe, requests))


def make_engine(cfg: GeneratorConfig) -> Engine:
    """The engine for ``cfg.engine`` (loads the model: call in a worker, not on the launcher)."""
    if cfg.engine == "transformers":
        return TransformersGenerator(cfg)
    if cfg.engine == "vllm":
        return VLLMGenerator(cfg)
    return OpenAIGenerator(cfg)


def request_key(cfg: GeneratorConfig, request: Request) -> str:
    """The cache key of a request: generator, dtype, messages, sampling parameters and seed."""
    return cache_key("generate", generator=cfg.label(), dtype=cfg.dtype, messages=messages(request),
                     max_tokens=int(request["max_tokens"]), temperature=float(request["temperature"]),
                     top_p=float(request["top_p"]), seed=int(request["seed"]))


class SynthGenerator:
    """The request cache in front of an engine that is loaded on the first miss.

    ``complete(requests)`` returns, per request, ``{"text", "n_tokens", "finish", "cached"}`` or ``{"error",
    "error_class"}`` for a request the model failed on (after the whole batch failed, requests are retried one
    by one, so one bad prompt is reported alone).
    """

    def __init__(self, cfg: GeneratorConfig, cache_path: str | None, engine: Engine | None = None):
        self.cfg = cfg
        self.cache = RequestCache(cache_path)
        self._engine = engine
        self.model_calls = 0
        self.cache_hits = 0

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.cfg)
        return self._engine

    def complete(self, requests: Sequence[Request]) -> list[dict[str, Any]]:
        keys = [request_key(self.cfg, r) for r in requests]
        out: list[dict[str, Any]] = [{} for _ in requests]
        missing = []
        for i, key in enumerate(keys):
            hit = self.cache.get(key)
            if hit is not None:
                out[i] = {**hit, "cached": True}
                self.cache_hits += 1
            else:
                missing.append(i)
        if not missing:
            return out
        engine = self.engine
        self.model_calls += len(missing)
        results: dict[int, Any] = {}
        for i in missing:
            try:
                engine.validate(requests[i])
            except Exception as err:  # a bad request is reported alone; its batch goes on without it
                results[i] = err
        runnable = [i for i in missing if i not in results]
        todo = [requests[i] for i in runnable]
        if isinstance(engine, OpenAIGenerator):
            answers: list[Any] = engine.generate_isolated(todo)
        else:
            answers = run_batch(engine.generate, lambda r: engine.generate([r])[0], todo) if todo else []
        results.update(zip(runnable, answers))
        for i in missing:
            result = results[i]
            if isinstance(result, BaseException):
                LOG.warning("synth: request %s failed: %s", requests[i].get("id"), result)
                out[i] = {"error": error_text(result), "error_class": type(result).__name__}
                continue
            self.cache.put(keys[i], result)
            out[i] = {**result, "cached": False}
        return out
