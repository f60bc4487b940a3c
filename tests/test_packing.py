"""Packing policies, span index, segment/position ids, the pack recipe section, and the Megatron writer (read back
with megatron-core's own ``IndexedDataset``)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from qurate.pipelines.export_report import report_section
from qurate.pipelines.megatron import index_bytes, read_index, token_dtype, write_indexed_dataset
from qurate.pipelines.pack_config import PackConfig
from qurate.pipelines.packing import (
    fill_sequences,
    pack,
    pack_best_fit,
    pack_greedy,
    position_ids,
    segment_ids,
    spans_array,
)


def _covered(lengths, sequences):
    """Every doc's pieces, sorted by offset, must tile it exactly once."""
    pieces: dict[int, list[tuple[int, int]]] = {}
    for seq in sequences:
        for doc, offset, n in seq:
            pieces.setdefault(doc, []).append((offset, n))
    for doc, n in enumerate(lengths):
        at = 0
        for offset, m in sorted(pieces.get(doc, [])):
            assert offset == at
            at += m
        assert at == n, (doc, at, n)


def _reference_best_fit(lengths, seq_len):
    """Plain O(pieces x sequences) best-fit decreasing, for comparison."""
    seqs, rest = [], []
    for doc, n in enumerate(lengths):
        offset = 0
        while n - offset > seq_len:
            seqs.append([(doc, offset, seq_len)])
            offset += seq_len
        if n - offset:
            rest.append((doc, offset, n - offset))
    rest.sort(key=lambda s: (-s[2], s[0]))
    room = [0] * len(seqs)
    for span in rest:
        best = None
        for i, r in enumerate(room):
            if r >= span[2] and (best is None or r < room[best]):
                best = i
        if best is None:
            seqs.append([])
            room.append(seq_len)
            best = len(seqs) - 1
        seqs[best].append(span)
        room[best] -= span[2]
    return seqs


def test_greedy_concatenates_in_order_and_splits_at_boundaries():
    lengths = [5, 7, 3, 10, 1]
    seqs = pack_greedy(lengths, 8)
    assert [sum(s[2] for s in seq) for seq in seqs] == [8, 8, 8, 2]
    assert seqs[0] == [(0, 0, 5), (1, 0, 3)]
    assert seqs[1] == [(1, 3, 4), (2, 0, 3), (3, 0, 1)]
    _covered(lengths, seqs)
    result = pack(lengths, 8, "greedy")
    assert result.split_docs == 2 and result.padding == 6 and result.tokens == 26


def test_best_fit_matches_a_plain_reference_and_splits_only_long_docs():
    rng = random.Random(7)
    for trial in range(30):
        seq_len = rng.choice([16, 64, 100])
        lengths = [rng.randint(1, int(seq_len * 1.8)) for _ in range(rng.randint(1, 120))]
        seqs = pack_best_fit(lengths, seq_len)
        assert sorted(map(sorted, seqs)) == sorted(map(sorted, _reference_best_fit(lengths, seq_len))), trial
        _covered(lengths, seqs)
        assert all(sum(s[2] for s in seq) <= seq_len for seq in seqs)
        result = pack(lengths, seq_len, "best_fit")
        assert result.split_docs == sum(1 for n in lengths if n > seq_len)


def test_best_fit_keeps_copies_of_a_document_apart():
    rng = random.Random(3)
    lengths, groups = [], []
    for doc in range(300):
        n = rng.randint(20, 900)
        for _ in range(4):
            lengths.append(n)
            groups.append(doc)
    plain = pack(lengths, 1024, "best_fit")
    apart = pack(lengths, 1024, "best_fit", groups=groups)
    together = sum(len({groups[d] for d, _, _ in seq}) < len(seq) for seq in plain.sequences)
    assert together > 0  # without groups identical lengths land side by side
    assert all(len({groups[d] for d, _, _ in seq}) == len(seq) for seq in apart.sequences)
    assert apart.padding <= plain.padding * 3 + 1024
    _covered(lengths, apart.sequences)


def test_long_context_share_leaves_out_short_sequences_and_counts_them():
    lengths = [40_000, 30_000, 20_000] + [1_000] * 200
    result = pack(lengths, 32_768, "best_fit", long_context_share=0.4)
    total = sum(lengths)
    assert result.long_sequences >= 0.4 * len(result.sequences)
    assert result.tokens + result.left_out_tokens == total
    assert result.left_out_sequences > 0
    no_share = pack(lengths, 32_768, "best_fit")
    assert no_share.tokens == total and no_share.left_out_tokens == 0
    # no long documents at all: every sequence is left out, and said so
    empty = pack([100] * 50, 4096, "best_fit", long_context_share=0.4)
    assert empty.sequences == [] and empty.left_out_tokens == 5000


def test_spans_segments_and_positions_rebuild_documents():
    docs = [np.arange(1, 6), np.arange(10, 22), np.arange(30, 33), np.arange(40, 49)]
    result = pack([len(d) for d in docs], 8, "best_fit")
    spans = spans_array(result.sequences)
    matrix = fill_sequences(docs, spans, len(result.sequences), 8, pad_id=-1)
    seg = segment_ids(spans, len(result.sequences), 8)
    pos = position_ids(spans, len(result.sequences), 8)
    assert (seg == 0).sum() == (matrix == -1).sum() == result.padding
    rebuilt: dict[int, list[tuple[int, np.ndarray]]] = {}
    for seq, start, n, doc, offset in spans.tolist():
        rebuilt.setdefault(doc, []).append((offset, matrix[seq, start:start + n]))
        assert pos[seq, start] == 0 and pos[seq, start + n - 1] == n - 1
        assert len(set(seg[seq, start:start + n].tolist())) == 1 and seg[seq, start] > 0
    for doc, pieces in rebuilt.items():
        assert np.array_equal(np.concatenate([p for _, p in sorted(pieces, key=lambda x: x[0])]), docs[doc])


