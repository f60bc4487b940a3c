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
import re
from collections.abc import Iterator
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from qurate.pipelines.doc import dead_letter
from qurate.pipelines.recipe import InputConfig
from qurate.pipelines.stage import DEAD_LETTER, KEPT, STATS, error_text
from qurate.pipelines.textfile import decompressed_chunks, iter_lines

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


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}


def _json_type(value: Any) -> str:
    """What a value is, in JSON's words (``42`` -> ``a number``), for messages a user reads."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _has_lone_surrogate(record: Any) -> bool:
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class Invalid(NamedTuple):
    """Why a record cannot become a doc (``rule: detail``), and its id when it has a usable one."""

    reason: str
    doc_id: str | None = None


class RecordParser:
    """Turns one raw record (a JSON line's bytes or a Parquet row) into a doc, or says why it cannot.

    A reason reads ``rule: detail`` and tells the user what to fix (the rule is what the report tabulates).
    """

    def __init__(self, cfg: InputConfig):
        self.cfg = cfg
        # Finds `"id": "..."` in a line that is not valid JSON, so its dead-letter entry can name it.
        self._id_in_line = re.compile(rf'"{re.escape(cfg.id_field)}"\s*:\s*"((?:[^"\\]|\\.){{1,200}})"'
                                      ) if cfg.id_field else None

    def _id_in_broken_line(self, text: str) -> str | None:
        match = self._id_in_line.search(text[:10_000]) if self._id_in_line else None
        return match.group(1) if match else None

    def from_json_line(self, line: bytes) -> dict[str, Any] | Invalid:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            return Invalid(f"invalid UTF-8: byte {err.start} of the line is {line[err.start:err.start + 1]!r} "
                           f"(input files must be UTF-8)")
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            return Invalid(f"not valid JSON: {err.msg} (column {err.colno}); JSONL holds one JSON object per "
                           f"line", self._id_in_broken_line(text))
        except RecursionError:
            return Invalid("not valid JSON: nested too deeply")
        # JSON can spell an unpaired UTF-16 surrogate (\ud800); such a string cannot be written as UTF-8.
        # Only lines with a \uD8xx-\uDFxx escape can hold one, so the full check runs on those alone.
        if ("\\ud" in text or "\\uD" in text) and _has_lone_surrogate(record):
            return Invalid("lone surrogate: a \\udXXX escape without its pair is not valid Unicode "
                           "(fix the producer)", self._usable_id(record))
        return self.from_record(record)

    def from_record(self, record: Any) -> dict[str, Any] | Invalid:
        doc = self._to_doc(record)
        return Invalid(doc, self._usable_id(record)) if isinstance(doc, str) else doc

    def _usable_id(self, record: Any) -> str | None:
        raw_id = record.get(self.cfg.id_field) if isinstance(record, dict) and self.cfg.id_field else None
        if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) and not _has_lone_surrogate(raw_id):
            return str(raw_id)
        return None

    def _to_doc(self, record: Any) -> dict[str, Any] | str:
        cfg = self.cfg
        if not isinstance(record, dict):
            return f"not an object: the record is {_json_type(record)}, expected a JSON object with a text field"
        if cfg.text_field not in record:
            keys = ", ".join(sorted(map(str, record))[:8]) or "none"
            return (f"missing text field: no '{cfg.text_field}' in the record (its keys: {keys}); "
                    f"set input.text_field to the field that holds the text")
        text = record[cfg.text_field]
        if not isinstance(text, str):
            return f"text not a string: '{cfg.text_field}' is {_json_type(text)}"
        if not text.strip():
            return "empty text: the text field is empty or whitespace only"
        if len(text) > cfg.max_text_chars:
            return (f"text too large: {len(text):,} chars > input.max_text_chars {cfg.max_text_chars:,} "
                    f"(raise it in the recipe to keep such documents)")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            return f"lone surrogate: text char {err.start} is an unpaired UTF-16 surrogate, not valid Unicode"
        doc: dict[str, Any] = {"text": text}
        raw_id = record.get(cfg.id_field) if cfg.id_field else None
        if raw_id is not None and (not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool)):
            return f"bad id: '{cfg.id_field}' is {_json_type(raw_id)}, expected a string or an integer"
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
        except (ConnectionError, TimeoutError):
            raise  # transient: the runner retries the bundle (its partial output is discarded)
        except Exception as err:  # unreadable or truncated file: one entry for the rest of it
            self._bad.inc()
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTER,
                dead_letter(STAGE, f"unreadable file: {error_text(err)} (after {n} records were read; the "
                                   f"rest of the file is lost, re-fetch or repair it)", file=path, position=n),
            )
            yield beam.pvalue.TaggedOutput(STATS, (("read", "unreadable_files"), {"docs": 1}))
            n += 1
        self._records.inc(n)
        LOG.info("read %s: %d records", path, n)
        yield beam.pvalue.TaggedOutput(STATS, (("read", "records"), {"docs": n}))
        yield beam.pvalue.TaggedOutput(STATS, (("read", "files"), {"docs": 1}))

    def _emit(self, parsed, raw, path, rel, stem, position):
        if isinstance(parsed, Invalid):
            self._bad.inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter(STAGE, parsed.reason, file=path,
                                                                    position=position, doc_id=parsed.doc_id, raw=raw))
            return
        parsed.setdefault("id", f"{rel}:{position}")
        parsed.setdefault("source", stem)
        parsed[_ORIGIN] = (path, position)
        yield parsed

    def _jsonl_records(self, path: str):
        position = -1
        for line in iter_lines(decompressed_chunks(path)):
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


class _FirstOrigin(beam.CombineFn):
    """Per id: the smallest (file, position) it was read at, and how many times it was read."""

    def create_accumulator(self):
        return None, 0

    def add_input(self, acc, origin):
        first, count = acc
        return (origin if first is None or origin < first else first), count + 1

    def merge_accumulators(self, accs):
        first, count = None, 0
        for acc_first, acc_count in accs:
            if acc_first is not None and (first is None or acc_first < first):
                first = acc_first
            count += acc_count
        return first, count

    def extract_output(self, acc):
        return acc


def _split_duplicates(doc, firsts: dict):
    """Keeps a doc unless its id was read earlier in (file, position) order; later copies go to the dead letter."""
    path, position = origin = tuple(doc[_ORIGIN])
    doc = {k: v for k, v in doc.items() if k != _ORIGIN}  # a copy: the input is also read by "IdOrigin"
    first = firsts.get(doc["id"])
    if first is None or tuple(first) == origin:
        yield doc
        return
    yield beam.pvalue.TaggedOutput(
        DEAD_LETTER,
        dead_letter(STAGE, f"duplicate id: '{doc['id']}' was first read at {first[0]}:{first[1]}; this copy "
                           f"was dropped (input.drop_duplicate_ids: false keeps every copy)",
                    file=path, position=position, doc_id=doc["id"], raw=doc.get("text")),
    )


def _strip_origin(doc):
    return {k: v for k, v in doc.items() if k != _ORIGIN}


class ReadDocs(beam.PTransform):
    """``PBegin -> {kept: docs, dead_letter: entries, stats: counts}`` for the input files of a recipe."""

    def __init__(self, cfg: InputConfig, files: list[str] | None = None):
        """``files``: the launcher's listing of ``cfg.paths`` when the caller has it already."""
        super().__init__()
        self.cfg = cfg
        # Listed on the launcher: an empty pattern fails before the job starts, and ids need the common folder.
        self.files = files if files is not None else match_input_files(cfg.paths)

    def expand(self, pbegin):
        base_dir = _common_dir(self.files)
        read = (
            pbegin
            # The graph carries the patterns, not the file list: a corpus of 10^5-10^6 files would make the
            # job graph too large to submit. Workers list them again (same files, same filter).
            | "Patterns" >> beam.Create(sorted(set(self.cfg.paths)))
            | "Match" >> beam.FlatMap(lambda pattern: match_input_files([pattern]))
            | "Files" >> beam.Distinct()  # two patterns may name the same file; it is read once
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadFile" >> beam.ParDo(_ReadFileFn(self.cfg, base_dir)).with_outputs(DEAD_LETTER, STATS, main=KEPT)
        )
        docs, dead = read[KEPT], [read[DEAD_LETTER]]
        if self.cfg.drop_duplicate_ids:
            # Only (id, origin) pairs are shuffled, combined per id; the texts never move. Ids read more than
            # once (usually few) reach every worker as a side input that names each one's first copy.
            repeated = (
                docs
                | "IdOrigin" >> beam.Map(lambda d: (d["id"], d[_ORIGIN]))
                | "FirstOrigin" >> beam.CombinePerKey(_FirstOrigin())
                | "Repeated" >> beam.Filter(lambda kv: kv[1][1] > 1)
                | "RepeatedFirst" >> beam.Map(lambda kv: (kv[0], kv[1][0]))
            )
            unique = docs | "DropRepeats" >> beam.FlatMap(
                _split_duplicates, beam.pvalue.AsDict(repeated)).with_outputs(DEAD_LETTER, main=KEPT)
            docs = unique[KEPT]
            dead.append(unique[DEAD_LETTER])
        else:
            docs = docs | "StripOrigin" >> beam.Map(_strip_origin)
        dead_all = dead | "AllDeadLetter" >> beam.Flatten()
        return {KEPT: docs, DEAD_LETTER: dead_all, STATS: read[STATS]}
