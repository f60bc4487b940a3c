"""The recipe: one pydantic schema for the whole run, validated before anything starts.

A recipe is YAML. Every section is optional and has a default; an unknown key or a bad value is an error that
names the key (``RecipeError``), which the CLI turns into one line and exit code 2.

This module holds the schema (the base sections, and the ``Recipe`` class assembled from every stage spec's
section), its validation and loading; ``recipe_yaml`` reads YAML strictly, ``recipe_dump`` writes a recipe out.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, Field, ValidationError, create_model, field_validator
from qurate.pipelines import registry
from qurate.pipelines.pack_config import PackConfig  # the `pack` section (trainer exports)
from qurate.section import Section

DEFAULT_RECIPE = Path(__file__).parent / "data" / "default_recipe.yaml"
SAMPLE_CORPUS = Path(__file__).parent / "data" / "sample_corpus.jsonl.gz"


class RecipeError(ValueError):
    """A recipe that cannot run; the message names the bad key."""


class InputConfig(Section):
    paths: list[str] = Field(default_factory=lambda: [str(SAMPLE_CORPUS)], description=(
        "input files, globs or directories (a directory stands for the *.jsonl[.gz|.zst|.bz2|.xz] and *.parquet "
        "files inside it); empty: the bundled sample corpus"))
    format: Literal["auto", "jsonl", "parquet"] = Field("auto", description=(
        "input format; auto: by file suffix (.parquet, else JSON lines)"))
    id_field: str | None = Field("id", description=(
        "record field holding the document id; null, or absent in a record: an id derived from file + position"))
    text_field: str = Field("text", description="record field holding the document text")
    source_field: str | None = Field("source", description=(
        "record field naming the document's source (its mixture component); absent: the input file's stem"))
    max_text_chars: int = Field(5_000_000, gt=0, description=(
        "documents with more characters go to the dead-letter output"))
    drop_duplicate_ids: bool = Field(True, description="later copies of an id go to the dead-letter output")

    @field_validator("paths", mode="before")
    @classmethod
    def _one_path_is_a_list(cls, value: Any) -> Any:
        if value in (None, [], ""):
            return [str(SAMPLE_CORPUS)]
        return [value] if isinstance(value, str) else value


class OutputConfig(Section):
    dir: str = Field("out", description="output directory (an existing run in it is replaced)")
    write_docs: bool = Field(True, description="also write OUT/docs/: kept docs with text and annotations")
    write_rejected_text: bool = Field(True, description=(
        "keep the text of rejected docs in OUT/rejected/ (turn off to save space at scale)"))
    count_rejected_tokens: bool = Field(True, description=(
        "tokenize rejected docs too, so the manifest and report give the tokens each stage removed; this is a "
        "tokenizer pass over everything rejected (often most of the input): false skips it, and rejected rows "
        "and the report's token funnel then have no token counts"))
    component_key: str = Field("source", description="the doc field that names a mixture component")
    shard_tokens: int = Field(50_000_000, gt=0, le=1_000_000_000, description="target tokens per mixture shard")
    shard_chars: int = Field(200_000_000, gt=0, description=(
        "target text characters per OUT/docs, OUT/rejected and OUT/dead_letter shard"))
    report_examples: int = Field(3, ge=0, description="escaped examples per stage and reason in the report")
    checkpoints: Literal["auto", "on", "off"] = Field("auto", description=(
        "stage checkpoints in OUT/_stages (one Beam job per stage; `qurate run --resume` restarts after the last "
        "finished stage; outputs unchanged); auto: on for local runners when the input is 64 MB or more, off "
        "for small inputs and for Dataflow/Flink/Spark, where they trade extra I/O and job starts for "
        "restartability"))

    @field_validator("checkpoints", mode="before")
    @classmethod
    def _yaml_on_off(cls, value: Any) -> Any:  # YAML reads a bare on/off as true/false
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value

    @field_validator("component_key")
    @classmethod
    def _a_doc_field(cls, value: str) -> str:
        from qurate.doc import FIELD_TYPES, Doc

        fields = set(Doc.__annotations__) | set(FIELD_TYPES)
        if value not in fields:  # a typo would put every doc in one "unknown" component
            raise ValueError(f"'{value}' is not a doc field (one of: {', '.join(sorted(fields))})")
        return value


class TokenizerConfig(Section):
    name: str = Field("qwen2.5", description=(
        "the mixture's tokenizer: qwen2.5 (bundled, offline) or a path to a Hugging Face tokenizer.json"))
    append_eos: bool = Field(True, description="append the end-of-text token (<|endoftext|>) to every document")
    batch_size: int = Field(256, gt=0, description="documents tokenized per batch")


class HealthConfig(Section):
    """When a finished run counts as failed (non-zero exit; the outputs are still written for inspection)."""

    max_dead_letter_share: float = Field(0.01, ge=0, le=1, description=(
        "the run fails when more than this share of the records read ends in the dead-letter output"))
    fail_on_empty_mixture: bool = Field(True, description="the run fails when the mixture holds no document")


class RecipeBase(Section):
    seed: int = Field(0, description="seed of every sampling and tie-break (a keyed hash of doc id and seed)")
    stages: list[str] | None = Field(None, description=(
        "stages to run, in canonical order; null: every default stage (`qurate stages` lists them)"))
    input: InputConfig = Field(default_factory=InputConfig, description="what to read")
    output: OutputConfig = Field(default_factory=OutputConfig, description="what to write, and where")
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig, description="the mixture's tokenizer")
    health: HealthConfig = Field(default_factory=HealthConfig, description=(
        "when a finished run counts as failed"))
    # ---- trainer exports (pipelines/pack_config.py, issue 12) ----
    pack: PackConfig = Field(default_factory=PackConfig, description=(
        "trainer-ready outputs beside the Parquet mixture: Megatron .bin/.idx, packed sequences, weights"))

    def section(self, stage: str) -> Section:
        """The recipe section of a stage, by the stage's name (its defaults for a stage registered after the
        recipe class was assembled)."""
        value = getattr(self, stage, None)
        return value if value is not None else registry.get(stage).config()

    def fingerprint(self) -> str:
        """A hash of everything that decides the output (the output dir excluded)."""
        data = self.model_dump(mode="json")
        data["output"].pop("dir", None)
        data["output"].pop("checkpoints", None)  # how the run is executed, not what it writes
        data.pop("health", None)  # decides the exit code, not the output
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _make_recipe() -> type[RecipeBase]:
    # Every stage's section comes from its spec (a plug-in stage brings its own), under the stage's name.
    fields: dict[str, Any] = {
        spec.name: (spec.config, Field(default_factory=spec.config, description=spec.description or None))
        for spec in registry.specs()
    }
    return create_model("Recipe", __base__=RecipeBase, **fields)


Recipe = _make_recipe()


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that holds the key at ``loc`` (for suggestions), following nested sections."""
    model: Any = Recipe
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return None
        inner = [t for t in (field.annotation, *get_args(field.annotation))
                 if isinstance(t, type) and issubclass(t, BaseModel)]
        if not inner:
            return None
        model = inner[0]
    return model


