"""The ``read`` stage: JSONL (plain, .gz, .zst, ...) and Parquet from any Beam filesystem, into docs.

Files are matched on the launcher (an empty glob is a start-up error), then read one file per task: this gives
every record a stable position (line or row number), from which ids are derived when the input has none.
Anything that cannot become a doc goes to the dead-letter output with the reason; nothing is dropped silently.
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from qurate.doc import dead_letter
from qurate.hashing import stable_hash
from qurate.pipelines.decide import DEAD_LETTER, KEPT, STATS
from qurate.pipelines.recipe import InputConfig
from qurate.pipelines.records import Invalid, RecordParser, file_format, record_of  # noqa: F401  (re-exports)
from qurate.pipelines.textfile import (
    LongLine,
    compression_of,
    count_records,
    decompressed,
    decompressed_chunks,
    is_record,
    iter_lines,
)
from qurate.verdicts import error_text, is_transient

STAGE = "read"
LOG = logging.getLogger(__name__)
_ORIGIN = "_origin"  # (id derived?, file, position) while ids are checked for duplicates; removed before any stage
READ_RETRIES = 3  # transient errors (connection, timeout) while reading a file: tries again this often
READ_BACKOFF_S = 0.5
PARQUET_BATCH_ROWS = 1024
T = TypeVar("T")


class InputError(ValueError):
    """The input cannot be read at all (no files match); the CLI reports it and exits 2."""


_COMPRESSED = ("", ".gz", ".zst", ".zstd", ".bz2", ".xz")
# Not .json: a folder's *.json files are mostly metadata (manifests, configs); name such a file to read it.
_DATA_FILES = tuple(f"{ext}{c}" for ext in (".jsonl", ".ndjson", ".parquet") for c in _COMPRESSED)
_OUTPUT_MARKERS = ("manifest.json", "_stats/stats.jsonl", "_stats/launch.json", ".qurate")


def _is_data_file(path: str) -> bool:
    """A directory input reads JSON-lines (plain or compressed) and Parquet files only."""
    return path.lower().endswith(_DATA_FILES)


def _refuse_qurate_output(pattern: str, paths: list[str]) -> None:
    """A directory that holds a qurate run's output is not input: its shards, reports and dead letter would be
    read as documents."""
    for path in paths:
        posix = path.replace("\\", "/")
        marker = next((m for m in _OUTPUT_MARKERS if posix.endswith("/" + m)), None)
        if marker == "manifest.json":  # other tools write manifest.json files too: only qurate's count
            with FileSystems.open(path) as handle:
                marker = marker if b'"qurate_manifest"' in handle.read(200) else None
        if marker:
            run_dir = posix[: -len(marker) - 1]
            raise InputError(f"input '{pattern.removesuffix('**').rstrip('/')}' holds a qurate output folder "
                             f"({run_dir}: {marker}); point --input at data files, not at a run's output")


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
            _refuse_qurate_output(pattern, matched)
            matched = [p for p in matched if _is_data_file(p)]
        if not matched:
            raise InputError(f"no input files match '{pattern}'")
        files.update(matched)
    return sorted(files)


def _common_dir(files: list[str]) -> str:
    if len(files) == 1:
        return posixpath.dirname(files[0])
    return posixpath.commonpath(files) if all(f.startswith("/") for f in files) else os.path.commonpath(files)


def _stem(path: str) -> str:
    return posixpath.basename(path).split(".")[0]


def _retrying(make: Callable[[], Iterator[T]], what: str) -> Iterator[T]:
    """The items of ``make()``; on a transient error (connection, timeout) it starts again after a backoff and
    skips the items already given, so a file whose store hiccups is read once, whole. A permanent error, or a
    transient one that outlasts the retries, propagates (on a cluster, Beam then retries the bundle)."""
    done = 0
    for attempt in range(READ_RETRIES + 1):
        try:
            for i, item in enumerate(make()):
                if i >= done:
                    done += 1
                    yield item
            return
        except Exception as err:
            if not is_transient(err) or attempt == READ_RETRIES:
                raise
            LOG.warning("reading %s: %s; retrying", what, error_text(err))
            time.sleep(READ_BACKOFF_S * 2**attempt)


def _row_raw(batch, j: int) -> dict[str, Any]:
    """A Parquet row that cannot be decoded, column by column; an undecodable value as escaped bytes."""
    import pyarrow as pa

    raw: dict[str, Any] = {}
    for name, column in zip(batch.schema.names, batch.columns):
        cell = column.slice(j, 1)
        try:
            raw[name] = cell.to_pylist()[0]
        except Exception:  # invalid UTF-8 in a string column, a value Python cannot represent, ...
            try:
                value = cell.cast(pa.binary()).to_pylist()[0]
                raw[name] = value.decode("utf-8", errors="backslashreplace") if value is not None else None
            except Exception as err:
                raw[name] = f"<undecodable {column.type}: {type(err).__name__}>"
    return raw


def _batch_rows(batch) -> Iterator[tuple[dict[str, Any] | None, BaseException | None]]:
    """(row, None) for each row of a record batch, or (None, error) for a row that cannot be decoded: the batch
    is decoded whole when it can, else row by row, so one bad value costs only its row."""
    try:
        rows = batch.to_pylist()
    except Exception:
        rows = None
    for j in range(batch.num_rows):
        if rows is not None:
            yield rows[j], None
            continue
        try:
            yield batch.slice(j, 1).to_pylist()[0], None
        except Exception as err:
            yield None, err


@contextlib.contextmanager
def _open_parquet(path: str):
    """A seekable handle on a Parquet file; a compressed one (``x.parquet.gz``) is decompressed into a spooled
    temporary file first (Parquet is read from its footer backwards)."""
    compression = compression_of(path)
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        if compression is None:
            yield raw
            return
        with tempfile.SpooledTemporaryFile(max_size=64 << 20) as spool:
            for chunk in decompressed(raw, compression):
                spool.write(chunk)
            spool.seek(0)
            yield spool


class _ReadFileFn(beam.DoFn):
    """Reads one file; emits docs, dead-letter entries, and how many records the file holds (counted apart)."""

    def __init__(self, cfg: InputConfig, base_dir: str):
        self._cfg = cfg
        self._base_dir = base_dir
        self._records = Metrics.counter(STAGE, "records")
        self._bad = Metrics.counter(STAGE, "dead_letter")

    def setup(self) -> None:
        self._parser = RecordParser(self._cfg)

    def process(self, path: str) -> Iterator[Any]:
        rel = path[len(self._base_dir):].lstrip("/\\") if self._base_dir else path
        stem = _stem(path)
        parquet = file_format(path, self._cfg.format) == "parquet"
        records = self._parquet_records if parquet else self._jsonl_records
        emitted = 0
        for position, parsed, raw in _retrying(lambda: records(path), path):
            emitted += 1
            yield from self._emit(parsed, raw, path, rel, stem, position)
        # The file's records counted by a scan of their own (lines / the Parquet footer's row count): the run's
        # conservation check compares outputs against this count, so a record the reader lost cannot go unseen.
        physical = next(iter(_retrying(lambda: iter([self._count(path, parquet)]), path)))
        if physical != emitted:
            LOG.error("read %s: %d records emitted, but the file holds %d", path, emitted, physical)
            yield beam.pvalue.TaggedOutput(STATS, (("read", "count_mismatch_files"), {"docs": 1}))
        self._records.inc(emitted)
        LOG.info("read %s: %d records", path, emitted)
        yield beam.pvalue.TaggedOutput(STATS, (("read", "records"), {"docs": physical}))
        yield beam.pvalue.TaggedOutput(STATS, (("read", "emitted"), {"docs": emitted}))
        yield beam.pvalue.TaggedOutput(STATS, (("read", "files"), {"docs": 1}))

    def _emit(self, parsed, raw, path, rel, stem, position):
        if isinstance(parsed, Invalid):
            self._bad.inc()
            raw_chars = None
            if isinstance(raw, LongLine):
                raw, raw_chars = raw.head, raw.size
            elif isinstance(raw, bytes):
                raw = raw.rstrip(b"\r\n")
            entry = dead_letter(STAGE, parsed.reason, file=path, position=position, doc_id=parsed.doc_id, raw=raw,
                                source=stem)  # the source a doc from this file gets when it names none
            if raw_chars is not None:
                entry["raw_chars"] = raw_chars
            if parsed.reason.startswith("unreadable file"):
                yield beam.pvalue.TaggedOutput(STATS, (("read", "unreadable_files"), {"docs": 1}))
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, entry)
            return
        derived = "id" not in parsed
        if derived:
            parsed["id"] = f"{rel}:{position}"
        parsed.setdefault("source", stem)
        parsed[_ORIGIN] = (derived, path, position)
        yield parsed

    def _unreadable(self, err: BaseException, n: int) -> Invalid:
        if is_transient(err):
            raise err
        return Invalid(f"unreadable file: {error_text(err)} (after {n} records were read; the rest of the file "
                       f"is lost, re-fetch or repair it)")

    def _jsonl_records(self, path: str):
        position = -1
        n = 0
        try:
            for line in iter_lines(decompressed_chunks(path), self._parser.max_line_bytes):
                position += 1
                if not is_record(line):
                    continue  # blank lines separate nothing in JSONL; they are not records
                n += 1
                yield position, self._parser.from_json_line(line.rstrip(b"\r\n") if isinstance(line, bytes)
                                                             else line), line
        except Exception as err:  # a truncated or corrupt file: one entry stands for its lost tail
            yield position + 1, self._unreadable(err, n), None

    def _parquet_records(self, path: str):
        import pyarrow.parquet as pq

        with _open_parquet(path) as handle:
            try:
                parquet = pq.ParquetFile(handle)
            except Exception as err:
                yield 0, self._unreadable(err, 0), None
                return
            position = 0
            for group in range(parquet.num_row_groups):
                group_rows = parquet.metadata.row_group(group).num_rows
                done = 0
                try:
                    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, row_groups=[group]):
                        for j, (row, err) in enumerate(_batch_rows(batch)):
                            if err is None:
                                yield position + done, self._parser.from_record(row), row
                            else:
                                yield (position + done, Invalid(f"undecodable row: {error_text(err)}"),
                                       _row_raw(batch, j))
                            done += 1
                except Exception as err:  # a corrupt page: each row it held is accounted for, by position
                    if is_transient(err):
                        raise
                    reason = f"unreadable row group: {error_text(err)} (row group {group} of the file)"
                    for _ in range(done, group_rows):
                        yield position + done, Invalid(reason), None
                        done += 1
                position += group_rows

    def _count(self, path: str, parquet: bool) -> int:
        if parquet:
            import pyarrow.parquet as pq

            with _open_parquet(path) as handle:
                try:
                    return pq.ParquetFile(handle).metadata.num_rows
                except Exception as err:
                    if is_transient(err):
                        raise
                    return 1  # an unreadable file is one dead-letter entry
        count, err = count_records(decompressed_chunks(path), self._parser.max_line_bytes)
        if err is not None and is_transient(err):
            raise err
        return count


class _FirstOrigin(beam.CombineFn):
    """Per id: the smallest (id derived?, file, position) it was read at, and how many times it was read."""

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


def _split_duplicates(doc, firsts: dict, cfg: InputConfig):
    """Keeps a doc unless its id was read earlier in (file, position) order; later copies go to the dead letter.

    Ids the input gives come first: a doc whose id was derived from file and line, but which an input record
    also uses, keeps its place under that id plus a hash of its origin (never dropped as a duplicate)."""
    derived, path, position = origin = tuple(doc[_ORIGIN])
    doc = {k: v for k, v in doc.items() if k != _ORIGIN}  # a copy: the input is also read by "IdOrigin"
    first = firsts.get(doc["id"])
    if first is None or tuple(first) == origin:
        yield doc
        return
    if derived:
        doc["id"] = f"{doc['id']}#{stable_hash(path, position):016x}"
        yield doc
        return
    yield beam.pvalue.TaggedOutput(
        DEAD_LETTER,
        dead_letter(STAGE, f"duplicate id: '{doc['id']}' was first read at {first[1]}:{first[2]}; this copy "
                           f"was dropped (input.drop_duplicate_ids: false keeps every copy)",
                    file=path, position=position, doc_id=doc["id"], raw=record_of(doc, cfg),
                    source=doc.get("source")),
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
                _split_duplicates, beam.pvalue.AsDict(repeated), self.cfg).with_outputs(DEAD_LETTER, main=KEPT)
            docs = unique[KEPT]
            dead.append(unique[DEAD_LETTER])
        else:
            docs = docs | "StripOrigin" >> beam.Map(_strip_origin)
        dead_all = dead | "AllDeadLetter" >> beam.Flatten()
        return {KEPT: docs, DEAD_LETTER: dead_all, STATS: read[STATS]}
