"""The ``synth`` stage's wiring: seeds -> requests -> RunInference(generator) -> candidates -> RunInference(RMs)
-> per-prompt keep rule -> exact dedup across prompts -> synthetic docs joined to the stream.

    docs ──────────────────────────────────────────────────────────────────────────────────────▶ kept (as is)
      └─Eligible(task)─┐  seed files ─┐
                       ├─ MaxSeeds (Top.Smallest by keyed hash) ─ Requests (n per seed, own seeds)
                       │     ─ RunInference(GeneratorHandler: request cache + engine) ─▶ failed ─▶ dead letter
                       │     ─ Candidate ─ RunInference(RewardHandler: classifier / judge RMs, cached) ─▶ dead letter
                       │     ─ [CombinePerKey(task, rm): length-fit sums] ─ side input
                       │     ─ GroupByKey(task, seed id) ─ DecidePrompt (math vote, debias, dedup, keep rule)
                       │     ─ GroupByKey(exact hash) ─ PickExact ─▶ kept synthetic docs / rejected/synth
Every request ends as one candidate (kept or rejected) or one dead-letter entry, and counts as one added doc.
Models load once per worker (RunInference's shared handle), lazily on the first cache miss.
"""

from __future__ import annotations

import json
from typing import Any

import apache_beam as beam
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference
from qurate.dedup.exact import exact_hash
from qurate.doc import dead_letter, doc_dead_letter, rejected
from qurate.pipelines.decide import DEAD_LETTER, KEPT, REJECTED, STATS, _split_examples
from qurate.spec import StageContext
from qurate.synth.config import SynthConfig, TaskConfig
from qurate.synth.generate import SynthGenerator
from qurate.synth.keep import (
    add_sums,
    candidate,
    decide_prompt,
    finalize,
    fit_from_sums,
    length_sums,
    length_x,
    pick_exact,
)
from qurate.synth.report import generation_stats, prompt_stats, rm_stats, verdict_stats
from qurate.synth.rewards import RewardScorer
from qurate.synth.tasks import eligible, requests_for, seed_file_doc, seed_rank
from qurate.verdicts import error_text

STAGE = "synth"
PASS = "pass"


class GeneratorHandler(ModelHandler):
    """RunInference handler: requests in, ``PredictionResult(request, answer | {"error": ...})`` out."""

    def __init__(self, config: SynthConfig):
        super().__init__()
        self._config = config

    def load_model(self) -> SynthGenerator:
        return SynthGenerator(self._config.generator, self._config.cache_path())

    def run_inference(self, batch, model: SynthGenerator, inference_args=None):
        requests = list(batch)
        return [PredictionResult(r, out) for r, out in zip(requests, model.complete(requests))]

    def batch_elements_kwargs(self) -> dict[str, Any]:
        # A fixed batch size (Beam's default starts at 1 and grows): the engine's batching is the point.
        size = self._config.generator.batch_size * (4 if self._config.generator.engine != "transformers" else 1)
        return {"min_batch_size": size, "max_batch_size": size}

    def share_model_across_processes(self) -> bool:
        return False

    def get_metrics_namespace(self) -> str:
        return "qurate_synth_generator"


class RewardHandler(ModelHandler):
    """RunInference handler: candidates in, ``PredictionResult(candidate, {rm: score} | {"error": ...})`` out."""

    def __init__(self, config: SynthConfig):
        super().__init__()
        self._config = config

    def load_model(self) -> RewardScorer:
        return RewardScorer(self._config)

    def run_inference(self, batch, model: RewardScorer, inference_args=None):
        cands = list(batch)
        return [PredictionResult(c, out) for c, out in zip(cands, model.score(cands))]

    def batch_elements_kwargs(self) -> dict[str, Any]:
        size = self._config.reward_batch_size
        return {"min_batch_size": size, "max_batch_size": size}

    def share_model_across_processes(self) -> bool:
        return False

    def get_metrics_namespace(self) -> str:
        return "qurate_synth_rewards"


def _stats(pairs):
    for key, value in pairs.items():
        yield beam.pvalue.TaggedOutput(STATS, (key, value))


class _SplitGenerated(beam.DoFn):
    def __init__(self, config: SynthConfig, seed: int):
        self._config, self._seed = config, seed

    def process(self, result):
        request, out = result.example, result.inference
        yield from _stats(generation_stats(request["task"], out, int(out.get("n_tokens") or 0)))
        if "error" in out:
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter(
                STAGE, out["error"], doc_id=request["id"], raw=request, source=f"synthetic/{request['task']}",
                error_class=out.get("error_class")))
            return
        yield candidate(self._config, request, out, self._seed)


