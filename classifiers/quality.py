"""Quality scoring for the ``quality`` stage: the scorer (judge or distilled classifier), its Beam
``ModelHandler`` for RunInference, and the keep rule. Plain Python apart from the handler; no torch unless the
judge backend is chosen.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from apache_beam.ml.inference.base import ModelHandler, PredictionResult
from qurate.classifiers.quality_config import QualityConfig
from qurate.pipelines.write import stable_hash

LOG = logging.getLogger(__name__)
BELOW, SAMPLED_OUT = "quality_below_threshold", "quality_sampled_out"


class Scorer(Protocol):
    def score_texts(self, texts: Sequence[str]) -> list[dict[str, float]]: ...


def load_scorer(cfg: QualityConfig) -> Scorer:
    """The configured scorer; a classifier must have been trained on the recipe's dimensions."""
    names = [d.name for d in cfg.dimensions]
    if cfg.backend == "classifier":
        from qurate.classifiers.distill import QualityModel

        model = QualityModel.load(cfg.classifier_file())
        if sorted(model.dimensions) != sorted(names):
            raise ValueError(f"classifier {cfg.classifier_file()} scores {model.dimensions}, but the recipe's "
                             f"quality.dimensions are {names}; retrain with `qurate train-quality`")
        return model
    from qurate.classifiers.judge import make_judge

    return make_judge(cfg)


def keep_decision(cfg: QualityConfig, seed: int, doc_id: str, scores: dict[str, float]) -> tuple[float, str | None]:
    """(aggregate score, None to keep or the rejection reason)."""
    agg = cfg.aggregate(scores)
    if agg >= cfg.threshold:
        return agg, None
    floor = cfg.threshold - cfg.soft_band
    if cfg.soft_band > 0 and agg > floor:
        p = (agg - floor) / cfg.soft_band
        # A keyed hash, not arrival order: the same doc gets the same draw on every runner.
        if stable_hash(doc_id, seed) / 2.0**64 < p:
            return agg, None
        return agg, f"{SAMPLED_OUT}: {agg:.3f} (keep probability {p:.2f})"
    return agg, f"{BELOW}: {agg:.3f} < {cfg.threshold:.2f}"


class QualityModelHandler(ModelHandler[dict, PredictionResult, Any]):
    """RunInference handler: batches of docs in, ``PredictionResult(doc, {dim: score} | {"error": ...})`` out.

    Beam batches the docs and keeps one scorer per worker process. A batch that fails is retried one doc at a
    time, so one bad document is reported alone instead of taking its batch down.
    """

    def __init__(self, cfg: QualityConfig):
        batch = cfg.judge.batch_size * 4 if cfg.backend == "judge" else cfg.batch_size
        super().__init__(min_batch_size=1, max_batch_size=batch)
        self.cfg = cfg
        self._progress = None

    def load_model(self) -> Scorer:
        return load_scorer(self.cfg)

    def run_inference(self, batch: Sequence[dict], model: Scorer,
                      inference_args: dict[str, Any] | None = None) -> Iterable[PredictionResult]:
        texts = [doc["text"] for doc in batch]
        try:
            scores: list[Any] = model.score_texts(texts)
        except Exception as err:  # isolate the culprit(s)
            LOG.warning("quality: batch of %d failed (%s); scoring one by one", len(batch), err)
            scores = []
            for text in texts:
                try:
                    scores.append(model.score_texts([text])[0])
                except Exception as one:
                    scores.append({"error": f"{type(one).__name__}: {one}"})
        if self.cfg.backend == "judge":
            self._show_progress(len(batch))
        return [PredictionResult(doc, s) for doc, s in zip(batch, scores)]

    def _show_progress(self, n: int) -> None:
        from qurate.classifiers.judge import Progress

        if self._progress is None:
            self._progress = Progress("quality judge", every_s=30.0)
        self._progress.add(n)

    def get_metrics_namespace(self) -> str:
        return "qurate_quality"

    def get_num_bytes(self, batch: Sequence[dict]) -> int:
        return sum(len(doc.get("text") or "") for doc in batch)
