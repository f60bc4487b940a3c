"""Parquet input, robustly: a seekable handle on a (possibly compressed) file, and a record batch's rows with an
undecodable row isolated and kept as escaped raw values."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from typing import Any, BinaryIO

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from qurate.pipelines.textfile import compression_of, decompressed


def row_raw(batch, j: int) -> dict[str, Any]:
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


def batch_rows(batch) -> Iterator[tuple[dict[str, Any] | None, BaseException | None]]:
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
def open_parquet(path: str) -> Iterator[BinaryIO]:
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