def test_pack_config_validates():
    assert PackConfig().seq_lens == [4096]
    with pytest.raises(ValueError):
        PackConfig(seq_lens=[])
    with pytest.raises(ValueError):
        PackConfig(seq_lens=[4096, 4096])
    with pytest.raises(ValueError):
        PackConfig(policy="first_fit")
    with pytest.raises(ValueError):
        PackConfig(bogus=1)
    assert all(f.description for f in PackConfig.model_fields.values())


def test_report_section_shape():
    export = {"packed": [{"seq_len": 4096, "split": "train", "policy": "best_fit", "sequences": 10,
                          "tokens": 40_000, "padding": 960, "capacity": 40_960, "docs": 50, "split_docs": 1,
                          "long_sequences": 2, "left_out_sequences": 0, "left_out_tokens": 0,
                          "long_context_share": 0.0}],
              "components": {"train/web": {"split": "train", "tokens": 40_000, "docs": 50, "rows": 50,
                                           "epochs": 1.0, "weight": 1.0}},
              "blend": {"megatron_train": "--train-data-path 1 /o/megatron/train/web/part-00000-of-00001"},
              "files": [{"path": "x", "bytes": 3}]}
    section = report_section(export)
    assert section["summary"]["padding waste @ 4096 (best_fit)"] == "2.34 %"
    assert section["tables"][0]["rows"][0][5] == "2.34 %"
    assert any("--train-data-path" in n for n in section["notes"])
    assert report_section({}) is None


# ---- Megatron writer -----------------------------------------------------------------------------------------

def test_megatron_files_read_back_with_megatron_core(tmp_path):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 151_665, size=int(n)) for n in rng.integers(1, 3000, size=40)]
    prefix = str(tmp_path / "sub" / "part-00000-of-00001")
    info = write_indexed_dataset(prefix, iter(docs), token_dtype(151_665))
    assert info["dtype"] == "int32" and info["docs"] == 40 and info["tokens"] == sum(len(d) for d in docs)
    dataset = IndexedDataset(prefix)
    assert len(dataset) == 40
    assert dataset.index.dtype == np.int32
    assert list(dataset.document_indices) == list(range(41))
    for i, doc in enumerate(docs):
        assert np.array_equal(dataset[i], doc)
    assert np.array_equal(dataset.get(3, offset=5, length=7), docs[3][5:12])
    parsed = read_index(Path(prefix + ".idx").read_bytes())
    assert list(parsed["lengths"]) == [len(d) for d in docs]
    assert sorted(os.listdir(tmp_path / "sub")) == ["part-00000-of-00001.bin", "part-00000-of-00001.idx"]


def test_megatron_small_vocab_uses_uint16_and_rejects_out_of_range(tmp_path):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    prefix = str(tmp_path / "small")
    write_indexed_dataset(prefix, [np.array([1, 2, 65_000]), np.array([7])], token_dtype(32_000))
    dataset = IndexedDataset(prefix)
    assert dataset.index.dtype == np.uint16 and list(dataset[0]) == [1, 2, 65_000]
    with pytest.raises(ValueError, match="out of range"):
        write_indexed_dataset(str(tmp_path / "bad"), [np.array([70_000])], np.uint16)
    assert not (tmp_path / "bad.bin").exists()


def test_index_matches_megatron_core_builder(tmp_path):
    """Byte-for-byte the index megatron-core's own builder writes for the same documents."""
    import torch
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    docs = [np.array([5, 6, 7]), np.array([151_643]), np.arange(100, 400)]
    builder = IndexedDatasetBuilder(str(tmp_path / "ref.bin"), dtype=np.int32)
    for doc in docs:
        builder.add_document(torch.from_numpy(doc.astype(np.int32)), [len(doc)])
    builder.finalize(str(tmp_path / "ref.idx"))
    write_indexed_dataset(str(tmp_path / "ours"), docs, np.int32)
    assert (tmp_path / "ours.idx").read_bytes() == (tmp_path / "ref.idx").read_bytes()
    assert (tmp_path / "ours.bin").read_bytes() == (tmp_path / "ref.bin").read_bytes()
    assert index_bytes(np.array([3, 1, 300]), np.int32) == (tmp_path / "ref.idx").read_bytes()


def test_killed_writer_leaves_no_final_file(tmp_path):
    """SIGKILL in the middle of the .bin: only the temporary file exists, never PREFIX.bin or PREFIX.idx."""
    script = textwrap.dedent(f"""
        import os, signal
        import numpy as np
        from qurate.pipelines.megatron import write_indexed_dataset

        def docs():
            for i in range(1000):
                if i == 500:
                    os.kill(os.getpid(), signal.SIGKILL)
                yield np.arange(1000, dtype=np.int32) + i

        write_indexed_dataset({str(tmp_path / 'part')!r}, docs(), np.int32)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    names = sorted(os.listdir(tmp_path))
    assert not (tmp_path / "part.bin").exists() and not (tmp_path / "part.idx").exists()
    assert len(names) == 1 and names[0].startswith("part.bin.tmp-")
    assert (tmp_path / names[0]).stat().st_size > 0  # it was killed mid-write, not before
