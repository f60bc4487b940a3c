"""The ``decontam`` recipe section: which benchmarks to decontaminate against and Qwen2.5's thresholds."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from qurate.pipelines.section import Section

DATA_DIR = Path(__file__).parent / "data"
BUNDLED_SUFFIX = ".jsonl.zst"


def bundled_names() -> list[str]:
    """Names of the benchmarks shipped in ``decontam/data`` (see its PROVENANCE.md)."""
    return sorted(p.name[: -len(BUNDLED_SUFFIX)] for p in DATA_DIR.glob("*" + BUNDLED_SUFFIX))


class BenchmarkFile(Section):
    """A user's benchmark as JSONL (optionally .gz/.zst) or Parquet, with a mapping of its fields."""

    path: str  # local path or any Beam filesystem URL; a glob matches several files
    format: Literal["auto", "jsonl", "parquet"] = "auto"
    benchmark: str | None = None  # the name in reasons and the report; default: the file's stem
    benchmark_field: str | None = None  # per-record benchmark name (overrides ``benchmark``)
    id_field: str | None = "id"  # None or missing in a record: the record's position
    text_fields: list[str] = Field(default_factory=lambda: ["text"], min_length=1)  # joined with a line break

    @field_validator("text_fields", mode="before")
    @classmethod
    def _one_field_is_a_list(cls, value):
        return [value] if isinstance(value, str) else value


class HFBenchmark(Section):
    """A benchmark loaded with ``datasets.load_dataset`` (hub id, local folder or a builder like ``json``)."""

    name: str
    config: str | None = None
    split: str = "test"
    data_files: list[str] | None = None
    benchmark: str | None = None  # default: the dataset name (and config)
    id_field: str | None = None
    text_fields: list[str] = Field(default_factory=lambda: ["text"], min_length=1)

    @field_validator("text_fields", "data_files", mode="before")
    @classmethod
    def _one_is_a_list(cls, value):
        return [value] if isinstance(value, str) else value


class DecontamConfig(Section):
    # Bundled benchmarks to load ("all" = every one); [] loads none (then ``files``/``hf`` must name some).
    benchmarks: list[str] = Field(default_factory=lambda: ["all"])
    files: list[BenchmarkFile] = Field(default_factory=list)
    hf: list[HFBenchmark] = Field(default_factory=list)
    ngram: int = Field(13, ge=4, le=64)  # candidate n-gram length, in tokens
    min_lcs: int = Field(13, ge=1)  # Qwen2.5: |LCS| >= 13 ...
    min_ratio: float = Field(0.6, gt=0, le=1)  # ... and |LCS| >= 0.6 x min(|doc window|, |item|)
    action: Literal["drop", "excise"] = "drop"  # excise: cut the contaminated spans, keep the rest
    max_candidates: int = Field(64, ge=1)  # items verified per doc (those sharing the most n-grams first)
    cache_dir: str | None = None  # prebuilt index cache; None: $QURATE_CACHE or ~/.cache/qurate; "": off
    batch_size: int = Field(64, gt=0)

    @field_validator("benchmarks", mode="before")
    @classmethod
    def _names(cls, value):
        if isinstance(value, str):
            value = [value]
        known = bundled_names()
        for name in value or []:
            if name != "all" and name not in known:
                raise ValueError(f"unknown benchmark '{name}' (bundled: all, {', '.join(known)})")
        return value

    @model_validator(mode="after")
    def _something_to_load(self):
        if not self.benchmarks and not self.files and not self.hf:
            raise ValueError("no benchmarks: set benchmarks, files or hf")
        return self

    def bundled(self) -> list[str]:
        """The bundled benchmark names this config loads, sorted."""
        if "all" in self.benchmarks:
            return bundled_names()
        return sorted(set(self.benchmarks))