def _failed_requests(item):
    batch, err = item
    for request in batch:
        yield from _stats(generation_stats(request["task"], {"error": "batch"}, 0))
        yield dead_letter(STAGE, error_text(err), doc_id=request["id"], raw=request,
                          source=f"synthetic/{request['task']}", error_class=type(err).__name__)


class _SplitScored(beam.DoFn):
    def process(self, result):
        cand, scored = result.example, result.inference
        yield from _stats(rm_stats(cand["synthetic"]["task"], scored))
        if "error" in scored:
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, doc_dead_letter(STAGE, scored["error"], finalize(cand),
                                                                        scored.get("error_class")))
            return
        cand = {**cand, "synthetic": {**cand["synthetic"],
                                      "rewards": {k: v for k, v in scored.items() if not k.startswith("_")}}}
        yield cand


def _failed_candidates(item):
    batch, err = item
    for cand in batch:
        yield from _stats(rm_stats(cand["synthetic"]["task"], {"error": "batch"}))
        yield beam.pvalue.TaggedOutput(DEAD_LETTER, doc_dead_letter(STAGE, error_text(err), finalize(cand),
                                                                    type(err).__name__))


def _length_points(config: SynthConfig):
    def points(cand):
        rewards = cand["synthetic"]["rewards"]
        for rm in config.rewards.length_debias:
            if rm in rewards:
                yield (cand["synthetic"]["task"], rm), length_sums(length_x(cand), rewards[rm])
    return points


class _DecidePrompt(beam.DoFn):
    """One prompt's candidates -> passing ones (main) and rejected ones with their reason."""

    def __init__(self, config: SynthConfig):
        self._config = config

    def process(self, item, fits):
        (task, _seed_id), cands = item
        cands = sorted(cands, key=lambda c: c["id"])  # arrival order must not matter
        yield from _stats(prompt_stats(task))
        for cand, reason in decide_prompt(self._config, cands, dict(fits)):
            if reason is None:
                yield cand
                continue
            yield from _stats(verdict_stats(cand, reason, cand["_rank"]))
            yield beam.pvalue.TaggedOutput(REJECTED, rejected(finalize(cand), STAGE, reason))


class _PickExact(beam.DoFn):
    def process(self, item):
        _, cands = item
        for cand, reason in pick_exact(list(cands)):
            yield from _stats(verdict_stats(cand, reason, cand["_rank"]))
            if reason is None:
                yield finalize(cand)
            else:
                yield beam.pvalue.TaggedOutput(REJECTED, rejected(finalize(cand), STAGE, reason))


def _seed_file_records(path: str):
    def parse(item):
        filename, line = item
        try:
            record = json.loads(line)
            doc = seed_file_doc(record, 0, filename)
            if record.get("id") is None:  # content-addressed: the same record gets the same id on every runner
                from qurate.hashing import stable_hash

                doc["id"] = f"{filename.rsplit('/', 1)[-1]}:{stable_hash(doc['text']):016x}"
            yield doc
        except Exception as err:  # a bad seed record must not stop the run
            yield beam.pvalue.TaggedOutput(STATS, (("added",), {"docs": 1}))
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter(STAGE, error_text(err), file=filename,
                                                                    raw=line, source="seed_file"))
    return parse


class Seeds(beam.PTransform):
    """The seed docs of one task: eligible stream docs and seed-file records, capped at ``max_seeds``."""

    def __init__(self, task: TaskConfig, seed: int):
        super().__init__()
        self.task, self.seed = task, seed

    def expand(self, docs):
        task, seed = self.task, self.seed
        parts, dead, stats = [], [], []
        if task.from_stream:
            parts.append(docs | "Eligible" >> beam.Filter(lambda d, t=task, s=seed: eligible(t, d, s)))
        for k, path in enumerate(task.seed_files):
            read = (docs.pipeline
                    | f"ReadSeeds{k}" >> beam.io.ReadFromTextWithFilename(path)
                    | f"ParseSeeds{k}" >> beam.FlatMap(_seed_file_records(path)).with_outputs(
                        DEAD_LETTER, STATS, main="docs"))
            parts.append(read["docs"] | f"SeedFileEligible{k}" >> beam.Filter(
                lambda d, t=task: len(d.get("text") or "") >= t.min_chars))
            dead.append(read[DEAD_LETTER])
            stats.append(read[STATS])
        seeds = parts | "AllSeeds" >> beam.Flatten() if len(parts) > 1 else parts[0]
        if task.max_seeds is not None:
            seeds = (seeds
                     | "MaxSeeds" >> beam.combiners.Top.Smallest(
                         task.max_seeds, key=lambda d, t=task, s=seed: (seed_rank(t, d["id"], s), d["id"]))
                     | "Unlist" >> beam.FlatMap(lambda docs_: docs_))
        return {"seeds": seeds, DEAD_LETTER: dead, STATS: stats}


