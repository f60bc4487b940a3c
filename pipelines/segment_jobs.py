"""The Beam jobs of one checkpoint segment: the stage (and, first, read), in one job or, for a two-pass stage
(``two_pass.py``), a plan job before it, so that no local job holds the stage's whole input.

    first segment, duplicate ids dropped:  job 1  files ─▶ read.plan ─▶ _plan/read/      (repeated ids)
    two-pass stage (dedup, domains):       job 2  docs ─▶ stage.plan ─▶ _plan/<stage>/   (plan records; domains
                                                                                           also its labelled docs)
    every segment:                         job 3  docs ─▶ stage (applying the plans) ─▶ kept / rejected / ...

``docs`` is the previous checkpoint, the input files read again by the first segment, or the docs the plan job
staged (then job 3 reads neither). Read's own outputs (dead letter, stats) are counted by the job that reads
the input last, so every record is counted once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from qurate.pipelines.decide import DEAD_LETTER, KEPT, REJECTED, STATS
from qurate.pipelines.stats import STATS_FILE, WriteStats, read_stats
from qurate.pipelines.two_pass import PLAN_KEY, ReadPlan, WritePlan, is_two_pass, plan_files

PLAN_DIR = "_plan"
STAGED = "staged"  # checkpoint kind of the docs a plan pass annotated (pass 2's input)
CHECKPOINT_KEY = "_checkpoint"  # segments.CHECKPOINT_KEY (not imported: segments imports this module)


def plan_dir(folder: str, which: str) -> str:
    return FileSystems.join(folder, PLAN_DIR, which)


class _Planned(beam.PTransform):
    def __init__(self, transform: Any):
        super().__init__()
        self.transform = transform

    def expand(self, docs):
        return self.transform.plan(docs)


class _Applied(beam.PTransform):
    def __init__(self, transform: Any, paths: list[str]):
        super().__init__()
        self.transform, self.paths = transform, paths

    def expand(self, docs):
        return self.transform.apply(docs, docs.pipeline | "ReadPlan" >> ReadPlan(self.paths))


class _Outputs:
    """A job's rejected, dead-letter and stats collections, as ``run.add_stage`` appends them."""

    def __init__(self) -> None:
        self.rejected: list[Any] = []
        self.dead: list[Any] = []
        self.stats: list[Any] = []


def run_segment(plan: Any, index: int, previous: list[str], make: Callable[[], beam.Pipeline],
                run: Callable[[beam.Pipeline], None], write_checkpoint: Callable[..., None]) -> None:
    """Runs segment ``index`` into its folder: ``write_checkpoint(pipeline, folder, kept, outputs)`` adds the
    checkpoint writers of ``segments.py`` to a job."""
    from qurate.pipelines import checkpoints as ck
    from qurate.pipelines.read import ReadDocs
    from qurate.pipelines.run import add_stage, count_kept, prefixed_stats, stage_transform

    spec = plan.specs[index]
    folder = ck.stage_dir(plan.out_dir, index, spec.name)
    transform = stage_transform(spec, plan)
    reader = ReadDocs(plan.recipe.input, plan.files) if index == 0 else None

    read_plan: list[str] | None = None
    if reader is not None and plan.recipe.input.drop_duplicate_ids:
        where = plan_dir(folder, "read")
        pipeline = make()
        records = (pipeline | "read" >> _Planned(reader))["plan"]
        _ = records | "plan/Write" >> beam.ParDo(WritePlan(where)) | "plan/Stats" >> WriteStats(where)
        run(pipeline)
        read_plan = plan_files(where, _stats_of(where))

    def source(pipeline: beam.Pipeline, outputs: _Outputs):
        """The segment's input docs; read's own dead letter and stats go to ``outputs``."""
        if reader is None:
            from qurate.pipelines.segments import ReadRecords

            return pipeline | "checkpoint/Read" >> ReadRecords(previous)
        read = pipeline | "read" >> (reader if read_plan is None else _Applied(reader, read_plan))
        outputs.dead.append(read[DEAD_LETTER])
        outputs.stats += [read[STATS], read[KEPT] | "read/CountKept" >> count_kept("read")]
        return read[KEPT]

    stage_plan: list[str] | None = None
    if is_two_pass(transform):
        where = plan_dir(folder, spec.name)
        pipeline, outputs, read_outputs = make(), _Outputs(), _Outputs()
        result = source(pipeline, read_outputs) | spec.name >> _Planned(transform)
        for tag, into in ((REJECTED, outputs.rejected), (DEAD_LETTER, outputs.dead)):
            if tag in result:
                into.append(result[tag])
        if STATS in result:
            outputs.stats.append(result[STATS] | f"{spec.name}/PrefixStats" >> beam.Map(prefixed_stats(spec.name)))
        plans = result["plan"] if isinstance(result["plan"], (list, tuple)) else [result["plan"]]
        for i, records in enumerate(plans):  # one writer each, no Flatten (see write_checkpoint)
            outputs.stats.append(records | f"plan/Write{i or ''}" >> beam.ParDo(WritePlan(where)))
        staging = "docs" in result  # docs the plan annotated (domains: labels, tokens): pass 2's input
        if staging:
            from qurate.pipelines.segments import _WriteRecordsFn

            outputs.stats.append(result["docs"] | "plan/Stage" >> beam.ParDo(_WriteRecordsFn(where, STAGED)))
            outputs.dead += read_outputs.dead  # pass 2 does not read the input again: count read here
            outputs.stats += read_outputs.stats
        write_checkpoint(pipeline, folder, None, outputs, stats_dir=where)
        run(pipeline)
        pass_one = _stats_of(where)
        stage_plan = plan_files(where, pass_one)
        if staging:
            reader, previous = None, sorted(FileSystems.join(where, key[2]) for key in pass_one
                                            if key[0] == CHECKPOINT_KEY and key[1] == STAGED)

    pipeline, outputs = make(), _Outputs()
    docs = source(pipeline, outputs)
    docs = add_stage(docs, spec, plan, outputs.rejected, outputs.dead, outputs.stats,
                     transform=None if stage_plan is None else _Applied(transform, stage_plan))
    write_checkpoint(pipeline, folder, docs, outputs)
    run(pipeline)
    if stage_plan is not None:
        _merge_stats(folder, plan_dir(folder, spec.name))


def _stats_of(folder: str) -> dict[tuple, dict[str, float]]:
    """A job's stats; none when it emitted none (a plan job that found nothing to plan)."""
    if not FileSystems.exists(FileSystems.join(folder, STATS_FILE)):
        return {}
    return read_stats(folder)


def _merge_stats(folder: str, other: str) -> None:
    """Adds the plan job's stats to the segment's (one stats file per checkpoint, as a one-job segment has)."""
    stats = read_stats(folder)
    for key, value in _stats_of(other).items():
        if key[0] == PLAN_KEY or (key[0] == CHECKPOINT_KEY and key[1] == STAGED):
            continue  # the plan and staged files are removed with the segment's _plan folder
        acc = stats.setdefault(key, {})
        for name, number in value.items():
            acc[name] = acc.get(name, 0) + number
    lines = sorted(json.dumps([list(key), value], sort_keys=True) + "\n" for key, value in stats.items())
    with FileSystems.create(FileSystems.join(folder, STATS_FILE)) as handle:
        handle.write("".join(lines).encode("utf-8"))


def remove_plans(folder: str) -> None:
    """Deletes the plan files of a finished segment (written by this run, needed by no later job)."""
    where = FileSystems.join(folder, PLAN_DIR)
    if FileSystems.exists(where):
        FileSystems.delete([where])
