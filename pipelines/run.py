"""Wires a recipe into a Beam pipeline, runs it, and checks that every record is accounted for.

    read ─▶ stage 1 ─▶ stage 2 ─▶ ... ─▶ mixture (tokens) + docs
             │rejected   │rejected
             ▼           ▼
          OUT/rejected/<stage>/        dead-letter entries from every step ─▶ OUT/dead_letter/
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from qurate.pipelines import stages as stage_registry
from qurate.pipelines.read import ReadDocs, match_input_files
from qurate.pipelines.recipe import Recipe
from qurate.pipelines.runners import make_pipeline, pipeline_options
from qurate.pipelines.sinks import WriteDeadLetter, WriteDocs, WriteMixture, WriteRejected, rejection_stats
from qurate.pipelines.stage import DEAD_LETTER, KEPT, REJECTED, STATS, PickExamples, Stage
from qurate.pipelines.stats import WriteStats
from qurate.pipelines.write import stable_hash

LOG = logging.getLogger(__name__)
OUTPUT_DIRS = ("mixture", "docs", "rejected", "dead_letter", "_stats")
OUTPUT_FILES = ("manifest.json", "report.json", "report.html")  # removed first: a failed run leaves none
EXAMPLE_CHARS = 400


@dataclass
class RunPlan:
    recipe: Recipe
    out_dir: str
    files: list[str]
    stage_names: list[str]
    stages: list[Stage] = field(default_factory=list)


def plan_run(recipe: Recipe, out_dir: str | None = None, stage_names: list[str] | None = None) -> RunPlan:
    """Everything that can fail before Beam starts: files to read, stage names, stage construction."""
    names = stage_registry.resolve(stage_names if stage_names is not None else recipe.stages)
    files = match_input_files(recipe.input.paths)
    plan = RunPlan(recipe, out_dir or recipe.output.dir, files, names)
    plan.stages = [stage_registry.build(name, recipe) for name in names]
    return plan


def _kept_stat(stage: str):
    def stat(doc):
        return ("funnel", stage, "kept"), {"docs": 1, "chars": len(doc["text"])}
    return stat


def _prefixed(stage: str):
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


def build_pipeline(pipeline: beam.Pipeline, plan: RunPlan) -> None:
    """Adds the whole run to ``pipeline``: read, the stages in order, and every sink."""
    recipe, out = plan.recipe, plan.out_dir
    read = pipeline | "read" >> ReadDocs(recipe.input, plan.files)
    docs = read[KEPT]
    rejected, dead, stats = [], [read[DEAD_LETTER]], [read[STATS]]
    stats.append(docs | "read/CountKept" >> beam.Map(_kept_stat("read")))
    for stage in plan.stages:
        result = docs | stage.name >> stage
        docs = result[KEPT]
        if REJECTED in result:
            rejected.append(result[REJECTED])
        if DEAD_LETTER in result:
            dead.append(result[DEAD_LETTER])
        if STATS in result:
            stats.append(result[STATS] | f"{stage.name}/PrefixStats" >> beam.Map(_prefixed(stage.name)))
        stats.append(docs | f"{stage.name}/CountKept" >> beam.Map(_kept_stat(stage.name)))

    stats.append(docs | "write/Mixture" >> WriteMixture(out, recipe.output, recipe.tokenizer))
    if recipe.output.write_docs:
        stats.append(docs | "write/Docs" >> WriteDocs(out, recipe.output.shard_chars))
    all_rejected = rejected | "write/AllRejected" >> beam.Flatten(pipeline=pipeline)
    stats.append(all_rejected | "write/Rejected" >> WriteRejected(out, recipe.output, recipe.tokenizer))
    stats.append(all_rejected | "write/RejectionStats" >> beam.FlatMap(rejection_stats))
    stats.append(dead | "write/AllDeadLetter" >> beam.Flatten()
                 | "write/DeadLetter" >> WriteDeadLetter(out, recipe.output.shard_chars))
    if recipe.output.report_examples:
        stats.append(
            all_rejected
            | "write/Example" >> beam.Map(_example(recipe.seed, EXAMPLE_CHARS))
            | "write/PickExamples" >> PickExamples(recipe.output.report_examples)
        )
    _ = stats | "write/AllStats" >> beam.Flatten() | "write/Stats" >> WriteStats(out)


def clear_outputs(out_dir: str) -> None:
    """Removes the outputs of an earlier run in ``out_dir`` so no stale shard survives."""
    for name in OUTPUT_FILES + OUTPUT_DIRS:
        path = FileSystems.join(out_dir, name)
        if FileSystems.exists(path):
            FileSystems.delete([path])


def run_plan(plan: RunPlan, beam_args: list[str] | None = None,
             on_phase: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Runs the pipeline to the end, then writes manifest and report; returns the manifest.

    ``on_phase(name)`` is told what the run is doing now (for progress output).
    """
    from qurate.pipelines.manifest import build_manifest, check_conservation, write_manifest
    from qurate.pipelines.report import write_report

    phase = on_phase or (lambda name: None)
    options = pipeline_options(beam_args or [])
    clear_outputs(plan.out_dir)
    pipeline = make_pipeline(options)
    build_pipeline(pipeline, plan)
    phase("running the pipeline")
    result = pipeline.run()
    result.wait_until_finish()
    phase("writing manifest and report")
    manifest = build_manifest(plan, options)
    write_manifest(plan.out_dir, manifest)
    write_report(plan.out_dir)
    check_conservation(manifest)
    return manifest
