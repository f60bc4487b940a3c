"""Trainer exports of a real token mixture (the bundled sample, Qwen2.5 tokens), read back with the real readers:
megatron-core's ``IndexedDataset``, numpy memmaps, HF ``datasets``."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from mixture_fixture import make_mixture, mixture_rows, sample_docs
from qurate.pipelines.export import Export, run_export
from qurate.pipelines.export_files import verify_files
from qurate.pipelines.export_keys import order_key, split_of
from qurate.pipelines.export_report import report_section
from qurate.pipelines.pack_config import PackConfig

SEED = 0
EOS = 151_643
CFG = PackConfig(seq_lens=[4096, 8192], long_context_share=0.1, validation_share=0.02)


def _digest(tokens) -> str:
    return hashlib.sha1(np.asarray(tokens, dtype=np.int32).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """The whole bundled sample as a mixture; every 25th document up-sampled to 3 copies."""
    out = tmp_path_factory.mktemp("export") / "run"
    docs = sample_docs()
    make_mixture(out, docs, repeats={str(d["id"]): 3 for d in docs[::25]})
    return out


@pytest.fixture(scope="module")
def exported(source) -> dict:
    return run_export(str(source), CFG, seed=SEED, shard_tokens=50_000_000, pad_id=EOS)


@pytest.fixture(scope="module")
def rows(source) -> list[dict]:
    return mixture_rows(source)


def _packed(out: Path, seq_len: int, split: str | None = None):
    """Each packed shard: (tokens memmap, spans, docs rows)."""
    folder = out / "packed" / f"seq{seq_len}"
    for path in sorted(folder.glob(f"{split or '*'}/*.tokens.npy")):
        stem = str(path)[: -len(".tokens.npy")]
        yield (np.load(path, mmap_mode="r"), np.load(stem + ".spans.npy"),
               pq.read_table(stem + ".docs.parquet").to_pylist())


def test_megatron_round_trip_with_megatron_core(source, exported, rows):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    expected = Counter((split_of(r["id"], SEED, CFG.validation_share), r["source"], _digest(r["tokens"]))
                       for r in rows)
    got: Counter = Counter()
    for idx in sorted((source / "megatron").rglob("*.idx")):
        split, component = idx.parts[-3], idx.parts[-2]
        dataset = IndexedDataset(str(idx)[:-4])
        assert dataset.index.dtype == np.int32
        for i in range(len(dataset)):
            got[(split, component, _digest(dataset[i]))] += 1
    # the component dir is the source made path-safe; compare on (split, tokens) and on counts per component
    assert Counter((s, d) for s, _, d in got.elements()) == Counter((s, d) for s, _, d in expected.elements())
    assert len(got) and sum(got.values()) == len(rows)
    # documents in a shard follow the keyed shuffle
    by_key = {(r["id"], r["repeat"]): r for r in rows}
    idx = sorted((source / "megatron" / "train").rglob("*.idx"))[0]
    dataset = IndexedDataset(str(idx)[:-4])
    first = [_digest(dataset[i]) for i in range(len(dataset))]
    wanted = set(first)
    candidates = sorted((r for r in by_key.values() if _digest(r["tokens"]) in wanted),
                        key=lambda r: order_key(r, SEED, True))
    assert [_digest(r["tokens"]) for r in candidates] == first


def test_packed_sequences_rebuild_every_document(source, exported, rows):
    pieces: dict[tuple[str, int], list[tuple[int, np.ndarray]]] = {}
    capacity = padding = 0
    for tokens, spans, docs in _packed(source, 4096):
        assert tokens.dtype == np.int32 and tokens.shape[1] == 4096
        assert spans.shape == (len(docs), 4)
        covered = np.zeros(tokens.shape, dtype=bool)
        for (seq, start, length, offset), doc in zip(spans.tolist(), docs):
            assert (doc["sequence"], doc["start"], doc["length"], doc["doc_offset"]) == (seq, start, length, offset)
            pieces.setdefault((doc["id"], doc["repeat"]), []).append((offset, np.array(tokens[seq, start:start + length])))
            covered[seq, start:start + length] = True
            if doc["doc_tokens"] <= 4096:  # best fit: a document crosses no boundary unless longer than seq_len
                assert offset == 0 and length == doc["doc_tokens"]
        assert (tokens[~covered] == EOS).all()
        capacity += tokens.size
        padding += int((~covered).sum())
    assert set(pieces) == {(r["id"], r["repeat"]) for r in rows}
    for r in rows:
        parts = sorted(pieces[(r["id"], r["repeat"])], key=lambda p: p[0])
        assert np.array_equal(np.concatenate([p for _, p in parts]), np.asarray(r["tokens"])), r["id"]
    assert padding / capacity < 0.01
    stage = [p for p in exported["packed"] if p["seq_len"] == 4096]
    assert sum(p["padding"] for p in stage) == padding and sum(p["capacity"] for p in stage) == capacity
    # copies of one document never share a sequence
    for _, _, docs in _packed(source, 4096):
        seen = Counter((d["sequence"], d["id"]) for d in docs)
        assert max(seen.values()) == 1


def test_long_context_stage_meets_its_share(source, exported, rows):
    n_long = n_seq = 0
    for tokens, spans, _ in _packed(source, 8192):
        longest = np.zeros(tokens.shape[0], dtype=np.int64)
        np.maximum.at(longest, spans[:, 0], spans[:, 2])
        n_long += int((longest > 4096).sum())
        n_seq += tokens.shape[0]
    assert n_seq and n_long / n_seq >= 0.1
    stage = [p for p in exported["packed"] if p["seq_len"] == 8192]
    assert sum(p["long_sequences"] for p in stage) == n_long
    assert sum(p["tokens"] + p["left_out_tokens"] for p in stage) == sum(r["n_tokens"] for r in rows)
    assert any("left out" in n for n in report_section(exported)["notes"])


def test_hf_datasets_reads_the_mixture_and_the_span_index(source, rows):
    from datasets import load_dataset

    data = load_dataset("parquet", data_files=str(source / "mixture" / "*" / "*.parquet"), split="train")
    assert len(data) == len(rows)
    assert sorted(_digest(t) for t in data["tokens"]) == sorted(_digest(r["tokens"]) for r in rows)
    docs = load_dataset("parquet", data_files=str(source / "packed" / "seq4096" / "*" / "*.docs.parquet"),
                        split="train")
    assert set(zip(docs["id"], docs["repeat"])) == {(r["id"], r["repeat"]) for r in rows}


def test_split_by_id_and_manifest_entry(source, exported, rows):
    splits: dict[str, set[str]] = {}
    for _, _, docs in _packed(source, 4096, "validation"):
        for d in docs:
            splits.setdefault(d["id"], set()).add("validation")
    for _, _, docs in _packed(source, 4096, "train"):
        for d in docs:
            splits.setdefault(d["id"], set()).add("train")
    assert all(len(s) == 1 for s in splits.values())  # every repeat of a doc in one split
    share = sum("validation" in s for s in splits.values()) / len(splits)
    assert 0.005 < share < 0.05
    on_disk = sorted(str(p.relative_to(source)) for p in source.rglob("*")
                     if p.is_file() and p.parts[len(source.parts)] in ("megatron", "packed"))
    assert sorted(f["path"] for f in exported["files"]) == on_disk
    assert not [p for p in on_disk if ".tmp-" in p]
    assert verify_files(str(source), exported) == []
    train = {k: v for k, v in exported["components"].items() if v["split"] == "train"}
    assert abs(sum(v["weight"] for v in train.values()) - 1) < 1e-9
    assert any(v["epochs"] > 1 for v in train.values())
    pairs = exported["blend"]["megatron_train_pairs"]
    assert abs(sum(w for w, _ in pairs) - 1) < 1e-9
    assert all((source / (rel + ".bin")).exists() and (source / (rel + ".idx")).exists() for _, rel in pairs)
    line = exported["blend"]["megatron_train"]
    assert line.startswith("--train-data-path ") and len(line.split()) == 1 + 2 * len(pairs)
    assert "interleave_datasets(" in exported["blend"]["hf_interleave"]
    json.dumps(exported)  # the manifest entry is JSON


def test_verify_files_catches_a_truncated_file(source, exported, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(source / "megatron", copy / "megatron")
    shutil.copytree(source / "packed", copy / "packed")
    victim = copy / next(f["path"] for f in exported["files"] if f["kind"] == "megatron_bin")
    victim.write_bytes(victim.read_bytes()[:-4])
    assert verify_files(str(copy), exported) == [str(victim.relative_to(copy))]


def test_same_files_on_a_multiprocess_runner_and_greedy_policy(source, exported, rows, tmp_path, runner_args):
    import shutil

    again = tmp_path / "again"
    shutil.copytree(source / "mixture", again / "mixture")
    second = run_export(str(again), CFG, seed=SEED, shard_tokens=50_000_000, pad_id=EOS,
                        beam_args=runner_args("multiprocess"))
    def same(export):  # blend.json names its own folder; every other byte must match
        return [(f["path"], f["sha256"]) for f in export["files"] if f["kind"] != "megatron_blend"]

    assert same(second) == same(exported)

    greedy = PackConfig(seq_lens=[4096], policy="greedy", megatron=False, validation_share=0.0)
    out = run_export(str(again), greedy, seed=SEED, shard_tokens=50_000_000, pad_id=EOS)
    assert not (again / "megatron").exists()  # the earlier export was cleared; megatron off
    (stage,) = out["packed"]
    assert stage["policy"] == "greedy" and stage["split_docs"] > 10
    total = sum(r["n_tokens"] for r in rows)
    assert stage["tokens"] == total and stage["padding"] == stage["sequences"] * 4096 - total < 4096
    pieces: dict[tuple[str, int], list] = {}
    for tokens, spans, docs in _packed(again, 4096):
        for (seq, start, length, offset), d in zip(spans.tolist(), docs):
            pieces.setdefault((d["id"], d["repeat"]), []).append((offset, np.array(tokens[seq, start:start + length])))
    for r in rows[::7]:
        parts = sorted(pieces[(r["id"], r["repeat"])], key=lambda p: p[0])
        assert np.array_equal(np.concatenate([p for _, p in parts]), np.asarray(r["tokens"]))


def test_export_transform_in_a_test_pipeline(tmp_path):
    rows = [{"id": f"d{i}", "repeat": 0, "n_tokens": n, "tokens": np.arange(n, dtype=np.int32) + i,
             "source": "web" if i % 2 else "code", "lang": "en", "domain": None, "parquet_component": "x"}
            for i, n in enumerate([300, 700, 1200, 90, 2500, 4000, 130])]
    cfg = PackConfig(seq_lens=[1024], validation_share=0.0)
    with TestPipeline() as p:
        stats = (p | beam.Create(rows)
                 | Export(str(tmp_path), cfg, seed=1, shard_tokens=1_000_000, pad_id=0))

        def check(pairs):
            summed: dict = {}
            for key, value in pairs:
                acc = summed.setdefault(tuple(key), {})
                for k, v in value.items():
                    acc[k] = acc.get(k, 0) + v
            packed = summed[("packed", "1024", "train", "best_fit")]
            assert packed["tokens"] == sum(r["n_tokens"] for r in rows)
            assert packed["split_docs"] == 3  # the 1200-, 2500- and 4000-token docs: longer than 1024
            assert summed[("megatron", "train", "web", "megatron/train/web/part-00000-of-00001")]["docs"] == 3
            assert summed[("component", "train", "code")]["tokens"] == 300 + 1200 + 2500 + 130
            kinds = Counter(k[1] for k in summed if k[0] == "file")
            assert kinds == {"megatron_bin": 2, "megatron_idx": 2, "packed_tokens": 1, "packed_spans": 1,
                             "packed_docs": 1}

        assert_that(stats, check)


# ---- inside `qurate run` -----------------------------------------------------------------------------------------

def _export_files(out: Path) -> dict[str, str]:
    """sha256 per export file (blend.json names the folder itself: compared with the folder replaced)."""
    def content(p: Path) -> bytes:
        data = p.read_bytes()
        return data.replace(str(out.resolve()).encode(), b"OUT") if p.name == "blend.json" else data

    return {str(p.relative_to(out)): hashlib.sha256(content(p)).hexdigest() for p in sorted(out.rglob("*"))
            if p.is_file() and p.parts[len(out.parts)] in ("megatron", "packed")}


@pytest.fixture(scope="module")
def default_run(corpus_slice, tmp_path_factory) -> Path:
    """``qurate run`` with the default recipe (read and write only) on the corpus slice."""
    from conftest import run_cli

    out = tmp_path_factory.mktemp("default_run") / "run"
    assert run_cli(["run", "--input", str(corpus_slice), "--output", str(out), "--stages", ""]) == 0
    return out


def test_default_run_writes_trainer_exports(default_run, corpus_slice, tmp_path):
    from conftest import run_cli
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    out = default_run
    manifest = json.loads((out / "manifest.json").read_text())
    export = manifest["export"]
    assert verify_files(str(out), export) == []
    assert sorted(f["path"] for f in export["files"]) == sorted(_export_files(out))
    rows = mixture_rows(out)
    megatron = Counter()
    for idx in (out / "megatron").rglob("*.idx"):
        dataset = IndexedDataset(str(idx)[:-4])
        megatron.update(_digest(dataset[i]) for i in range(len(dataset)))
    assert megatron == Counter(_digest(r["tokens"]) for r in rows)
    assert list((out / "packed" / "seq4096").glob("*/*.tokens.npy"))
    assert export["blend"]["megatron_train"].startswith("--train-data-path ")
    from datasets import interleave_datasets, load_dataset  # noqa: F401  (the line names them)

    blended = eval(export["blend"]["hf_interleave"])  # the printed HF equivalent of the blend, as printed
    assert sorted(_digest(t) for t in blended["tokens"]) == sorted(_digest(r["tokens"]) for r in rows)
    report = json.loads((out / "report.json").read_text())
    assert "padding" in json.dumps(report)
    # each part has its own switch
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("pack:\n  megatron: false\n")
    assert run_cli(["run", str(recipe), "--input", str(corpus_slice), "--output", str(tmp_path / "no_megatron"),
                    "--stages", ""]) == 0
    assert not (tmp_path / "no_megatron" / "megatron").exists() and (tmp_path / "no_megatron" / "packed").exists()
    recipe.write_text("pack:\n  enabled: false\n")
    assert run_cli(["run", str(recipe), "--input", str(corpus_slice), "--output", str(tmp_path / "off"),
                    "--stages", ""]) == 0
    assert not (tmp_path / "off" / "megatron").exists() and not (tmp_path / "off" / "packed").exists()
    assert json.loads((tmp_path / "off" / "manifest.json").read_text()).get("export") is None


def test_run_killed_while_exporting_leaves_nothing_listed_as_complete(default_run, corpus_slice, tmp_path):
    """SIGKILL as soon as the first export file appears: no manifest; every file under its final name is whole;
    a rerun (--overwrite) clears the leftovers and writes the same bytes as a clean run."""
    import signal
    import subprocess
    import sys
    import time

    from conftest import run_cli
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    clean = default_run
    out = tmp_path / "killed"
    script = ("import sys; from qurate.pipelines.cli import main; "
              f"sys.exit(main(['run', '--input', {str(corpus_slice)!r}, '--output', {str(out)!r}, '--stages', '']))")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while not any((out / d).exists() and any(p.is_file() for p in (out / d).rglob("*"))
                       for d in ("megatron", "packed")):
            assert proc.poll() is None, "the run ended before its export started"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert not (out / "manifest.json").exists()
    for idx in (out / "megatron").rglob("*.idx"):  # a finished .idx always has its whole .bin
        dataset = IndexedDataset(str(idx)[:-4])
        assert (idx.with_suffix(".bin")).stat().st_size == int(dataset.sequence_lengths.sum()) * 4
    for npy in (out / "packed").rglob("*.npy"):
        np.load(npy)  # raises on a truncated file
    assert run_cli(["run", "--input", str(corpus_slice), "--output", str(out), "--stages", "", "--overwrite"]) == 0
    assert _export_files(out) == _export_files(clean)
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
