"""The ``read`` stage: JSONL (plain, .gz, .zst, ...) and Parquet from any Beam filesystem, into docs.

Files are matched on the launcher (an empty glob is a start-up error), then read one file per task: this gives
every record a stable position (line or row number), from which ids are derived when the input has none.
Anything that cannot become a doc goes to the dead-letter output with the reason; nothing is dropped silently.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from qurate.pipelines.doc import dead_letter
from qurate.pipelines.recipe import InputConfig
from qurate.pipelines.stage import DEAD_LETTER, KEPT, STATS, error_text

STAGE = "read"
LOG = logging.getLogger(__name__)
_DATA_SUFFIXES = (".jsonl", ".json", ".ndjson", ".parquet", ".gz", ".zst", ".zstd", ".bz2", ".xz")
_ORIGIN = "_origin"  # (file, position) while ids are checked for duplicates; removed before any stage


class InputError(ValueError):
    """The input cannot be read at all (no files match); the CLI reports it and exits 2."""


def match_input_files(patterns: list[str]) -> list[str]:
    """Every file the input patterns name, sorted; a directory stands for the data files inside it."""
    files: set[str] = set()
    for pattern in patterns:
        if os.path.isdir(pattern):
            pattern = os.path.join(pattern, "**")
        try:
            results = FileSystems.match([pattern])[0].metadata_list
        except Exception as err:  # Beam raises BeamIOError for an unknown scheme or unreachable store
            raise InputError(f"cannot list input '{pattern}': {str(err).splitlines()[0]}") from None
        matched = [m.path for m in results if not m.path.endswith("/")]
        if pattern.endswith("**"):
            matched = [p for p in matched if p.lower().endswith(_DATA_SUFFIXES)]
        if not matched:
            raise InputError(f"no input files match '{pattern}'")
        files.update(matched)
    return sorted(files)


def _common_dir(files: list[str]) -> str:
    if len(files) == 1:
        return posixpath.dirname(files[0])
    return posixpath.commonpath(files) if all(f.startswith("/") for f in files) else os.path.commonpath(files)


def file_format(path: str, declared: str) -> str:
    if declared != "auto":
        return declared
    return "parquet" if path.lower().endswith(".parquet") else "jsonl"


class RecordParser:
    """Turns one raw record (a JSON line's bytes or a Parquet row) into a doc, or says why it cannot."""

    def __init__(self, cfg: InputConfig):
        self.cfg = cfg

    def from_json_line(self, line: bytes) -> dict[str, Any] | str:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            return f"invalid UTF-8 at byte {err.start}: {line[err.start:err.start + 4]!r}"
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            return f"not valid JSON: {err.msg} at column {err.colno}"
        except RecursionError:
            return "not valid JSON: nested too deeply"
        return self.from_record(record)

    def from_record(self, record: Any) -> dict[str, Any] | str:
        cfg = self.cfg
        if not isinstance(record, dict):
            return f"record is a JSON {type(record).__name__}, not an object"
        if cfg.text_field not in record:
            return f"missing text field '{cfg.text_field}'"
        text = record[cfg.text_field]
        if not isinstance(text, str):
            return f"text field '{cfg.text_field}' is {type(text).__name__}, not a string"
        if not text.strip():
            return "empty text"
        if len(text) > cfg.max_text_chars:
            return f"text too large: {len(text):,} chars > input.max_text_chars {cfg.max_text_chars:,}"
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            return f"text is not valid Unicode (lone surrogate at char {err.start})"
        doc: dict[str, Any] = {"text": text}
        raw_id = record.get(cfg.id_field) if cfg.id_field else None
        if raw_id is not None and not isinstance(raw_id, (str, int)):
            return f"id field '{cfg.id_field}' is {type(raw_id).__name__}, not a string or integer"
        if raw_id is not None and str(raw_id) != "":
            doc["id"] = str(raw_id)
        source = record.get(cfg.source_field) if cfg.source_field else None
        if isinstance(source, str) and source:
            doc["source"] = source
        used = {cfg.text_field, cfg.id_field, cfg.source_field}
        meta = {k: v for k, v in record.items() if k not in used}
        if meta:
            doc["meta"] = meta
        return doc


class _ReadFileFn(beam.DoFn):
    """Reads one file; emits docs, dead-letter entries, and how many records it read."""

    def __init__(self, cfg: InputConfig, base_dir: str):
        self._cfg = cfg
        self._base_dir = base_dir
        self._records = Metrics.counter(STAGE, "records")
        self._bad = Metrics.counter(STAGE, "dead_letter")

    def setup(self) -> None:
        self._parser = RecordParser(self._cfg)

    def process(self, path: str) -> Iterator[Any]:
        rel = path[len(self._base_dir):].lstrip("/\\") if self._base_dir else path
        stem = posixpath.basename(path).split(".")[0]
        n = 0
        try:
            if file_format(path, self._cfg.format) == "parquet":
                records = self._parquet_records(path)
            else:
                records = self._jsonl_records(path)
            for position, parsed, raw in records:
                n += 1
                yield from self._emit(parsed, raw, path, rel, stem, position)
        except Exception as err:  # unreadable or truncated file: one entry for the rest of it
            self._bad.inc()
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTER,
                dead_letter(STAGE, f"cannot read file after {n} records: {error_text(err)}", file=path,
                            position=n),
            )
            yield beam.pvalue.TaggedOutput(STATS, (("read", "unreadable_files"), {"docs": 1}))
            n += 1
        self._records.inc(n)
        LOG.info("read %s: %d records", path, n)
        yield beam.pvalue.TaggedOutput(STATS, (("read", "records"), {"docs": n}))
        yield beam.pvalue.TaggedOutput(STATS, (("read", "files"), {"docs": 1}))

    def _emit(self, parsed, raw, path, rel, stem, position):
        if isinstance(parsed, str):
            self._bad.inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter(STAGE, parsed, file=path, position=position,
                                                                    raw=raw))
            return
        parsed.setdefault("id", f"{rel}:{position}")
        parsed.setdefault("source", stem)
        parsed[_ORIGIN] = (path, position)
        yield parsed

    def _jsonl_records(self, path: str):
        with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as handle:
            position = -1
            for line in iter(handle.readline, b""):
                position += 1
                if not line.strip():
                    continue  # blank lines separate nothing in JSONL; they are not records
                yield position, self._parser.from_json_line(line.rstrip(b"\r\n")), line

    def _parquet_records(self, path: str):
        import pyarrow.parquet as pq

        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            parquet = pq.ParquetFile(handle)
            position = 0
            for batch in parquet.iter_batches(batch_size=1024):
                for record in batch.to_pylist():
                    yield position, self._parser.from_record(record), record
                    position += 1


