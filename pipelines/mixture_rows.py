"""The rows the exports read back from a run's Parquet mixture (tokens as numpy arrays)."""

from __future__ import annotations

import os
from collections.abc import Iterable

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems
from qurate.pipelines.export_keys import Row

TOKEN_DTYPE = np.int32  # Qwen's vocabulary (151,665 ids) needs 32 bits; torch and Megatron read int32
MIXTURE_COLUMNS = ["tokens", "n_tokens", "id", "lang", "domain", "source", "repeat"]


def table_rows(item: tuple[str, pa.Table]) -> Iterable[Row]:
    """Rows of one Parquet batch, tokens as numpy arrays (one bulk copy per batch, not a list per token)."""
    filename, table = item
    folder = os.path.basename(os.path.dirname(filename))
    tokens = table.column("tokens").combine_chunks()
    offsets = tokens.offsets.to_numpy()
    values = tokens.values.to_numpy(zero_copy_only=False).astype(TOKEN_DTYPE, copy=False)
    meta = table.drop_columns(["tokens"]).to_pylist()
    for i, row in enumerate(meta):
        row["tokens"] = values[offsets[i]:offsets[i + 1]].copy()
        row["parquet_component"] = folder
        yield row


class ReadMixture(beam.PTransform):
    """Parquet mixture files -> rows (``Row``)."""

    def __init__(self, files: list[str]):
        super().__init__()
        self.files = sorted(files)

    def expand(self, pbegin):
        return (
            pbegin
            | "Files" >> beam.Create(self.files)
            | "Read" >> beam.io.ReadAllFromParquetBatched(columns=MIXTURE_COLUMNS, with_filename=True)
            | "Rows" >> beam.FlatMap(table_rows)
        )


def mixture_files(out_dir: str) -> list[str]:
    """Every ``OUT/mixture/<component>/part-*.parquet`` of a run."""
    pattern = FileSystems.join(out_dir, "mixture", "*", "*.parquet")
    return sorted(m.path for r in FileSystems.match([pattern]) for m in r.metadata_list)
