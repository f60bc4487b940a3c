"""A checkpointed run: a chain of segment pipelines joined by the stage checkpoints of ``checkpoints.py``.

    segment 1:  read ─▶ stage 1 ─▶ OUT/_stages/01-<stage 1>/ (kept, rejected, dead_letter, stats, manifest)
    segment k:  OUT/_stages/<k-1>/kept ─▶ stage k ─▶ OUT/_stages/<k>/
    last:       OUT/_stages/<n>/kept + every stage's rejected, dead-letter and stats ─▶ the run's usual sinks

Each segment is its own Beam job, so a local runner holds one stage's shuffles at a time (per-document stages
shuffle nothing: they stream from one checkpoint to the next), and a run that dies resumes after the last
segment whose manifest was written. The checkpoint writer groups nothing: each bundle writes its own files and
reports them; files of a failed bundle attempt are reported by no one and are deleted before the manifest.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import time
import uuid
from collections.abc import Callable
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue
from qurate.pipelines import checkpoints as ck
from qurate.pipelines.code_hash import code_hash
from qurate.pipelines.segment_jobs import remove_plans, run_segment
from qurate.pipelines.shards import write_atomic
from qurate.pipelines.stats import WriteStats, flatten_stats, read_stats

FILE_CHARS = 8_000_000  # text characters per checkpoint file: what one writer buffers (~30 MB), one reader task
ROW_GROUP_ROWS = 2048
CHECKPOINT_KEY = "_checkpoint"  # stats key of a written checkpoint file: (key, kind, file name, sha256)


class _WriteRecordsFn(beam.DoFn):
    """Records -> ``folder/<kind>-<random>.parquet`` files, one or more per bundle; yields one stats pair per
    file (its name, sha256, rows, bytes, chars), so only files of committed bundles are listed."""

    def __init__(self, folder: str, kind: str, file_chars: int = FILE_CHARS):
        self._folder, self._kind, self._file_chars = folder, kind, file_chars

    def start_bundle(self) -> None:
        self._rows: list[dict[str, Any]] = []
        self._size = 0
        self._chars = 0

    def process(self, record):
        row = ck.encode_record(record)
        self._rows.append(row)
        self._chars += len(row["text"] or "")
        self._size += len(row["text"] or "") + len(row["body"])
        if self._size >= self._file_chars:
            yield from self._flush()

    def finish_bundle(self):
        for pair in self._flush():
            yield WindowedValue(pair, MIN_TIMESTAMP, [GlobalWindow()])

    def _flush(self):
        if not self._rows:
            return
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(self._rows, schema=ck.SCHEMA), buffer, compression="zstd",
                       row_group_size=ROW_GROUP_ROWS)
        data = buffer.getvalue()
        name = f"{self._kind}-{uuid.uuid4().hex}.parquet"
        write_atomic(FileSystems.join(self._folder, name), data)
        yield ((CHECKPOINT_KEY, self._kind, name, hashlib.sha256(data).hexdigest()),
               {"rows": len(self._rows), "bytes": len(data), "chars": self._chars})
        self.start_bundle()


def _read_records(path: str):
    with FileSystems.open(path) as handle:
        data = handle.read()
    for batch in pq.ParquetFile(pa.BufferReader(data)).iter_batches(batch_size=1024, use_threads=False):
        for row in batch.to_pylist():
            yield ck.decode_record(row)


class ReadRecords(beam.PTransform):
    """``PBegin -> records`` of the given checkpoint files (one task per file)."""

    def __init__(self, paths: list[str]):
        super().__init__()
        self.paths = sorted(paths)

    def expand(self, pbegin):
        return pbegin | "Files" >> beam.Create(self.paths) | "Read" >> beam.FlatMap(_read_records)


def _paths(folder: str, manifest: dict[str, Any], kind: str) -> list[str]:
    return [FileSystems.join(folder, entry["path"]) for entry in manifest["files"].get(kind, [])]


def write_checkpoint(pipeline: beam.Pipeline, folder: str, kept: Any, outputs: Any,
                     stats_dir: str | None = None) -> None:
    """Adds the checkpoint writers to a segment's job: its kept docs (``None`` in a plan job), rejected docs and
    dead-letter entries as Parquet files in ``folder``, and its stats (with the files' list) in ``stats_dir``."""
    stats = list(outputs.stats)
    for kind, pcolls in (("kept", [kept] if kept is not None else []), ("rejected", outputs.rejected),
                         ("dead_letter", outputs.dead)):
        for i, records in enumerate(pcolls):  # one writer each: a Flatten would hold them all in a local runner
            stats.append(records | f"checkpoint/Write_{kind}{i or ''}" >> beam.ParDo(_WriteRecordsFn(folder, kind)))
    if not stats:
        stats = [pipeline | "checkpoint/NoStats" >> beam.Create([])]
    _ = flatten_stats(stats, "checkpoint/AllStats") | "checkpoint/Stats" >> WriteStats(stats_dir or folder)


def finish_segment(plan: Any, check: ck.StageCheck, upstream: str, seconds: float) -> tuple[dict[str, Any], str]:
    """After segment ``check.index`` ran: removes files no committed bundle reported, then writes the manifest
    (last). Returns (manifest, its hash)."""
    import qurate

    folder = check.folder
    stats = read_stats(folder)
    files: dict[str, list[dict[str, Any]]] = {kind: [] for kind in ck.KINDS}
    counts = {kind: {"rows": 0, "chars": 0} for kind in ck.KINDS}
    for key, value in sorted(stats.items()):
        if key[0] == CHECKPOINT_KEY:
            _, kind, name, sha = key
            files[kind].append({"path": name, "rows": value["rows"], "bytes": value["bytes"],
                                "chars": value["chars"], "sha256": sha})
            counts[kind]["rows"] += value["rows"]
            counts[kind]["chars"] += value["chars"]
    listed = {entry["path"] for entries in files.values() for entry in entries}
    found = [m for pattern in ("*.parquet", ".*.tmp")
             for m in FileSystems.match([FileSystems.join(folder, pattern)])[0].metadata_list]
    orphans = [m.path for m in found if m.path.rsplit("/", 1)[-1] not in listed]
    if orphans:  # written by a bundle attempt that failed and was retried: its records are in other files
        FileSystems.delete(orphans)
    files["stats"] = [ck.file_entry(folder, FileSystems.join(folder, "_stats", "stats.jsonl"))]
    manifest = {
        "qurate_stage_checkpoint": ck.FORMAT, "stage": check.name, "index": check.index,
        "section_hash": check.section, "code_hash": check.code, "upstream": upstream,
        "qurate_version": qurate.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(seconds, 1), "counts": counts, "files": files,
    }
    remove_plans(folder)
    return manifest, ck.write_stage_manifest(folder, manifest)


def segment_stats(folder: str) -> list[tuple[tuple, dict[str, float]]]:
    """A finished segment's stats pairs, without the checkpoint's own file list."""
    return [(key, value) for key, value in sorted(read_stats(folder).items()) if key[0] != CHECKPOINT_KEY]


def build_final(pipeline: beam.Pipeline, plan: Any, checks: list[ck.StageCheck],
                manifests: list[dict[str, Any]]) -> None:
    """The last segment: the last stage's kept docs and every stage's rejected docs, dead-letter entries and
    stats, through the same sinks as a run without checkpoints."""
    from qurate.pipelines.run import add_sinks

    def every(kind: str) -> list[str]:
        return [p for check, m in zip(checks, manifests) for p in _paths(check.folder, m, kind)]

    docs = pipeline | "checkpoint/Kept" >> ReadRecords(_paths(checks[-1].folder, manifests[-1], "kept"))
    rejected = [pipeline | "checkpoint/Rejected" >> ReadRecords(every("rejected"))]
    dead = [pipeline | "checkpoint/DeadLetter" >> ReadRecords(every("dead_letter"))]
    pairs = [pair for check in checks for pair in segment_stats(check.folder)]
    stats = [pipeline | "checkpoint/Stats" >> beam.Create(pairs)]
    add_sinks(pipeline, plan, docs, rejected, dead, stats)


def _run(pipeline: beam.Pipeline) -> None:
    pipeline.run().wait_until_finish()


def stage_checks(plan: Any) -> tuple[list[ck.StageCheck], str]:
    """What this run expects of each stage's checkpoint, and the first stage's upstream (the input's hash)."""
    checks = [ck.StageCheck(i, spec.name, ck.section_hash(spec.name, plan.recipe.section(spec.name), plan.context,
                                                          plan.recipe.input.model_dump(mode="json") if i == 0
                                                          else None),
                            code_hash(spec, i == 0), ck.stage_dir(plan.out_dir, i, spec.name))
              for i, spec in enumerate(plan.specs)]
    return checks, ck.input_hash(plan.files)


def run_chain(plan: Any, make: Callable[[], beam.Pipeline], resume: bool, phase: Callable[[str], None]) -> None:
    """Runs the chain (from the first stage a resumed run cannot reuse) and the final segment."""
    checks, first_upstream = stage_checks(plan)
    point = ck.find_resume_point(checks, first_upstream) if resume else ck.ResumePoint()
    if resume:
        phase(resume_message(plan, point))
    start = len(point.reused)
    _remove_stale(plan.out_dir, {check.folder for check in checks[:start]})
    manifests, upstream = list(point.reused), (point.reused_hashes or [first_upstream])[-1]
    phase("running the pipeline")
    for check in checks[start:]:
        previous = _paths(checks[check.index - 1].folder, manifests[-1], "kept") if check.index else []
        started = time.monotonic()
        run_segment(plan, check.index, previous, make, _run, write_checkpoint)
        manifest, upstream = finish_segment(plan, check, upstream, time.monotonic() - started)
        manifests.append(manifest)
    pipeline = make()
    build_final(pipeline, plan, checks, manifests)
    _run(pipeline)


def _remove_stale(out_dir: str, keep: set[str]) -> None:
    """Deletes every stage folder but those reused (a changed stage list leaves folders of other names)."""
    root = FileSystems.join(out_dir, ck.STAGES_DIR)
    if not FileSystems.exists(root):
        return
    folders = {m.path.rsplit("/", 1)[0] for m in FileSystems.match([FileSystems.join(root, "**")])[0].metadata_list}
    tops = {FileSystems.join(root, f[len(root):].strip("/").split("/", 1)[0]) for f in folders if f != root}
    stale = sorted(t for t in tops if t not in keep)
    if stale:
        FileSystems.delete(stale)


def resume_message(plan: Any, point: ck.ResumePoint) -> str:
    where = FileSystems.join(plan.out_dir, ck.STAGES_DIR)
    names = plan.stage_names
    if not point.reused:
        if not point.found_any:
            return f"resume: no stage checkpoints in {where}; running from the start"
        return f"resume: {names[0]} runs again ({point.reason}); running from the start"
    done = [m["stage"] for m in point.reused]
    text = f"resuming after {done[-1]}: {', '.join(['read', *done])} are reused from {where}"
    if len(done) < len(names):
        text += f"; {names[len(done)]} runs again" + (f" ({point.reason})" if point.reason else "")
    return text
