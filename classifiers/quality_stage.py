"""The ``quality`` stage, declared once: every doc scored on the rubric's dimensions (by the LLM judge or the
classifier distilled from it) through RunInference, then kept or rejected by the recipe's keep rule.

The per-document code, the stats it emits and the report section built from them are in ``quality.py``.
"""

from __future__ import annotations

from qurate.classifiers.quality import QualityBatchModel, check_classifier, report
from qurate.classifiers.quality_config import QualityConfig
from qurate.spec import StageContext, StageSpec


def make_model(config: QualityConfig, ctx: StageContext) -> QualityBatchModel:
    return QualityBatchModel(config, ctx.seed)


def check(config: QualityConfig, ctx: StageContext) -> None:
    """Start-up checks on the launcher: the classifier and its dimensions, or the judge's dependencies."""
    if config.backend == "classifier":
        check_classifier(config)
        return
    import importlib.util

    missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
    if config.judge.engine == "vllm" and importlib.util.find_spec("vllm") is None:
        missing.append("vllm")
    if config.judge.engine == "openai":
        missing = [m for m in missing if m != "torch"]  # the HTTP engine only tokenizes locally
    if missing:
        raise ValueError(f"quality.backend: judge ({config.judge.engine}) needs {', '.join(missing)}: "
                         "pip install 'qurate[llm]' (and torch)")


STAGE = StageSpec(
    name="quality",
    order=40,
    config=QualityConfig,
    model=make_model,
    report=report,
    check=check,
    description="score docs on a rubric (LLM judge or the classifier distilled from it); keep by weighted mean",
    extras=("llm",),
)
