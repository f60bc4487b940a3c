"""The ``synth`` stage's Beam wiring (TestPipeline + assert_that) with real tiny random-weight Qwen2 models:
synthetic docs join the stream, every request is accounted for, a re-run replays every answer from the cache,
a generator failing on some prompts sends them to the dead letter, and decontamination removes a synthetic doc
that reproduces a benchmark item."""

from __future__ import annotations

import gzip
import json

import apache_beam as beam
import apache_beam.ml.inference.base  # noqa: F401  (pipelines/decide.py reads beam.ml at import)
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from conftest import SAMPLE_CORPUS
from qurate.pipelines.decide import DEAD_LETTER, KEPT, REJECTED, STATS, build_stage
from qurate.pipelines.registry import get
from qurate.spec import StageContext
from qurate.synth.config import SynthConfig
from qurate.synth.tasks import synthetic_id

pytest.importorskip("torch")

TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, tie_word_embeddings=True)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from qurate.classifiers.random_models import save_random_qwen2

    return save_random_qwen2(tmp_path_factory.mktemp("tiny_qwen2"), TINY, seed=0, init_std=0.5)


@pytest.fixture(scope="module")
def sample_docs():
    docs = []
    with gzip.open(SAMPLE_CORPUS, "rt", encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            if i % 200 == 0:
                record = json.loads(line)
                docs.append({"id": str(record.get("id", i)), "text": record["text"], "source": "sample",
                             "lang": "en", "quality_score": 1.0 + (i % 3)})
    return docs[:8]


def _sum(values):
    out: dict[str, float] = {}
    for v in values:
        for k, x in v.items():
            out[k] = out.get(k, 0) + x
    return out


def _capture(folder, name: str):
    """A matcher that hands the PCollection back through a file (matchers run on pickled copies)."""
    path = str(folder / f"{name}.pickle")

    def match(actual):
        import pickle

        with open(path, "wb") as handle:
            pickle.dump(list(actual), handle)
    return match


def run_synth(config: SynthConfig, docs: list[dict], extra_stage=None) -> dict[str, list]:
    """Runs the synth stage (then ``extra_stage`` on its kept docs) in a TestPipeline; returns every output."""
    import pickle
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="synth-out-"))
    ctx = StageContext(seed=3)
    with TestPipeline() as p:
        out = p | beam.Create(docs) | "Synth" >> build_stage(get("synth"), config, ctx)
        stats = out[STATS] | beam.CombinePerKey(_sum)
        assert_that(out[KEPT], _capture(folder, "kept"), label="kept")
        assert_that(out[REJECTED], _capture(folder, "rejected"), label="rejected")
        assert_that(out[DEAD_LETTER], _capture(folder, "dead"), label="dead")
        assert_that(stats, _capture(folder, "stats"), label="stats")
        if extra_stage is not None:
            spec, section = extra_stage
            after = out[KEPT] | "Then" >> build_stage(spec, section, ctx)
            assert_that(after[KEPT], _capture(folder, "then_kept"), label="then_kept")
            assert_that(after[REJECTED], _capture(folder, "then_rejected"), label="then_rejected")
    return {path.stem: pickle.loads(path.read_bytes()) for path in folder.glob("*.pickle")}


def _config(tiny_dir, cache, **kw) -> SynthConfig:
    base = dict(
        tasks=[{"name": "rephrase", "template": "rephrase_wiki", "n": 2, "max_tokens": 6, "max_seeds": 4,
                "min_quality": 1.5, "max_seed_chars": 300}],
        generator={"model": str(tiny_dir), "dtype": "float32", "batch_size": 4},
        rewards={"judge": {"judge": {"model": str(tiny_dir), "dtype": "float32", "max_doc_tokens": 48}}},
        keep={"best_of_n": 1}, cache_dir=str(cache))
    base.update(kw)
    return SynthConfig(**base)


