"""Benchmark items from the bundled files, user JSONL/Parquet files and Hugging Face datasets.

Every source yields ``BenchItem(benchmark, id, text)``. ``sources_fingerprint`` says whether a cached index built
from the same sources can be reused.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from qurate.decontam.config import BUNDLED_SUFFIX, DATA_DIR, BenchmarkFile, DecontamConfig, HFBenchmark
from qurate.textlines import iter_json_lines


class BenchItem(NamedTuple):
    benchmark: str
    id: str
    text: str


def _jsonl_lines(raw: bytes, name: str) -> Iterator[dict[str, Any]]:
    # qurate's one line reader (qurate.textlines): every compressed frame, a BOM, lines split at "\n" only
    for line in iter_json_lines(raw, name):
        yield json.loads(line.decode("utf-8"))


def bundled_items(name: str) -> Iterator[BenchItem]:
    path = DATA_DIR / f"{name}{BUNDLED_SUFFIX}"
    for rec in _jsonl_lines(path.read_bytes(), path.name):
        yield BenchItem(rec["benchmark"], str(rec["id"]), rec["text"])


def _record_item(rec: dict[str, Any], position: int, benchmark: str, id_field: str | None,
                 benchmark_field: str | None, text_fields: list[str]) -> BenchItem:
    missing = [f for f in text_fields if f not in rec]
    if len(missing) == len(text_fields):
        raise ValueError(f"record {position} has none of the text fields {text_fields}")
    text = "\n".join(str(rec[f]) for f in text_fields if rec.get(f) is not None)
    item_id = rec.get(id_field) if id_field else None
    name = rec.get(benchmark_field) if benchmark_field else None
    return BenchItem(str(name or benchmark), str(item_id if item_id is not None else position), text)


def file_items(spec: BenchmarkFile) -> Iterator[BenchItem]:
    """Items of a user file (or glob), read through Beam's filesystems so cloud paths work too."""
    from apache_beam.io.filesystems import FileSystems

    matches = [m.path for r in FileSystems.match([spec.path]) for m in r.metadata_list]
    if not matches:
        raise FileNotFoundError(f"decontam.files: no file matches {spec.path}")
    for path in sorted(matches):
        stem = Path(path).name.split(".")[0]
        benchmark = spec.benchmark or stem
        fmt = spec.format
        if fmt == "auto":
            fmt = "parquet" if path.endswith(".parquet") else "jsonl"
        with FileSystems.open(path, compression_type="uncompressed") as handle:
            raw = handle.read()
        if fmt == "parquet":
            import pyarrow.parquet as pq

            records: Iterator[dict[str, Any]] = iter(pq.read_table(io.BytesIO(raw)).to_pylist())
        else:
            records = _jsonl_lines(raw, path)
        for position, rec in enumerate(records):
            yield _record_item(rec, position, benchmark, spec.id_field, spec.benchmark_field, spec.text_fields)


def hf_items(spec: HFBenchmark) -> Iterator[BenchItem]:
    """Items of a dataset loaded by ``datasets.load_dataset`` (needs network for hub ids)."""
    try:
        import datasets
    except ImportError as err:  # datasets is an optional dependency
        raise ImportError("decontam.hf needs the 'datasets' package (pip install datasets)") from err
    kwargs: dict[str, Any] = {"split": spec.split}
    if spec.data_files:
        kwargs["data_files"] = spec.data_files
    dataset = datasets.load_dataset(spec.name, spec.config, **kwargs)
    benchmark = spec.benchmark or (f"{spec.name}/{spec.config}" if spec.config else spec.name)
    for position, rec in enumerate(dataset):
        yield _record_item(rec, position, benchmark, spec.id_field, None, spec.text_fields)


def iter_items(config: DecontamConfig) -> Iterator[BenchItem]:
    for name in config.bundled():
        yield from bundled_items(name)
    for spec in config.files:
        yield from file_items(spec)
    for hf in config.hf:
        yield from hf_items(hf)


def sources_fingerprint(config: DecontamConfig) -> str | None:
    """A hash naming the benchmark sources, or None when they cannot be pinned (HF datasets may change)."""
    if config.hf:
        return None
    parts: list[Any] = []
    for name in config.bundled():
        path = DATA_DIR / f"{name}{BUNDLED_SUFFIX}"
        parts.append([name, hashlib.sha256(path.read_bytes()).hexdigest()[:16]])
    for spec in config.files:
        from apache_beam.io.filesystems import FileSystems

        files = sorted((m.path, m.size_in_bytes, getattr(m, "last_updated_in_seconds", 0))
                       for r in FileSystems.match([spec.path]) for m in r.metadata_list)
        parts.append([spec.model_dump(mode="json"), files])
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]
