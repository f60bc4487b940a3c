"""Wires a recipe into a Beam pipeline, runs it, and checks that every record is accounted for.

    read ─▶ stage 1 ─▶ stage 2 ─▶ ... ─▶ mixture (tokens) + docs
             │rejected   │rejected
             ▼           ▼
          OUT/rejected/<stage>/        dead-letter entries from every step ─▶ OUT/dead_letter/
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from qurate.hashing import stable_hash
from qurate.pipelines import registry
from qurate.pipelines.decide import DEAD_LETTER, KEPT, REJECTED, STATS, PickExamples, build_stage
from qurate.pipelines.input_files import match_input_files
from qurate.pipelines.read import ReadDocs
from qurate.pipelines.recipe import Recipe, RecipeError
from qurate.pipelines.runners import make_pipeline, pipeline_options
from qurate.pipelines.sinks import WriteDeadLetter, WriteDocs, WriteMixture, WriteRejected, rejection_stats
from qurate.pipelines.stats import WriteStats, flatten_docs, flatten_stats
from qurate.spec import StageContext, StageSpec

LOG = logging.getLogger(__name__)
OUTPUT_DIRS = ("mixture", "docs", "rejected", "dead_letter", "_stats")
OUTPUT_FILES = ("manifest.json", "report.json", "report.html")  # removed first: a failed run leaves none
EXAMPLE_CHARS = 400


@dataclass
class RunPlan:
    recipe: Recipe
    out_dir: str
    files: list[str]
    specs: list[StageSpec] = field(default_factory=list)

    @property
    def stage_names(self) -> list[str]:
        return [spec.name for spec in self.specs]

    @property
    def context(self) -> StageContext:
        return stage_context(self.recipe)


def stage_context(recipe: Recipe) -> StageContext:
    return StageContext(seed=recipe.seed, report_examples=recipe.output.report_examples,
                        tokenizer=recipe.tokenizer.name, append_eos=recipe.tokenizer.append_eos)


def plan_run(recipe: Recipe, out_dir: str | None = None, stage_names: list[str] | None = None) -> RunPlan:
    """Everything that can fail before Beam starts: files to read, the stage list, each stage's own checks."""
    try:
        specs = registry.resolve(stage_names if stage_names is not None else recipe.stages)
    except registry.StageError as err:
        raise RecipeError(str(err)) from None
    files = match_input_files(recipe.input.paths)
    plan = RunPlan(recipe, out_dir or recipe.output.dir, files, specs)
    ctx = plan.context
    for spec in specs:
        if spec.check is not None:
            try:
                spec.check(recipe.section(spec.name), ctx)
            except ValueError as err:  # the check names the recipe key
                raise RecipeError(str(err).splitlines()[0]) from None
    from qurate.tokenizer import load_tokenizer

    try:  # the writer needs it at the very end: a bad path must fail here, not after the whole run
        load_tokenizer(recipe.tokenizer.name)
    except (ValueError, OSError) as err:
        raise RecipeError(f"bad value for 'tokenizer.name': {str(err).splitlines()[0]}") from None
    return plan


class CountKept(beam.DoFn):
    """The docs a stage kept, and their characters, as one ``("funnel", stage, "kept")`` stats pair per bundle;
    the ``qurate.kept`` counter feeds the CLI's live progress."""

    def __init__(self, stage: str):
        self._stage = stage

    def setup(self) -> None:
        self._counter = beam.metrics.Metrics.counter("qurate.kept", self._stage)

    def start_bundle(self) -> None:
        self._docs = self._chars = 0

    def process(self, doc):
        self._docs += 1
        self._chars += len(doc["text"])

    def finish_bundle(self):
        from qurate.pipelines.batching import in_global_window

        if self._docs:
            self._counter.inc(self._docs)
            yield in_global_window((("funnel", self._stage, "kept"), {"docs": self._docs, "chars": self._chars}))
        self._docs = self._chars = 0


def count_kept(stage: str) -> beam.ParDo:
    return beam.ParDo(CountKept(stage))


def prefixed_stats(stage: str):
    def prefix(kv):
        key, value = kv
        return ("stage", stage, *key), value
    return prefix


def _example(seed: int, chars: int):
    """A rejected doc as a report example candidate, grouped by (stage, rule), ranked by its keyed hash."""
    def example(doc):
        stage, rule = doc["stage"], doc["reason"].split(":", 1)[0].strip()[:120]
        text = doc.get("text") or ""
        snippet = text[:chars] + ("…" if len(text) > chars else "")
        fields = (stage, rule, str(doc["id"]), doc["reason"], snippet)
        return f"{stage}: {rule}", (stable_hash(doc["id"], seed), fields)
    return example


