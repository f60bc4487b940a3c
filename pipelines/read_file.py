"""Reading one input file (a Beam DoFn): its records as docs or dead-letter entries, transient store errors
retried, and the file's records counted by a scan of their own for the conservation check."""

from __future__ import annotations

import logging
import posixpath
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import apache_beam as beam
from apache_beam.metrics import Metrics
from qurate.doc import dead_letter
from qurate.pipelines.decide import DEAD_LETTER, STATS
from qurate.pipelines.parquet_rows import batch_rows, open_parquet, row_raw
from qurate.pipelines.recipe import InputConfig
from qurate.pipelines.records import Invalid, RecordParser, file_format
from qurate.pipelines.textfile import LongLine, count_records, decompressed_chunks, is_record, iter_lines
from qurate.verdicts import error_text, is_transient

STAGE = "read"
LOG = logging.getLogger(__name__)
ORIGIN = "_origin"  # (id derived?, file, position) while ids are checked for duplicates; removed before any stage
READ_RETRIES = 3  # transient errors (connection, timeout) while reading a file: tries again this often
READ_BACKOFF_S = 0.5
PARQUET_BATCH_ROWS = 1024
T = TypeVar("T")


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


class ReadFileFn(beam.DoFn):
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
        parsed[ORIGIN] = (derived, path, position)
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

        with open_parquet(path) as handle:
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
                        for j, (row, err) in enumerate(batch_rows(batch)):
                            if err is None:
                                yield position + done, self._parser.from_record(row), row
                            else:
                                yield (position + done, Invalid(f"undecodable row: {error_text(err)}"),
                                       row_raw(batch, j))
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

            with open_parquet(path) as handle:
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
