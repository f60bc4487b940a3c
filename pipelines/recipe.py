"""The recipe: one pydantic schema for the whole run, validated before anything starts.

A recipe is YAML. Every section is optional and has a default; an unknown key or a bad value is an error that
names the key (``RecipeError``), which the CLI turns into one line and exit code 2.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator
from qurate.classifiers.quality_config import QualityConfig
from qurate.decontam.config import DecontamConfig
from qurate.dedup.config import DedupConfig
from qurate.filters.heuristics import HeuristicsConfig
from qurate.filters.langid import LangIdConfig
from qurate.pipelines.section import Section

DEFAULT_RECIPE = Path(__file__).parent / "data" / "default_recipe.yaml"
SAMPLE_CORPUS = Path(__file__).parent / "data" / "sample_corpus.jsonl.gz"


class RecipeError(ValueError):
    """A recipe that cannot run; the message names the bad key."""


class InputConfig(Section):
    paths: list[str] = Field(default_factory=lambda: [str(SAMPLE_CORPUS)])
    format: Literal["auto", "jsonl", "parquet"] = "auto"
    id_field: str | None = "id"  # None or absent in a record: id derived from file + position
    text_field: str = "text"
    source_field: str | None = "source"  # absent: the input file's stem
    max_text_chars: int = Field(5_000_000, gt=0)  # larger documents go to the dead-letter output
    drop_duplicate_ids: bool = True  # later copies of an id go to the dead-letter output

    @field_validator("paths", mode="before")
    @classmethod
    def _one_path_is_a_list(cls, value: Any) -> Any:
        if value in (None, [], ""):
            return [str(SAMPLE_CORPUS)]
        return [value] if isinstance(value, str) else value


class OutputConfig(Section):
    dir: str = "out"
    write_docs: bool = True  # OUT/docs/: kept docs with text and annotations
    write_rejected_text: bool = True  # keep the text of rejected docs (turn off to save space at scale)
    component_key: str = "source"  # the doc field that names a mixture component
    shard_tokens: int = Field(50_000_000, gt=0, le=1_000_000_000)  # target tokens per mixture shard
    shard_chars: int = Field(200_000_000, gt=0)  # target text chars per OUT/docs, rejected, dead_letter shard
    report_examples: int = Field(3, ge=0)  # escaped examples per stage and reason in the report


class TokenizerConfig(Section):
    name: str = "qwen2.5"  # "qwen2.5" (bundled, offline), or a path to a Hugging Face tokenizer.json
    append_eos: bool = True  # <|endoftext|> after every document
    batch_size: int = Field(256, gt=0)


class Recipe(Section):
    seed: int = 0
    stages: list[str] | None = None  # None: every built stage, in canonical order
    input: InputConfig = Field(default_factory=InputConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    # Stage sections (each defined in its stage's package) are added below, one line per stage.
    langid: LangIdConfig = Field(default_factory=LangIdConfig)
    heuristics: HeuristicsConfig = Field(default_factory=HeuristicsConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    decontam: DecontamConfig = Field(default_factory=DecontamConfig)

    def fingerprint(self) -> str:
        """A hash of everything that decides the output (the output dir excluded)."""
        data = self.model_dump(mode="json")
        data["output"].pop("dir", None)
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _format_error(err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "<recipe>"
    if first["type"] == "extra_forbidden":
        return f"unknown key '{key}' in recipe"
    return f"bad value for '{key}': {first['msg']}"


def parse_recipe(data: dict[str, Any] | None) -> Recipe:
    """Validate a recipe given as a mapping."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError("recipe must be a mapping of sections (input, output, stages, ...)")
    try:
        return Recipe.model_validate(data)
    except ValidationError as err:
        raise RecipeError(_format_error(err)) from None


def load_recipe(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Recipe:
    """Load a YAML recipe (the bundled default when ``path`` is None) and apply dotted-key overrides."""
    path = Path(path) if path else DEFAULT_RECIPE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError(f"recipe file not found: {path}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise RecipeError(f"recipe {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    data = data or {}
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {path} must be a mapping of sections (input, output, stages, ...)")
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return parse_recipe(data)
