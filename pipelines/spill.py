"""Rows as Arrow tables, and the shard writer's temporary spill files (stage 1 of ``shards.WriteShardedParquet``).

A local Beam runner keeps every element that crosses a fusion boundary in memory, so full rows never cross one:
``SpillFn`` runs fused with whatever produces the rows, buffers up to ``spill_bytes`` of Arrow data per bundle and
writes each group's rows to ``<prefix>/_spill/<run>/<uuid>.spill`` (Parquet, zstd), sorted by the 64-bit hash of
the row's id in small row groups. Only a small record per file goes on: group, path, summed size and the hash
range of each row group, so that a shard reads only the row groups that overlap its hash range.
"""

from __future__ import annotations

import array
import io
import json
import os
import struct
import uuid
from collections.abc import Callable
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue
from qurate.hashing import stable_hash

HASH, KEY, STATS = "_qurate_hash", "_qurate_key", "_qurate_stats"  # spill-only columns, dropped from shards
SPILL_DIR = "_spill"
SPILL_SUFFIX = ".spill"  # not .parquet: no reader of OUT/<sink>/**.parquet may ever list a spill file
_BATCH_ROWS = 1024  # rows turned into Arrow at a time (Arrow's nbytes is what the spill bound counts)
_MAX_LIST_VALUES = 2**31 - 1  # int32 list offsets


def _column(field: pa.Field, values: list[Any]) -> pa.Array:
    """One Arrow column; token lists held as ``array.array`` / numpy arrays are copied in bulk, not per item."""
    if (pa.types.is_list(field.type) and values
            and all(isinstance(v, (array.array, np.ndarray)) for v in values)):
        lengths = np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
        if lengths.sum() <= _MAX_LIST_VALUES:
            offsets = np.zeros(len(values) + 1, dtype=np.int32)
            np.cumsum(lengths, out=offsets[1:])
            dtype = field.type.value_type.to_pandas_dtype()
            flat = np.concatenate([np.asarray(v, dtype=dtype) for v in values])
            return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=field.type.value_type),
                                            type=field.type)
        values = [v.tolist() for v in values]
    return pa.array(values, type=field.type)


def rows_to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """An Arrow table of ``schema`` from row dicts (a missing column value is null)."""
    return pa.Table.from_arrays([_column(f, [r.get(f.name) for r in rows]) for f in schema], schema=schema)


def sort_bytes(key: Any) -> bytes:
    """``key`` (None, int, float, str, bytes, or tuples/lists of them) as bytes that compare as the keys do, so
    Arrow sorts a shard by a binary column instead of Python sorting row dicts. Values of different types at one
    position (which Python refuses to compare) order by type."""
    out = bytearray()
    _encode(key, out)
    return bytes(out)


def _escaped(data: bytes, out: bytearray) -> None:
    out += data.replace(b"\x00", b"\x00\xff")
    out += b"\x00\x00"  # ends below any escaped byte: a prefix sorts first


def _encode(value: Any, out: bytearray) -> None:
    if value is None:
        out.append(0x10)
    elif isinstance(value, int):  # bool too: True == 1
        v = int(value)
        if -(2**63) <= v < 2**63:
            out.append(0x20)
            out += (v + 2**63).to_bytes(8, "big")
        else:  # beyond int64: length first (longer magnitude = further from zero), then the bytes
            n = ((-v if v < 0 else v).bit_length() + 7) // 8
            if n > 255:
                raise ValueError("sort key integer too large")
            out += bytes((0x1F, 255 - n)) + (2 ** (8 * n) + v).to_bytes(n, "big") if v < 0 else \
                bytes((0x21, n)) + v.to_bytes(n, "big")
    elif isinstance(value, float):
        bits = struct.unpack(">Q", struct.pack(">d", value + 0.0))[0]  # + 0.0: -0.0 == 0.0
        bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | (1 << 63)
        out.append(0x30)
        out += bits.to_bytes(8, "big")
    elif isinstance(value, str):
        out.append(0x40)
        _escaped(value.encode("utf-8", "surrogatepass"), out)  # UTF-8 keeps code point order
    elif isinstance(value, (bytes, bytearray)):
        out.append(0x41)
        _escaped(bytes(value), out)
    elif isinstance(value, (tuple, list)):
        out.append(0x50)
        for part in value:
            _encode(part, out)
        out.append(0x01)  # below every type tag: a shorter tuple sorts first
    else:
        raise TypeError(f"a sort key part of type {type(value).__name__} cannot be ordered in a spill file")


def spill_folder(prefix: str, run: str) -> str:
    return FileSystems.join(prefix, SPILL_DIR, run)


