"""Cost model: vCPU-hours and dollars per 1T tokens for qurate's CPU stages on Dataflow, next to data-juicer's and
NeMo Curator's published dedup figures converted to the same unit.

    .venv/bin/python -P bench/cost.py [--docs 2481] [--machine n2-standard-8] [--framework-share 0.131]

Measured here, on one core (process pinned to one CPU, one BLAS/OpenMP/torch thread): each stage's own work, i.e.
the function its Beam DoFn calls on a batch (deciders' ``decide_batch``, RunInference models' ``predict`` +
``decide``, dedup's ``sign``, the mixture tokenizer's ``encode_batch``), over the bundled sample corpus (real
multilingual docs), in pipeline order: a stage gets the docs the stages before it kept, as in a run. Dedup keeps
every doc here (its decisions need the global graph), so later stages see a little more than in a run. The domains
classifier runs without the recipe's source rules (the sample's Debian sources would skip the model).

Not measured: Beam itself (coders, shuffles, bundle overhead), reading and writing files, dedup's LSH and
connected-components shuffles, the report. The framework's share of CPU is added as a stated factor: 13.1 % of
CPU was Beam's shuffles and buffers in issue 17's py-spy profile of the in-process default pipeline.

A GCP vCPU is one hyperthread; one core of this box is counted as one vCPU (optimistic if the box's cores are
faster than a Dataflow worker's hyperthreads). Prices are list prices stated below as assumptions, not looked up.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS",
             "TOKENIZERS_PARALLELISM"):
    os.environ.setdefault(_var, "false" if _var == "TOKENIZERS_PARALLELISM" else "1")

import argparse  # noqa: E402
import gzip  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

from qurate.doc import Doc  # noqa: E402
from qurate.pipelines import registry  # noqa: E402
from qurate.pipelines.recipe import SAMPLE_CORPUS, Recipe, load_recipe  # noqa: E402
from qurate.pipelines.records import RecordParser  # noqa: E402
from qurate.spec import StageContext  # noqa: E402
from qurate.verdicts import Keep  # noqa: E402

# ---- assumptions (list prices as recalled, 2024 us-central1; check cloud.google.com/dataflow/pricing) --------
DATAFLOW_VCPU_HOUR = 0.056  # USD, Dataflow batch worker vCPU-hour
DATAFLOW_GB_HOUR = 0.003557  # USD, Dataflow batch worker memory GB-hour
MACHINES = {"n2-standard-8": (8, 32.0), "n2-highmem-4": (4, 32.0), "n2-standard-4": (4, 16.0)}  # vCPU, GB
A3_NODE_HOUR = 88.49  # USD, a3-highgpu-8g (8x H100 80GB, 208 vCPU) on-demand, us-central1, 2024 list price
A3_VCPUS = 208
# Published figures, as quoted in issue 17.
DATA_JUICER = {"bytes": 5e12, "minutes": 168, "cores": 1280}  # MinHash dedup, 5 TB, 1,280 cores
NEMO_CURATOR = {"bytes": 8e12, "hours": 2.05, "gpus": 8}  # fuzzy dedup, 8 TB, one 8xH100 node
TOKENS = 1e12


@dataclass
class Measured:
    stage: str
    docs: int
    bytes_in: int
    seconds: float
    kept: int

    @property
    def bytes_per_s(self) -> float:
        return self.bytes_in / self.seconds


def pin_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        cpu = sorted(os.sched_getaffinity(0))[0]
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity)"


def load_docs(recipe: Recipe, n: int) -> list[Doc]:
    """Docs exactly as the reader makes them (``RecordParser``), first ``n`` lines of the sample."""
    parser = RecordParser(recipe.input)
    docs: list[Doc] = []
    with gzip.open(SAMPLE_CORPUS, "rb") as handle:
        for line, _ in zip(handle, range(n)):
            doc = parser.from_json_line(line.rstrip(b"\n"))
            if isinstance(doc, dict):
                doc.setdefault("source", "sample_corpus")
                docs.append(doc)
    return docs


def utf8_bytes(docs: Sequence[Doc]) -> int:
    return sum(len(d["text"].encode("utf-8")) for d in docs)


def batched(docs: list[Doc], size: int) -> list[list[Doc]]:
    return [docs[i: i + size] for i in range(0, len(docs), size)]


def timed_stage(name: str, docs: list[Doc], run: Callable[[list[Doc]], list[Doc]]) -> tuple[Measured, list[Doc]]:
    copies = [dict(d, meta=dict(d.get("meta") or {})) for d in docs]  # a stage may annotate its input
    start = time.process_time()  # CPU time of this process: the shared box's other jobs do not count
    kept = run(copies)
    seconds = time.process_time() - start
    return Measured(name, len(docs), utf8_bytes(docs), seconds, len(kept)), kept


def decider_runner(name: str, recipe: Recipe, ctx: StageContext, warm: list[Doc]) -> Callable[[list[Doc]], list[Doc]]:
    config = recipe.section(name)
    decider = registry.get(name).decider(config, ctx)
    decider.setup()
    size = getattr(config, "batch_size", 64)

    def run(docs: list[Doc]) -> list[Doc]:
        kept: list[Doc] = []
        for batch in batched(docs, size):
            kept += [v.doc for v in decider.decide_batch(batch) if isinstance(v, Keep)]
        return kept
    decider.decide_batch(warm)  # warm-up: lazy tables, first-call caches
    return run


def model_runner(model: Any, warm: list[Doc]) -> Callable[[list[Doc]], list[Doc]]:
    loaded = model.load()
    size = max(1, int(model.batch_size))

    def run(docs: list[Doc]) -> list[Doc]:
        kept: list[Doc] = []
        for batch in batched(docs, size):
            for doc, prediction in zip(batch, model.predict(loaded, batch)):
                verdict = model.decide(doc, prediction)
                if isinstance(verdict, Keep):
                    kept.append(verdict.doc)
        return kept
    model.predict(loaded, warm)  # warm-up: the model's first call (lazy load, allocations)
    return run


def sign_runner(recipe: Recipe, warm: list[Doc]) -> Callable[[list[Doc]], list[Doc]]:
    from qurate.dedup.signatures import Signer
    from qurate.dedup.stage import sign, sign_params

    config = recipe.section("dedup")
    signer = Signer(config.num_perm, config.minhash_seed, config.shingle_spec())
    params = sign_params(config)  # once per run, as the DoFn does

    def run(docs: list[Doc]) -> list[Doc]:
        for batch in batched(docs, 128):
            sign(batch, signer, params)
        return docs
    sign(warm, signer, params)
    return run


def tokenize_runner(recipe: Recipe) -> tuple[Callable[[list[Doc]], list[Doc]], Any]:
    from qurate.tokenizer import load_tokenizer

    tok = load_tokenizer(recipe.tokenizer.name)

    def run(docs: list[Doc]) -> list[Doc]:
        for batch in batched(docs, recipe.tokenizer.batch_size):
            tok.encode_batch([d["text"] for d in batch])
        return docs
    return run, tok


def measure(recipe: Recipe, docs: list[Doc]) -> tuple[list[Measured], int]:
    """Per-stage CPU time in pipeline order; returns the measurements and the sample's Qwen2.5 token count."""
    from qurate.classifiers.domains import DomainsBatchModel

    ctx = StageContext(seed=recipe.seed, report_examples=recipe.output.report_examples,
                       tokenizer=recipe.tokenizer.name, append_eos=recipe.tokenizer.append_eos)
    tokenize, tok = tokenize_runner(recipe)
    tokens = sum(len(ids) for ids in tok.encode_batch([d["text"] for d in docs]))
    quality = registry.get("quality").model(recipe.section("quality"), ctx)
    # No source rules: the sample's Debian sources are labelled by rules and skip the model, a web crawl is not.
    domains = recipe.section("domains").model_copy(update={"source_rules": []})
    steps: list[tuple[str, Callable[[list[Doc]], Callable[[list[Doc]], list[Doc]]]]] = [
        ("langid", lambda warm: decider_runner("langid", recipe, ctx, warm)),
        ("heuristics", lambda warm: decider_runner("heuristics", recipe, ctx, warm)),
        ("dedup: MinHash signing", lambda warm: sign_runner(recipe, warm)),
        ("quality classifier", lambda warm: model_runner(quality, warm)),
        ("domains classifier", lambda warm: model_runner(DomainsBatchModel(domains, recipe.seed), warm)),
        ("domains: token count", lambda warm: tokenize),
        ("decontam", lambda warm: decider_runner("decontam", recipe, ctx, warm)),
        ("tokenization (mixture)", lambda warm: tokenize),
    ]
    out: list[Measured] = []
    current = docs
    for name, make in steps:
        # model loading, index building and a warm-up batch happen here, outside the timed part
        run = make([dict(d, meta=dict(d.get("meta") or {})) for d in current[:8]])
        measured, current = timed_stage(name, current, run)
        out.append(measured)
        print(f"  {name:28s} {measured.docs:6,d} docs  {measured.bytes_in / 1e6:7.2f} MB  "
              f"{measured.seconds:7.2f} s CPU  {measured.bytes_per_s / 1e6:7.3f} MB/s/core  kept {measured.kept:,}",
              flush=True)
    return out, tokens


