"""``WriteShardedParquet`` (pipelines/shards.py, spill.py): every row written once, in the shard its id hash
range says, sorted within it; the shard count rule; byte-identical files on every runner and however the rows were
spilled; the temporary spill files gone after the run."""

from __future__ import annotations

import array
import json
import math
import random
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.util import assert_that
from conftest import runner_args_for
from qurate.hashing import stable_hash
from qurate.pipelines.runners import make_pipeline, pipeline_options
from qurate.pipelines.schema import DOCS_SCHEMA, MIXTURE_SCHEMA
from qurate.pipelines.shards import WriteShardedParquet
from qurate.pipelines.spill import SpillFn, remove_spill_folder, sort_bytes, spill_folder

TARGET = 6_000


def _size(row):
    return len(row["text"] or "") + 100


def _docs(n: int = 900, seed: int = 3) -> list[tuple[str, dict]]:
    """Docs in three groups of unequal size, texts of varied length and character, two ids repeated."""
    rng = random.Random(seed)
    alphabet = "abc é\u4e2d😀\x00"
    docs = []
    for i in range(n):
        doc_id = f"d{rng.randrange(10**6):06d}" if i % 7 else f"{'é' if i % 2 else 'z'}{i}"
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 120))) if i % 11 else None
        docs.append((("web", "books", "code")[i % 3 if i % 5 else 0], {"id": doc_id, "text": text, "source": "s"}))
    docs.append(("web", {"id": docs[1][1]["id"], "text": "same id, other text", "source": "t"}))
    docs.append(("web", {"id": docs[1][1]["id"], "text": "same id, third text", "source": "t"}))
    return docs


def _write(docs, out: Path, args: tuple[str, ...] = (), expect=None, **spill) -> None:
    pipeline = make_pipeline(pipeline_options(list(args)))
    # lambdas that use no name of this module: a multi-process worker cannot import the test module
    stats = (pipeline | beam.Create(docs, reshuffle=False)
             | WriteShardedParquet("docs", str(out), DOCS_SCHEMA, target_size=TARGET,
                                   size_of=lambda r: len(r["text"] or "") + 100,
                                   id_of=lambda r: r["id"], sort_key=lambda r: r["id"],
                                   stats_of=lambda r: {"chars": len(r["text"] or "")}, **spill))
    if expect is not None:
        assert_that(stats, expect)
    pipeline.run().wait_until_finish()


def _files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _check_stats(expected_written: dict, expected_shards: dict):
    def check(pairs):
        written = {k[2]: v for k, v in pairs if k[0] == "written"}
        shards = {k[3]: v for k, v in pairs if k[0] == "shard"}
        sums: dict = {}
        for key, value in pairs:
            if key[0] == "written":
                for name, number in value.items():
                    sums.setdefault(key[2], {}).setdefault(name, 0)
                    sums[key[2]][name] += number
        assert {g: {k: v for k, v in s.items() if k != "bytes"} for g, s in sums.items()} == expected_written
        assert {Path(p).name + "@" + Path(p).parent.name: v["rows"] for p, v in shards.items()} == expected_shards
        assert all(v["bytes"] > 0 for v in written.values())
    return check


def test_every_row_once_sorted_in_its_hash_range(tmp_path):
    docs = _docs()
    totals: dict[str, int] = {}
    for group, row in docs:
        totals[group] = totals.get(group, 0) + _size(row)
    shards = {g: max(1, math.ceil(t / TARGET)) for g, t in totals.items()}
    assert max(shards.values()) > 3  # several shards per group, or the test shows nothing
    expected_rows: dict[str, int] = {}
    for group, row in docs:
        name = f"part-{(stable_hash(row['id']) * shards[group]) >> 64:05d}-of-{shards[group]:05d}.parquet"
        key = f"{name}@{group}"
        expected_rows[key] = expected_rows.get(key, 0) + 1
    written = {g: {"rows": sum(1 for gg, _ in docs if gg == g),
                   "files": sum(1 for k in expected_rows if k.endswith("@" + g)),
                   "chars": sum(len(r["text"] or "") for gg, r in docs if gg == g)} for g in shards}
    out = tmp_path / "out"
    _write(docs, out, expect=_check_stats(written, expected_rows), spill_bytes=20_000, spill_row_group=16)

    seen = []
    for group, count in shards.items():
        paths = sorted((out / group).glob("*.parquet"))
        assert len(paths) == sum(1 for k in expected_rows if k.endswith("@" + group)) <= count
        for path in paths:
            shard, of = (int(x) for x in path.stem.split("-")[1::2])
            assert of == count
            rows = pq.read_table(path).to_pylist()
            assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
            assert all((stable_hash(r["id"]) * count) >> 64 == shard for r in rows)
            seen.extend((group, json.dumps({k: r[k] for k in ("id", "text", "source")})) for r in rows)
    assert sorted(seen) == sorted((g, json.dumps(r)) for g, r in docs)
    assert not any(p.name == "_spill" for p in out.rglob("*"))  # spill files and their folder are gone
    assert all(p.suffix == ".parquet" for p in out.rglob("*") if p.is_file())


def test_same_bytes_on_every_runner_and_any_spill_bound(tmp_path):
    docs = _docs(600, seed=5)
    outs = {}
    for name, args, spill in [("one_spill", (), {}),
                              ("many_spills", (), {"spill_bytes": 5_000, "spill_row_group": 8}),
                              ("multiprocess", tuple(runner_args_for("multiprocess")), {"spill_bytes": 30_000})]:
        _write(docs, tmp_path / name, args, **spill)
        outs[name] = _files(tmp_path / name)
    assert len(outs["one_spill"]) > 5
    assert outs["many_spills"] == outs["one_spill"]
    assert outs["multiprocess"] == outs["one_spill"]
    for name in outs:
        assert not (tmp_path / name / "_spill").exists()