def remove_spill_folder(folder: str) -> None:
    """Deletes the spill files of one run (also those of bundle attempts that failed), then the empty folders.
    Only ``<prefix>/_spill/<run>``: qurate never deletes what it did not write."""
    found = FileSystems.match([FileSystems.join(folder, "*")])[0].metadata_list
    if found:
        FileSystems.delete([m.path for m in found])
    if "://" not in folder:
        for path in (folder, os.path.dirname(folder.rstrip("/"))):
            try:
                os.rmdir(path)
            except OSError:  # absent, or not empty (another run's spill folder)
                pass


def read_spill(path: str, row_groups: list[int], lo: int, hi: int | None) -> pa.Table:
    """The rows of ``row_groups`` of a spill file whose id hash is in ``[lo, hi)`` (``hi`` None: no upper end)."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        # a seekable handle: only the row groups asked for are read
        table = pq.ParquetFile(handle).read_row_groups(row_groups, use_threads=False)
    hashes = table.column(HASH)
    mask = pc.greater_equal(hashes, pa.scalar(lo, pa.uint64()))
    if hi is not None:
        mask = pc.and_(mask, pc.less(hashes, pa.scalar(hi, pa.uint64())))
    return table.filter(mask)


def _in_global_window(value: Any) -> WindowedValue:
    return WindowedValue(value, 0, [GlobalWindow()])


class SpillFn(beam.DoFn):
    """``(group, row) -> (group, (spill path, summed size_of, [(min hash, max hash) per row group]))``.

    ``size_of``, ``id_of``, ``sort_key`` and ``stats_of`` are applied here, to the row as produced (fields that
    the schema drops still count); the shard writer reads only the spill columns.
    """

    def __init__(self, folder: str, schema: pa.Schema, size_of: Callable[[dict], float],
                 id_of: Callable[[dict], Any], sort_key: Callable[[dict], Any],
                 stats_of: Callable[[dict], dict[str, float]], spill_bytes: int, row_group_size: int):
        self._folder = folder
        self._schema = schema.append(pa.field(HASH, pa.uint64(), nullable=False)).append(
            pa.field(KEY, pa.binary(), nullable=False)).append(pa.field(STATS, pa.string(), nullable=False))
        self._row_schema = schema
        self._size_of, self._id_of, self._sort_key, self._stats_of = size_of, id_of, sort_key, stats_of
        self._spill_bytes, self._row_group_size = spill_bytes, row_group_size

    def start_bundle(self) -> None:
        self._pending: dict[Any, list[tuple]] = {}
        self._tables: dict[Any, list[pa.Table]] = {}
        self._sizes: dict[Any, float] = {}
        self._bytes = 0
        self._pending_rows = 0

    def process(self, element):
        group, row = element
        stats = self._stats_of(row)
        pending = self._pending.setdefault(group, [])
        pending.append((row, stable_hash(self._id_of(row)), sort_bytes(self._sort_key(row)),
                        json.dumps(stats, sort_keys=True) if stats else "{}"))
        self._sizes[group] = self._sizes.get(group, 0) + self._size_of(row)
        self._pending_rows += 1
        if self._pending_rows >= min(_BATCH_ROWS, max(1, self._spill_bytes // 4096)):  # over all groups
            for name in list(self._pending):
                self._convert(name)
            if self._bytes > self._spill_bytes:
                yield from self._spill_all()

    def finish_bundle(self):
        for record in self._spill_all():
            yield _in_global_window(record)

    def _convert(self, group: Any) -> None:
        pending = self._pending.pop(group, [])
        if not pending:
            return
        self._pending_rows -= len(pending)
        table = rows_to_table([p[0] for p in pending], self._row_schema)
        table = pa.Table.from_arrays(
            [*table.columns, pa.array([p[1] for p in pending], pa.uint64()),
             pa.array([p[2] for p in pending], pa.binary()), pa.array([p[3] for p in pending], pa.string())],
            schema=self._schema)
        self._tables.setdefault(group, []).append(table)
        self._bytes += table.nbytes

    def _spill_all(self):
        for group in list(self._pending):
            self._convert(group)
        tables, sizes = self._tables, self._sizes
        self._tables, self._sizes, self._bytes = {}, {}, 0
        for group, parts in tables.items():
            table = pa.concat_tables(parts)
            del parts[:]
            table = table.take(pc.sort_indices(table, sort_keys=[(HASH, "ascending"), (KEY, "ascending")]))
            hashes = table.column(HASH).to_numpy()
            step = self._row_group_size
            ranges = [(int(hashes[i]), int(hashes[min(i + step, len(hashes)) - 1]))
                      for i in range(0, len(hashes), step)]
            buffer = io.BytesIO()
            pq.write_table(table, buffer, compression="zstd", row_group_size=step)
            del table
            path = FileSystems.join(self._folder, f"{uuid.uuid4().hex}{SPILL_SUFFIX}")
            # Not atomic: only paths reported by a committed bundle are read; a failed attempt's file is an
            # orphan that remove_spill_folder deletes with the rest.
            with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
                handle.write(buffer.getbuffer())
            yield group, (path, sizes.get(group, 0), ranges)