def vcpu_price(machine: str) -> float:
    vcpus, gb = MACHINES[machine]
    return DATAFLOW_VCPU_HOUR + DATAFLOW_GB_HOUR * gb / vcpus


def report(rows: list[Measured], raw_bytes: int, tokens: int, machine: str, framework: float) -> None:
    tpb = tokens / raw_bytes
    raw_per_t = TOKENS / tpb  # raw input bytes holding 1T tokens
    price = vcpu_price(machine)
    vcpus, gb = MACHINES[machine]
    print(f"\ntokens per UTF-8 byte (Qwen2.5 on this sample): {tpb:.4f}; 1T tokens = {raw_per_t / 1e12:.2f} TB of "
          f"raw text")
    print(f"Dataflow {machine} ({vcpus} vCPU, {gb:g} GB): ${DATAFLOW_VCPU_HOUR}/vCPU-h + ${DATAFLOW_GB_HOUR}/GB-h "
          f"= ${price:.4f} per vCPU-hour (assumed list prices, us-central1, 2024)")
    print("\nper 1T tokens of raw input; 'share' = part of the raw bytes that reaches the stage (sample funnel)")
    print(f"{'stage':28s} {'MB/s/core':>10s} {'docs/s':>7s} {'share':>6s} {'vCPU-h':>10s} {'USD':>9s} "
          f"{'vCPU-h if share 1':>17s}")
    total = bound = 0.0
    for m in rows:
        share = m.bytes_in / raw_bytes
        hours = raw_per_t * share / m.bytes_per_s / 3600
        total += hours
        bound += raw_per_t / m.bytes_per_s / 3600
        print(f"{m.stage:28s} {m.bytes_per_s / 1e6:10.3f} {m.docs / m.seconds:7,.0f} {share:6.2f} {hours:10,.0f} "
              f"{hours * price:9,.0f} {raw_per_t / m.bytes_per_s / 3600:17,.0f}")
    with_beam = total / (1 - framework)
    print(f"{'CPU stages, own work':28s} {'':10s} {'':7s} {'':6s} {total:10,.0f} {total * price:9,.0f} "
          f"{bound:17,.0f}")
    print(f"{f'+ Beam share {framework:.1%}':28s} {'':10s} {'':7s} {'':6s} {with_beam:10,.0f} "
          f"{with_beam * price:9,.0f} {bound / (1 - framework):17,.0f}")
    kept_share = rows[-1].bytes_in / raw_bytes
    print(f"per 1T tokens of output (the mixture keeps {kept_share:.1%} of the raw bytes here): "
          f"{with_beam / kept_share:,.0f} vCPU-h, ${with_beam / kept_share * price:,.0f}")

    sign = next(m for m in rows if m.stage.startswith("dedup"))
    q_sign = raw_per_t / sign.bytes_per_s / 3600  # all of the raw input, as the peers' figures
    dj = DATA_JUICER["cores"] * DATA_JUICER["minutes"] / 60 * raw_per_t / DATA_JUICER["bytes"]
    nemo_node = NEMO_CURATOR["hours"] * raw_per_t / NEMO_CURATOR["bytes"]
    print("\nMinHash dedup of 1T tokens of raw input, all of it deduplicated (peers' bytes converted with the "
          "tokens/byte above):")
    print(f"{'system':58s} {'vCPU-h':>10s} {'GPU-h':>7s} {'USD':>9s}")
    print(f"{'qurate, MinHash signing only (measured, 1 core)':58s} {q_sign:10,.0f} {'':>7s} {q_sign * price:9,.0f}")
    print(f"{'data-juicer MinHash dedup: 5 TB, 168 min, 1,280 cores':58s} {dj:10,.0f} {'':>7s} {dj * price:9,.0f}")
    print(f"{'NeMo Curator fuzzy dedup: 8 TB, 2.05 h, 1 node 8xH100':58s} {nemo_node * A3_VCPUS:10,.0f} "
          f"{nemo_node * NEMO_CURATOR['gpus']:7,.1f} {nemo_node * A3_NODE_HOUR:9,.0f}")
    print(f"  data-juicer: its cores counted as Dataflow vCPUs at ${price:.4f}; NeMo Curator: node-hours at "
          f"${A3_NODE_HOUR}/h (a3-highgpu-8g, assumed), vCPU-h = the node's {A3_VCPUS} vCPUs x hours. Peers' figures "
          f"cover the whole dedup (shingling, LSH, grouping); qurate's row is signing only.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=2481, help="first N docs of the bundled sample (2,481 in all)")
    parser.add_argument("--machine", choices=sorted(MACHINES), default="n2-standard-8")
    parser.add_argument("--framework-share", type=float, default=0.131,
                        help="share of CPU spent in Beam (issue 17's profile: 13.1%% shuffles and buffers)")
    args = parser.parse_args(argv)
    pinned = pin_one_core()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    recipe = load_recipe(None, {})
    docs = load_docs(recipe, args.docs)
    raw = utf8_bytes(docs)
    print(f"input: {SAMPLE_CORPUS.name}, {len(docs):,} docs, {raw / 1e6:.2f} MB UTF-8; default recipe; "
          f"{platform.machine()}, Python {platform.python_version()}, {pinned}; CPU time per stage (process_time)")
    rows, tokens = measure(recipe, docs)
    report(rows, raw, tokens, args.machine, args.framework_share)
    return 0


if __name__ == "__main__":
    sys.exit(main())
