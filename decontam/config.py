"""The ``decontam`` recipe section: which benchmarks to decontaminate against and Qwen2.5's thresholds."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from qurate.section import Section

DATA_DIR = Path(__file__).parent / "data"
BUNDLED_SUFFIX = ".jsonl.zst"


def bundled_names() -> list[str]:
    """Names of the benchmarks shipped in ``decontam/data`` (see its PROVENANCE.md)."""
    return sorted(p.name[: -len(BUNDLED_SUFFIX)] for p in DATA_DIR.glob("*" + BUNDLED_SUFFIX))


class BenchmarkFile(Section):
    """A user's benchmark as JSONL (optionally .gz/.zst) or Parquet, with a mapping of its fields."""

    path: str = Field(description="local path or any Beam filesystem URL; a glob matches several files")
    format: Literal["auto", "jsonl", "parquet"] = Field("auto", description="auto: by the file's extension")
    benchmark: str | None = Field(None, description="the name in reasons and the report; default: the file's "
                                                    "stem")
    benchmark_field: str | None = Field(None, description="per-record benchmark name (overrides benchmark)")
    id_field: str | None = Field("id", description="item id field; null or missing in a record: the record's "
                                                   "position")
    text_fields: list[str] = Field(default_factory=lambda: ["text"], min_length=1,
                                   description="fields joined with a line break into the item's text")

    @field_validator("text_fields", mode="before")
    @classmethod
    def _one_field_is_a_list(cls, value):
        return [value] if isinstance(value, str) else value


class HFBenchmark(Section):
    """A benchmark loaded with ``datasets.load_dataset`` (hub id, local folder or a builder like ``json``)."""

    name: str = Field(description="hub id, local folder or builder name (json, parquet, ...)")
    config: str | None = Field(None, description="the dataset's configuration")
    split: str = Field("test", description="the split to read")
    data_files: list[str] | None = Field(None, description="data files for a builder like json")
    benchmark: str | None = Field(None, description="the name in reasons and the report; default: the dataset "
                                                    "name (and config)")
    id_field: str | None = Field(None, description="item id field; null: the record's position")
    text_fields: list[str] = Field(default_factory=lambda: ["text"], min_length=1,
                                   description="fields joined with a line break into the item's text")

    @field_validator("text_fields", "data_files", mode="before")
    @classmethod
    def _one_is_a_list(cls, value):
        return [value] if isinstance(value, str) else value


class DecontamConfig(Section):
    benchmarks: list[str] = Field(default_factory=lambda: ["all"],
                                  description="bundled benchmarks to load ('all': every one); [] loads none "
                                              "(then files or hf must name some)")
    files: list[BenchmarkFile] = Field(default_factory=list, description="your benchmarks as JSONL or Parquet")
    hf: list[HFBenchmark] = Field(default_factory=list, description="benchmarks from Hugging Face datasets")
    ngram: int = Field(13, ge=4, le=64, description="candidate n-gram length, in tokens")
    min_lcs: int = Field(13, ge=1, description="Qwen2.5: |LCS| >= 13 tokens ...")
    min_ratio: float = Field(0.6, gt=0, le=1, description="... and |LCS| >= this x min(|doc window|, |item|)")
    action: Literal["drop", "excise"] = Field("drop", description="excise: cut the contaminated spans out and "
                                                                  "keep the rest")
    max_candidates: int = Field(64, ge=1, description="items verified per doc (those sharing the most n-grams "
                                                      "first)")
    cache_dir: str | None = Field(None, description="index cache folder; null: $QURATE_CACHE or "
                                                    "~/.cache/qurate; '': no cache")
    batch_size: int = Field(64, gt=0, description="docs per tokenizer call")

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