def test_a_tiny_spill_bound_splits_a_bundle_into_many_spill_files(tmp_path):
    docs = _docs(300, seed=7)
    counts = {}
    for bound in (64 << 20, 3_000):
        pipeline = make_pipeline(pipeline_options([]))
        records = (pipeline | beam.Create(docs, reshuffle=False) | beam.ParDo(SpillFn(
            spill_folder(str(tmp_path / str(bound)), "run"), DOCS_SCHEMA, _size, lambda r: r["id"],
            lambda r: r["id"], lambda r: {}, bound, 16)))
        (records | beam.combiners.Count.Globally()
         | beam.Map(lambda n, b: (tmp_path / f"{b}.count").write_text(str(n)), bound))
        pipeline.run().wait_until_finish()
        counts[bound] = int((tmp_path / f"{bound}.count").read_text())
    assert counts[64 << 20] == 3 and counts[3_000] > 20  # one spill file per group, or many


def test_mixture_rows_with_token_arrays_and_tuple_keys(tmp_path):
    rows = []
    for i in range(200):
        tokens = array.array("I", range(i % 37 + 1))
        for repeat in range(1 + i % 3):
            rows.append(("c", {"tokens": tokens, "n_tokens": len(tokens), "id": f"m{i:04d}", "lang": None,
                               "domain": None, "source": "s", "quality_score": None, "synthetic": None,
                               "repeat": repeat}))
    for name, spill in [("a", {}), ("b", {"spill_bytes": 2_000, "spill_row_group": 4})]:
        pipeline = make_pipeline(pipeline_options([]))
        _ = (pipeline | beam.Create(rows, reshuffle=False) | WriteShardedParquet(
            "mixture", str(tmp_path / name), MIXTURE_SCHEMA, target_size=1000, size_of=lambda r: r["n_tokens"],
            id_of=lambda r: (r["id"], r["repeat"]), sort_key=lambda r: (r["id"], r["repeat"]), **spill))
        pipeline.run().wait_until_finish()
    files = _files(tmp_path / "a")
    assert files == _files(tmp_path / "b") and len(files) == math.ceil(sum(r["n_tokens"] for _, r in rows) / 1000)
    got = [r for p in sorted((tmp_path / "a" / "c").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert sorted((r["id"], r["repeat"], tuple(r["tokens"])) for r in got) == sorted(
        (r["id"], r["repeat"], tuple(r["tokens"])) for _, r in rows)


def test_an_empty_sink_writes_nothing(tmp_path):
    pipeline = make_pipeline(pipeline_options([]))
    stats = (pipeline | beam.Create([]) | WriteShardedParquet(
        "docs", str(tmp_path / "docs"), DOCS_SCHEMA, target_size=TARGET, size_of=_size, id_of=lambda r: r["id"],
        sort_key=lambda r: r["id"]))
    assert_that(stats, lambda pairs: pytest.fail(f"stats for no rows: {pairs}") if list(pairs) else None)
    pipeline.run().wait_until_finish()
    assert not (tmp_path / "docs").exists() or not any((tmp_path / "docs").rglob("*"))


def test_spill_cleanup_removes_one_runs_files_and_nothing_else(tmp_path):
    run, other = Path(spill_folder(str(tmp_path), "run")), Path(spill_folder(str(tmp_path), "other"))
    for folder in (run, other):
        folder.mkdir(parents=True)
        (folder / "a.spill").write_bytes(b"reported")
        (folder / "b.spill").write_bytes(b"orphan of a failed bundle attempt")
    (tmp_path / "part-00000-of-00001.parquet").write_bytes(b"a shard")
    remove_spill_folder(str(run))
    assert not run.exists() and sorted(p.name for p in other.iterdir()) == ["a.spill", "b.spill"]
    assert (tmp_path / "part-00000-of-00001.parquet").exists()
    remove_spill_folder(str(other))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part-00000-of-00001.parquet"]


@pytest.mark.parametrize("seed", range(3))
def test_sort_bytes_order_as_python_does(seed):
    rng = random.Random(seed)

    def part(kind):
        if kind == "s":
            return "".join(rng.choice(["a", "b", "\x00", "é", "\ud800", "\ue000", "😀", ""]) for _ in range(3))
        if kind == "i":
            return rng.choice([0, 1, -1, 2**63 - 1, -(2**63), 2**70, -(2**70), 2**64, rng.randrange(-99, 99)])
        if kind == "f":
            return rng.choice([0.0, -0.0, 1.5, -1.5, 1e300, -1e-300, float(rng.randrange(-9, 9))])
        return rng.choice([b"", b"\x00", b"\x00\x01", b"\xff", b"a"])

    for shape in ("s", "i", "f", "b", "si", "ssif", "sis"):
        keys = [tuple(part(k) for k in shape[:rng.randrange(1, len(shape) + 1)]) for _ in range(300)]
        by_bytes = sorted(keys, key=sort_bytes)
        assert [sort_bytes(k) for k in by_bytes] == [sort_bytes(k) for k in sorted(keys)]
        for a, b in zip(by_bytes, by_bytes[1:]):
            assert (a < b) == (sort_bytes(a) < sort_bytes(b)) and (a == b) == (sort_bytes(a) == sort_bytes(b))