class Synth(beam.PTransform):
    def __init__(self, config: SynthConfig, ctx: StageContext):
        super().__init__(label=STAGE)
        self.config, self.ctx = config, ctx

    def expand(self, docs):
        config, seed = self.config, self.ctx.seed
        requests, dead, stats = [], [], []
        for task in config.tasks:
            found = docs | f"Seeds[{task.name}]" >> Seeds(task, seed)
            dead += found[DEAD_LETTER]
            stats += found[STATS]
            requests.append(found["seeds"] | f"Requests[{task.name}]" >> beam.FlatMap(
                lambda d, t=task: requests_for(t, d, seed)))
        requests = requests | "AllRequests" >> beam.Flatten()
        generated, gen_failures = (requests
                                   | "Generate" >> RunInference(GeneratorHandler(config)).with_exception_handling())
        split = generated | "Candidates" >> beam.ParDo(_SplitGenerated(config, seed)).with_outputs(
            DEAD_LETTER, STATS, main="cands")
        failed = gen_failures.failed_inferences | "FailedRequests" >> beam.FlatMap(_failed_requests).with_outputs(
            STATS, main="dead")
        dead += [split[DEAD_LETTER], failed["dead"]]
        stats += [split[STATS], failed[STATS]]
        cands = split["cands"]
        if any(getattr(config.rewards, n) is not None for n in ("classifier", "judge")):
            scored, rm_failures = cands | "Reward" >> RunInference(RewardHandler(config)).with_exception_handling()
            rsplit = scored | "Scored" >> beam.ParDo(_SplitScored()).with_outputs(DEAD_LETTER, STATS, main="cands")
            rfailed = rm_failures.failed_inferences | "FailedScoring" >> beam.FlatMap(
                _failed_candidates).with_outputs(DEAD_LETTER, STATS)
            dead += [rsplit[DEAD_LETTER], rfailed[DEAD_LETTER]]
            stats += [rsplit[STATS], rfailed[STATS]]
            cands = rsplit["cands"]
        if config.rewards.length_debias:
            fits = (cands
                    | "LengthPoints" >> beam.FlatMap(_length_points(config))
                    | "LengthSums" >> beam.CombinePerKey(add_sums)
                    | "LengthFit" >> beam.MapTuple(lambda key, sums: (key, fit_from_sums(sums))))
        else:
            fits = docs.pipeline | "NoLengthFit" >> beam.Create([])
        decided = (cands
                   | "ByPrompt" >> beam.Map(lambda c: ((c["synthetic"]["task"], c["synthetic"]["seed_id"]), c))
                   | "GroupPrompt" >> beam.GroupByKey()
                   | "Decide" >> beam.ParDo(_DecidePrompt(config), fits=beam.pvalue.AsList(fits)).with_outputs(
                       REJECTED, STATS, main=PASS))
        final = (decided[PASS]
                 | "ByText" >> beam.Map(lambda c: (exact_hash(c["text"], "whitespace"), c))
                 | "GroupText" >> beam.GroupByKey()
                 | "PickExact" >> beam.ParDo(_PickExact()).with_outputs(REJECTED, STATS, main=KEPT))
        stats += [decided[STATS], final[STATS]]
        kept = (docs, final[KEPT]) | "Joined" >> beam.Flatten()
        rejected_ = (decided[REJECTED], final[REJECTED]) | "AllRejected" >> beam.Flatten()
        dead_ = dead | "AllDead" >> beam.Flatten()
        all_stats = stats | "AllStatsRaw" >> beam.Flatten()
        return {KEPT: kept, REJECTED: rejected_, DEAD_LETTER: dead_,
                STATS: _split_examples(all_stats, "Synth", self.ctx.report_examples)}


def build(config: SynthConfig, ctx: StageContext) -> beam.PTransform:
    return Synth(config, ctx)