def suggest_key(loc: tuple[Any, ...]) -> str | None:
    """The valid key closest to the unknown one at ``loc`` (dotted), or None if nothing is close."""
    model = _model_at(loc)
    if model is None or not isinstance(loc[-1], str):
        return None
    close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1, cutoff=0.6)
    return ".".join(str(p) for p in (*loc[:-1], close[0])) if close else None


def _format_error(err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "<recipe>"
    if first["type"] == "extra_forbidden":
        hint = suggest_key(tuple(first["loc"]))
        return f"unknown key '{key}' in recipe" + (f" (did you mean '{hint}'?)" if hint else "")
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
    from qurate.pipelines.recipe_yaml import load_yaml  # here: it raises RecipeError, defined above

    path = Path(path) if path else DEFAULT_RECIPE
    try:
        data = load_yaml(path.read_text(encoding="utf-8"), str(path))
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
            if not isinstance(node, dict):
                raise RecipeError(f"cannot set '{dotted}': '{part}' is not a section")
        node[leaf] = value
    return parse_recipe(data)


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """``--set a.b=value`` items as dotted-key overrides; values are YAML (``0.7``, ``true``, ``[en, de]``)."""
    overrides: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"--set needs key=value (e.g. --set dedup.threshold=0.7), got '{item}'")
        try:
            overrides[key.strip()] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            raise RecipeError(f"--set {key}: value '{text}' is not valid YAML") from None
    return overrides
