"""Quality-judge throughput on a GPU: judged docs/s for 1,024-token docs on 5 rubric dimensions.

For each Qwen2.5 architecture (0.5B, 1.5B, 7B; random weights cost the same compute as trained ones) it prints:

- ceiling: one forward pass over each document's shared prefix (chat template + 1,024 doc tokens), output head
  on the last position only: the least work any judge must do per document;
- judge/transformers: qurate's ``TransformersJudge`` (one prefill, 5 rubric suffixes on the repeated KV cache);
- judge/vllm: qurate's ``VLLMJudge`` (vLLM in-process, prefix caching; weights ``load_format="dummy"``), if vLLM
  is importable;
- naive: Hugging Face ``generate`` of a JSON answer with all 5 scores (greedy, as many new tokens as the JSON
  takes), the way a judge is often written;

and the ratios judge/ceiling (target >= 0.6) and judge/naive (target >= 10), for the faster judge engine. The
ceiling is measured with plain transformers (the ARCHITECTURE.md anchors are too); on a GPU vLLM can beat it.
Not yet run on a GPU: the numbers in bench/RESULTS.md are CPU smoke runs only.

    python bench/judge_gpu.py                      # GPU: 0.5B, 1.5B, 7B
    python bench/judge_gpu.py --archs 0.5B --docs 128
    python bench/judge_gpu.py --smoke              # CPU, tiny config: exercises every code path in ~1 minute
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "pipelines" / "data" / "sample_corpus.jsonl.gz"
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, tie_word_embeddings=True)
JSON_ANSWER = ('{"educational_value": 3, "knowledge_density": 2, "coherence": 4, "reasoning_depth": 1, '
               '"noise_free": 5}')


def long_texts(tokenizer: Any, n: int, doc_tokens: int) -> list[str]:
    """n real documents from the bundled sample, each at least ``doc_tokens`` tokens (short ones joined)."""
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as handle:
        pool = [json.loads(line)["text"] for line in handle]
    out, i = [], 0
    while len(out) < n:
        text = ""
        while len(tokenizer.encode(text, add_special_tokens=False)) < doc_tokens:
            text += pool[i % len(pool)] + "\n\n"
            i += 1
        out.append(text)
    return out


def _sync(torch: Any, device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(torch: Any, device: str, fn, repeats: int = 1) -> float:
    """Seconds per call of ``fn`` after one warm-up call."""
    fn()
    _sync(torch, device)
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(torch, device)
    return (time.perf_counter() - started) / repeats


def bench_arch(arch: str, overrides: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from qurate.classifiers.judge import TransformersJudge
    from qurate.classifiers.quality_config import QualityConfig, full_rubric
    from qurate.classifiers.random_models import qwen_tokenizer, random_qwen2

    device, dtype = args.device, args.dtype
    tok = qwen_tokenizer()
    model = random_qwen2(overrides, seed=0, dtype=dtype, device=device)
    cfg = QualityConfig(backend="judge", judge={"model": "random", "max_doc_tokens": args.doc_tokens,
                                                "batch_size": args.batch, "dtype": dtype, "device": device},
                        dimensions=full_rubric())  # five rubric suffixes share one prefix
    judge = TransformersJudge(cfg, model=model, tokenizer=tok)
    texts = long_texts(tok, args.docs, args.doc_tokens)
    prompts = [judge.builder.build(t) for t in texts]
    assert all(p.doc_tokens == args.doc_tokens for p in prompts)
    row: dict[str, Any] = {"arch": arch, "docs": len(texts), "doc_tokens": args.doc_tokens,
                           "prefix_tokens": len(prompts[0].prefix),
                           "suffix_tokens": [len(s) for s in prompts[0].suffixes]}

    # Ceiling: one forward pass over the shared prefixes (all the same length here), head on the last token.
    ids = torch.tensor([p.prefix for p in prompts], device=device)

    def ceiling():
        with torch.inference_mode():
            for start in range(0, len(ids), args.batch):
                model(input_ids=ids[start:start + args.batch], logits_to_keep=1)

    row["ceiling_docs_s"] = len(ids) / timed(torch, device, ceiling)
    row["transformers_docs_s"] = len(texts) / timed(torch, device, lambda: judge.score_prompts_batched(prompts))

    # Naive: generate the JSON answer with all five scores (fixed length: random weights never stop early).
    n_new = len(tok.encode(JSON_ANSWER, add_special_tokens=False))
    question = ("Rate the document on educational value, knowledge density, coherence, reasoning depth and "
                "freedom from noise, each 0-5. Answer only with JSON like " + JSON_ANSWER)
    messages = [{"role": "system", "content": cfg.judge.system_prompt},
                {"role": "user", "content": "<document>\n{doc}\n</document>\n" + question}]
    template = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    head, tail = template.split("{doc}")
    gen_prompts = [tok.encode(head, add_special_tokens=False)
                   + tok.encode(t, add_special_tokens=False)[: args.doc_tokens]
                   + tok.encode(tail, add_special_tokens=False) for t in texts]
    naive_docs = gen_prompts[: max(args.batch, len(gen_prompts) // args.naive_fraction)]
    gen_ids = torch.tensor(naive_docs, device=device)

    def naive():
        with torch.inference_mode():
            for start in range(0, len(gen_ids), args.batch):
                chunk = gen_ids[start:start + args.batch]
                model.generate(input_ids=chunk, attention_mask=torch.ones_like(chunk), max_new_tokens=n_new,
                               min_new_tokens=n_new, do_sample=False, pad_token_id=tok.pad_token_id)

    row["naive_new_tokens"] = n_new
    row["naive_docs_s"] = len(naive_docs) / timed(torch, device, naive)
    judge = model = None  # free the GPU memory before vLLM loads its own copy
    if device == "cuda":
        torch.cuda.empty_cache()
    if not args.no_vllm:
        row["vllm_docs_s"] = bench_vllm(overrides, prompts, cfg, tok, args)
    # Ratios of the faster engine; both engines' own ratios go into the JSON rows too.
    row["transformers_vs_ceiling"] = row["transformers_docs_s"] / row["ceiling_docs_s"]
    if row.get("vllm_docs_s"):
        row["vllm_vs_ceiling"] = row["vllm_docs_s"] / row["ceiling_docs_s"]
    best = max(row.get("vllm_docs_s") or 0, row["transformers_docs_s"])
    row["judge_vs_ceiling"] = best / row["ceiling_docs_s"]
    row["judge_vs_naive"] = best / row["naive_docs_s"]
    return row


def bench_vllm(overrides: dict[str, Any], prompts, cfg, tok, args: argparse.Namespace) -> float | None:
    try:
        from vllm import LLM
    except ImportError:
        print("  (vllm not importable: judge/vllm not measured)", file=sys.stderr)
        return None
    from qurate.classifiers.judge import VLLMJudge
    from qurate.classifiers.random_models import QWEN25_COMMON
    from transformers import Qwen2Config

    with tempfile.TemporaryDirectory() as tmp:
        # Config and tokenizer only: load_format="dummy" gives random weights without writing them to disk.
        Qwen2Config(**{**QWEN25_COMMON, **overrides}).save_pretrained(tmp)
        tok.save_pretrained(tmp)
        kwargs: dict[str, Any] = {"enable_prefix_caching": True, "load_format": "dummy", "seed": 0,
                                  "dtype": args.dtype, "max_model_len": 4096}
        if args.device == "cuda":
            kwargs["gpu_memory_utilization"] = 0.85
        else:
            kwargs["enforce_eager"] = True
        llm = LLM(model=tmp, **kwargs)
        judge = VLLMJudge(cfg, llm=llm, tokenizer=tok)
        judge.score_prompts(prompts[: min(8, len(prompts))])  # warm-up (also fills the cache for those docs)
        fresh = prompts  # prefix caching must not carry over between runs: reset it
        llm.reset_prefix_cache()
        started = time.perf_counter()
        judge.score_prompts(fresh)
        seconds = time.perf_counter() - started
        del llm
    return len(fresh) / seconds


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    from qurate.classifiers.random_models import QWEN25_ARCHS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="0.5B,1.5B,7B")
    parser.add_argument("--docs", type=int, default=256)
    parser.add_argument("--doc-tokens", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=16, help="docs per transformers forward / generate call")
    parser.add_argument("--naive-fraction", type=int, default=4, help="naive generate runs on docs/N docs")
    parser.add_argument("--no-vllm", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="tiny config on CPU: exercises the code paths")
    parser.add_argument("--out", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    import torch

    if args.smoke:
        archs = {"tiny": TINY}
        args.docs, args.doc_tokens, args.batch, args.naive_fraction = 8, 96, 4, 1
        args.device, args.dtype = "cpu", "float32"
    else:
        archs = {a: QWEN25_ARCHS[a] for a in args.archs.split(",")}
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
        args.dtype = "bfloat16" if args.device == "cuda" else "float32"
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"quality judge throughput on {device_name}: {args.doc_tokens}-token docs, 5 dimensions, "
          f"{args.dtype}, random weights")
    print(f"{'arch':<6} {'ceiling':>9} {'judge/hf':>9} {'judge/vllm':>10} {'naive':>8} {'judge/ceil':>10} "
          f"{'judge/naive':>11}   (docs/s)")
    rows = []
    for name, overrides in archs.items():
        row = bench_arch(name, overrides, args)
        row["device"] = device_name
        rows.append(row)
        vllm = f"{row['vllm_docs_s']:.1f}" if row.get("vllm_docs_s") else "-"
        print(f"{name:<6} {row['ceiling_docs_s']:>9.1f} {row['transformers_docs_s']:>9.1f} {vllm:>10} "
              f"{row['naive_docs_s']:>8.2f} {row['judge_vs_ceiling']:>10.2f} {row['judge_vs_naive']:>11.1f}",
              flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":  # vLLM spawns processes that re-import this file
    main()