def test_synthetic_docs_join_the_stream_and_rerun_replays_from_cache(tiny_dir, sample_docs, tmp_path):
    config = _config(tiny_dir, tmp_path / "cache")
    first = run_synth(config, sample_docs)
    stats = dict(first["stats"])
    task = stats[("task", "rephrase")]
    synthetic = [d for d in first["kept"] if d["source"] == "synthetic/rephrase"]
    seeds = {d["id"] for d in sample_docs if d["quality_score"] >= 1.5}
    # the stream passes unchanged; best-of-1 keeps at most one doc per prompt
    assert sorted(d["id"] for d in first["kept"] if d["source"] == "sample") == sorted(d["id"] for d in sample_docs)
    assert 1 <= len(synthetic) <= min(4, len(seeds)) and task["prompts"] == min(4, len(seeds))
    for doc in synthetic:
        syn = doc["synthetic"]
        assert syn["seed_id"] in seeds and syn["task"] == "rephrase" and syn["generator"].startswith("transformers:")
        assert doc["id"] == synthetic_id(syn["seed_id"], "rephrase", syn["sample"], 3)
        assert 0 <= syn["rewards"]["judge"] <= 5 and "combined" in syn["rewards"]
        assert not any(k.startswith("_") for k in doc)
    assert all(r["stage"] == "synth" and r["source"] == "synthetic/rephrase" and "judge=" in r["reason"]
               for r in first["rejected"])
    # conservation: every request ends as a kept synthetic doc, a rejected one or a dead-letter entry
    added = stats[("added",)]["docs"]
    assert added == task["requests"] == 2 * task["prompts"]
    assert added == len(synthetic) + len(first["rejected"]) + len(first["dead"])
    assert task["model_calls"] == added and task["cache_hits"] == 0 and task["rm_calls"] == task["candidates"]
    assert any(k[0] == "example" for k in stats) and any(k[0] == "hist" for k in stats)

    second = run_synth(config, sample_docs)
    again = dict(second["stats"])[("task", "rephrase")]
    assert again["model_calls"] == 0 and again["cache_hits"] == added  # every answer replayed
    assert again["rm_calls"] == 0 and again["rm_cache_hits"] == task["candidates"]
    key = lambda d: d["id"]  # noqa: E731
    assert sorted(second["kept"], key=key) == sorted(first["kept"], key=key)
    assert sorted(second["rejected"], key=key) == sorted(first["rejected"], key=key)


def test_a_generator_failing_on_some_prompts_sends_them_to_the_dead_letter(tiny_dir, sample_docs, tmp_path):
    """Prompts longer than the generator's context fail (a real error of the engine); the rest go on."""
    docs = [dict(d, text=d["text"][:200] if i % 2 else (d["text"] + " ") * 4) for i, d in enumerate(sample_docs)]
    config = _config(tiny_dir, tmp_path / "cache", generator={"model": str(tiny_dir), "dtype": "float32",
                                                              "batch_size": 4, "max_context": 260},
                     tasks=[{"name": "rephrase", "template": "rephrase_wiki", "n": 2, "max_tokens": 6,
                             "max_seed_chars": 3000}], rewards={"judge": None}, keep={"best_of_n": 0})
    out = run_synth(config, docs)
    stats = dict(out["stats"])
    long_ids = {d["id"] for i, d in enumerate(docs) if not i % 2}
    dead_seeds = {json.loads(e["raw"])["seed_id"] for e in out["dead"]}
    assert dead_seeds == long_ids
    assert all(e["stage"] == "synth" and e["error"].startswith("PromptTooLong") for e in out["dead"])
    made = [d for d in out["kept"] if d["source"].startswith("synthetic/")] + out["rejected"]
    assert {d["synthetic"]["seed_id"] for d in made} == {d["id"] for d in docs} - long_ids
    assert stats[("added",)]["docs"] == len(made) + len(out["dead"]) == 2 * len(docs)
    assert stats[("task", "rephrase")]["failed"] == len(out["dead"])


def test_decontam_removes_a_synthetic_doc_that_reproduces_a_benchmark_item(tiny_dir, sample_docs, tmp_path):
    """A GSM8K test item used as a math seed: the synthetic problem + solution carries it, and the decontam stage
    (run after synth, as in the canonical order) drops that synthetic doc."""
    import zstandard
    from qurate.decontam.config import DATA_DIR, DecontamConfig

    raw = zstandard.ZstdDecompressor().decompress((DATA_DIR / "gsm8k.jsonl.zst").read_bytes(),
                                                  max_output_size=1 << 28)
    item = json.loads(raw.decode("utf-8").splitlines()[0])
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"id": "seed-gsm8k-0", "text": item["text"]}) + "\n", encoding="utf-8")
    config = _config(tiny_dir, tmp_path / "cache", rewards={"judge": None}, keep={"best_of_n": 0},
                     tasks=[{"name": "gsm", "template": "math", "n": 2, "max_tokens": 6, "from_stream": False,
                             "seed_files": [str(seeds)]}])
    out = run_synth(config, sample_docs[:3], extra_stage=(get("decontam"), DecontamConfig(benchmarks=["gsm8k"])))
    synthetic = [d for d in out["kept"] if d["source"] == "synthetic/gsm"]
    assert len(synthetic) == 2 and all("Janet" in d["text"] for d in synthetic)
    assert all(d["synthetic"]["seed_id"] == "seed-gsm8k-0" for d in synthetic)
    dropped = {d["id"]: d for d in out["then_rejected"]}
    assert set(dropped) == {d["id"] for d in synthetic}
    assert all(d["stage"] == "decontam" and "gsm8k" in d["reason"] for d in dropped.values())
    assert {d["id"] for d in out["then_kept"]} == {d["id"] for d in sample_docs[:3]}  # seed files stay out