def add_stage(docs, spec: StageSpec, plan: RunPlan, rejected: list, dead: list, stats: list,
              transform: beam.PTransform | None = None):
    """Applies one stage to ``docs`` (its own transform, or ``transform`` standing for it); appends its rejected,
    dead-letter and stats outputs; returns its kept."""
    name = spec.name
    result = docs | name >> (transform or stage_transform(spec, plan))
    docs = result[KEPT]
    if REJECTED in result:
        rejected.append(result[REJECTED])
    if DEAD_LETTER in result:
        dead.append(result[DEAD_LETTER])
    if STATS in result:
        stats.append(result[STATS] | f"{name}/PrefixStats" >> beam.Map(prefixed_stats(name)))
    stats.append(docs | f"{name}/CountKept" >> count_kept(name))
    return docs


def stage_transform(spec: StageSpec, plan: RunPlan) -> beam.PTransform:
    return build_stage(spec, plan.recipe.section(spec.name), plan.context)


def add_sinks(pipeline: beam.Pipeline, plan: RunPlan, docs, rejected: list, dead: list, stats: list) -> None:
    """Every output of the run from the last stage's kept docs and all stages' rejected, dead-letter and stats."""
    recipe, out = plan.recipe, plan.out_dir
    stats = list(stats)
    stats.append(docs | "write/Mixture" >> WriteMixture(out, recipe.output, recipe.tokenizer))
    if recipe.output.write_docs:
        stats.append(docs | "write/Docs" >> WriteDocs(out, recipe.output.shard_chars))
    all_rejected = flatten_docs(rejected, "write/AllRejected", pipeline)
    stats.append(all_rejected | "write/Rejected" >> WriteRejected(out, recipe.output, recipe.tokenizer))
    stats.append(all_rejected | "write/RejectionStats" >> beam.FlatMap(rejection_stats))
    stats.append(flatten_docs(dead, "write/AllDeadLetter", pipeline)
                 | "write/DeadLetter" >> WriteDeadLetter(out, recipe.output.shard_chars))
    if recipe.output.report_examples:
        stats.append(
            all_rejected
            | "write/Example" >> beam.Map(_example(recipe.seed, EXAMPLE_CHARS))
            | "write/PickExamples" >> PickExamples(recipe.output.report_examples)
        )
    _ = flatten_stats(stats, "write/AllStats") | "write/Stats" >> WriteStats(out)


def build_pipeline(pipeline: beam.Pipeline, plan: RunPlan) -> None:
    """Adds the whole run to ``pipeline``: read, the stages in order, and every sink (one Beam job)."""
    read = pipeline | "read" >> ReadDocs(plan.recipe.input, plan.files)
    docs = read[KEPT]
    rejected: list = []
    dead, stats = [read[DEAD_LETTER]], [read[STATS]]
    stats.append(docs | "read/CountKept" >> count_kept("read"))
    for spec in plan.specs:
        docs = add_stage(docs, spec, plan, rejected, dead, stats)
    add_sinks(pipeline, plan, docs, rejected, dead, stats)


LOCAL_RUNNERS = frozenset({"DirectRunner", "FnApiRunner", "PrismRunner", "InteractiveRunner", "BundleBasedDirectRunner",
                           "SwitchingDirectRunner"})


AUTO_MIN_INPUT_BYTES = 64 << 20  # below this, job start-ups cost more than a restart would save


def checkpoints_on(plan: RunPlan, options, resume: bool = False) -> bool:
    """Whether the run is a chain of checkpointed segments (``output.checkpoints``): on; off; auto: on for a local
    runner reading at least ``AUTO_MIN_INPUT_BYTES``, or for ``--resume``. A run without stages has none."""
    from qurate.pipelines.runners import runner_name

    setting = plan.recipe.output.checkpoints
    if not plan.specs or setting == "off":
        return False
    if setting == "on" or resume:
        return True
    if runner_name(options).rsplit(".", 1)[-1] not in LOCAL_RUNNERS:
        return False
    sizes = FileSystems.match(plan.files) if plan.files else []
    return sum(m.size_in_bytes for found in sizes for m in found.metadata_list) >= AUTO_MIN_INPUT_BYTES


# ---- the output folder: qurate deletes only what it wrote ----------------------------------------------------
MARKER = ".qurate"  # written first into every output folder: "this folder is qurate's"
STAGES_DIR = "_stages"  # stage checkpoints (pipelines/checkpoints.py)
OWNED = (*OUTPUT_FILES, *OUTPUT_DIRS, "megatron", "packed", STAGES_DIR)  # what a rerun may remove, nothing else


class OutputDirError(ValueError):
    """An output folder qurate will not write into; the CLI prints it and exits 2."""