def _first_copy_of_each_id(item):
    """Keeps the copy of an id that comes first in (file, position); later copies go to the dead letter."""
    doc_id, docs = item
    docs = sorted(docs, key=lambda d: d[_ORIGIN])
    first = docs[0]
    for dup in docs[1:]:
        path, position = dup.pop(_ORIGIN)
        yield beam.pvalue.TaggedOutput(
            DEAD_LETTER,
            dead_letter(STAGE, f"duplicate id '{doc_id}' (first seen at {first[_ORIGIN][0]}:"
                               f"{first[_ORIGIN][1]})", file=path, position=position, doc_id=doc_id,
                        raw=dup.get("text")),
        )
    first.pop(_ORIGIN)
    yield first


def _strip_origin(doc):
    doc.pop(_ORIGIN, None)
    return doc


class ReadDocs(beam.PTransform):
    """``PBegin -> {kept: docs, dead_letter: entries, stats: counts}`` for the input files of a recipe."""

    def __init__(self, cfg: InputConfig, files: list[str] | None = None):
        super().__init__()
        self.cfg = cfg
        self.files = files if files is not None else match_input_files(cfg.paths)

    def expand(self, pbegin):
        base_dir = _common_dir(self.files)
        read = (
            pbegin
            | "Files" >> beam.Create(self.files)
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadFile" >> beam.ParDo(_ReadFileFn(self.cfg, base_dir)).with_outputs(DEAD_LETTER, STATS, main=KEPT)
        )
        docs, dead = read[KEPT], [read[DEAD_LETTER]]
        if self.cfg.drop_duplicate_ids:
            unique = (
                docs
                | "KeyById" >> beam.Map(lambda d: (d["id"], d))
                | "GroupById" >> beam.GroupByKey()
                | "FirstCopy" >> beam.FlatMap(_first_copy_of_each_id).with_outputs(DEAD_LETTER, main=KEPT)
            )
            docs = unique[KEPT]
            dead.append(unique[DEAD_LETTER])
        else:
            docs = docs | "StripOrigin" >> beam.Map(_strip_origin)
        dead_all = dead | "AllDeadLetter" >> beam.Flatten()
        return {KEPT: docs, DEAD_LETTER: dead_all, STATS: read[STATS]}