def _output_state(out_dir: str) -> str:
    """``new`` (absent or empty), ``owned`` (holds qurate's marker) or ``foreign`` (anything else)."""
    if FileSystems.exists(FileSystems.join(out_dir, MARKER)):
        return "owned"
    if "://" not in out_dir:  # local: hidden files count too
        if not os.path.exists(out_dir):
            return "new"
        if not os.path.isdir(out_dir):
            return "foreign"
        return "foreign" if os.listdir(out_dir) else "new"
    found = FileSystems.match([FileSystems.join(out_dir, "**")], limits=[1])[0].metadata_list
    return "foreign" if found else "new"


def check_output_owner(out_dir: str, overwrite: bool = False) -> None:
    """Start-up check, before Beam starts: ``out_dir`` is new or empty, or (with ``overwrite``) an earlier
    qurate run's. A folder qurate did not write is never used, so no user file can be deleted."""
    state = _output_state(out_dir)
    if state == "foreign":
        raise OutputDirError(f"output folder {out_dir} is not empty and was not written by qurate (it has no "
                             f"{MARKER} marker); choose a new or empty folder (qurate never deletes what it did "
                             f"not write)")
    if state == "owned" and not overwrite:
        raise OutputDirError(f"output folder {out_dir} holds an earlier qurate run; pass --overwrite to replace "
                             f"it (only qurate's own outputs there are removed) or choose another folder")


def clear_outputs(out_dir: str, keep_stages: bool = False) -> None:
    """Makes ``out_dir`` this run's: a new folder gets the marker; in an earlier run's folder (marker present)
    only qurate's own outputs are removed, so no stale shard survives; any other folder is refused
    (``OutputDirError``). ``keep_stages`` (``--resume``) keeps the stage checkpoints in ``OUT/_stages``."""
    state = _output_state(out_dir)
    if state == "foreign":
        check_output_owner(out_dir)  # raises, naming the folder
    if state == "owned":
        for name in OWNED:
            if keep_stages and name == STAGES_DIR:
                continue
            path = FileSystems.join(out_dir, name)
            if FileSystems.exists(path):
                FileSystems.delete([path])
        if "://" not in out_dir:  # temporary files of a finish that was cut off (see shards.write_atomic)
            for name in os.listdir(out_dir):
                if name.startswith(".") and name.endswith(".tmp"):
                    os.remove(os.path.join(out_dir, name))
    from qurate.pipelines.shards import write_atomic

    write_atomic(FileSystems.join(out_dir, MARKER), json.dumps(
        {"qurate_output": 1, "note": "this folder holds a qurate run; `qurate run --overwrite` replaces qurate's "
                                     "outputs here and nothing else"}).encode("utf-8"))


def run_plan(plan: RunPlan, beam_args: list[str] | None = None,
             on_phase: Callable[[str], None] | None = None, resume: bool = False) -> dict[str, Any]:
    """Runs the pipeline to the end, then writes manifest and report; returns the manifest.

    ``on_phase(name)`` is told what the run is doing now (for progress output). With stage checkpoints on
    (``checkpoints_on``) the run is a chain of one Beam job per stage (``segments.py``); ``resume`` reuses the
    checkpoints an earlier run in the same folder left, up to the first stage whose inputs, section or code
    changed.
    """
    from qurate.pipelines.manifest import build_manifest, check_conservation, write_manifest
    from qurate.pipelines.report import write_report

    phase = on_phase or (lambda name: None)
    options = pipeline_options(beam_args or [])
    chained = checkpoints_on(plan, options, resume)
    if resume and not chained:
        raise RecipeError("--resume needs stage checkpoints, but output.checkpoints is off" if plan.specs else
                          "--resume: a run without stages has no checkpoints to resume from")
    clear_outputs(plan.out_dir, keep_stages=resume)
    from qurate.pipelines.runners import runner_name
    from qurate.pipelines.stats import write_launch

    write_launch(plan.out_dir, plan.recipe.model_dump(mode="json"), plan.stage_names, plan.files,
                 runner_name(options), plan.recipe.fingerprint())  # for `qurate finalize OUT` if this launcher dies
    if chained:
        from qurate.pipelines.segments import run_chain

        run_chain(plan, lambda: make_pipeline(options), resume, phase)
    else:
        pipeline = make_pipeline(options)
        build_pipeline(pipeline, plan)
        phase("running the pipeline")
        pipeline.run().wait_until_finish()
    phase("writing manifest and report")
    manifest = build_manifest(plan, options)
    # ---- trainer exports (pipelines/export.py, issue 12): a second short pipeline over the written mixture;
    # before the manifest, which lists every export file with its checksum ----
    phase("writing trainer exports (Megatron, packed sequences)")
    from qurate.pipelines.export import export_for_run

    manifest["export"] = export_for_run(plan.out_dir, plan.recipe, beam_args, manifest)
    from qurate.pipelines.finalize import write_dataset_card

    write_dataset_card(plan.out_dir, manifest)
    write_report(plan.out_dir, manifest)
    write_manifest(plan.out_dir, manifest)  # last, whole or not at all: a manifest means the run finished
    check_conservation(manifest)
    return manifest
