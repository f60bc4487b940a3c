"""Adversarial input through the real CLI: every bad record lands in the dead letter with an actionable reason,
nothing is lost (read = mixture + rejected + dead-letter, counted in the output files), and no traceback shows."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from conftest import read_rows, run_cli, write_jsonl
from qurate.doc import RAW_LIMIT_CHARS

BIG_CHARS = 20_000_000


def _real_docs(corpus_slice: Path, n: int, prefix: str) -> list[dict]:
    lines = corpus_slice.read_bytes().splitlines()
    docs = [json.loads(line) for line in lines[:n]]
    return [{"id": f"{prefix}-{i}", "text": d["text"], "source": d["source"]} for i, d in enumerate(docs)]


@pytest.fixture(scope="module")
def bad_input(corpus_slice: Path, tmp_path_factory: pytest.TempPathFactory):
    """A folder of input files with every bad case; returns (folder, expected dead-letter entries, records)."""
    folder = tmp_path_factory.mktemp("bad_input")
    good = _real_docs(corpus_slice, 30, "doc")
    big_text = (good[0]["text"] + "\n") * (BIG_CHARS // len(good[0]["text"]) + 1)
    # (line as written, file, expected reason rule) for each bad line of bad.jsonl, in order
    bad_lines = [
        (b'{"id": "broken", "text": "no closing brace"', "not valid JSON"),
        (b'{"id": "latin1", "text": "caf\xe9 au lait"}', "invalid UTF-8"),
        (json.dumps({"id": "no-text", "body": "the text is in the wrong field"}).encode(), "missing text field"),
        (json.dumps({"id": "number", "text": 42}).encode(), "text not a string"),
        (json.dumps({"id": "null-text", "text": None}).encode(), "text not a string"),
        (json.dumps({"id": "blank", "text": "  \n\t "}).encode(), "empty text"),
        (json.dumps({"id": "huge", "text": big_text[:BIG_CHARS]}).encode(), "text too large"),
        (json.dumps([{"id": "in-array", "text": "a record inside an array"}]).encode(), "not an object"),
        (b'{"id": "surrogate", "text": "broken \\ud800 pair"}', "lone surrogate"),
        (b'{"id": "\\udfff-id", "text": "the id holds the lone surrogate"}', "lone surrogate"),
        (json.dumps({"id": True, "text": "an id that is a boolean"}).encode(), "bad id"),
    ]
    records: list[bytes | dict] = [*good[:10], b""]  # a blank line is not a record
    expected: list[tuple[str, str, str]] = []  # (file name, id or None, rule)
    for line, rule in bad_lines:
        records.append(line)
        expected.append(("bad.jsonl", None, rule))
    records += [*good[10:14], {**good[0], "text": "a second doc under an id seen earlier"}]
    expected.append(("bad.jsonl", "doc-0", "duplicate id"))
    records.append({"text": "a doc without an id gets one from file and line"})
    write_jsonl(folder / "bad.jsonl", records)

    (folder / "good.jsonl.gz").write_bytes(gzip.compress(b"".join(
        json.dumps(d).encode() + b"\n" for d in good[14:20])))
    zst_docs = [*good[20:24], {**good[14], "text": "same id as a doc in good.jsonl.gz"}]
    expected.append(("good.jsonl.zst", "doc-14", "duplicate id"))
    (folder / "good.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(b"".join(
        json.dumps(d).encode() + b"\n" for d in zst_docs)))

    table = pa.table({"id": [d["id"] for d in good[24:28]] + ["pq-empty", "pq-null"],
                      "text": [d["text"] for d in good[24:28]] + ["", None],
                      "source": ["parquet"] * 6})
    pq.write_table(table, folder / "table.parquet")
    expected += [("table.parquet", None, "empty text"), ("table.parquet", None, "text not a string")]

    # A truncated gzip: the complete lines before the cut are read, the rest is one "unreadable file" entry.
    full = gzip.compress(b"".join(json.dumps({"id": f"cut-{i}", "text": good[i % 30]["text"]}).encode() + b"\n"
                                  for i in range(200)))
    (folder / "truncated.jsonl.gz").write_bytes(full[: len(full) // 2])
    expected.append(("truncated.jsonl.gz", None, "unreadable file"))
    (folder / "corrupt.parquet").write_bytes(b"PAR1" + b"\x00not a parquet footer" * 10)
    expected.append(("corrupt.parquet", None, "unreadable file"))
    return folder, expected


def _rule(error: str) -> str:
    return error.split(":", 1)[0]


def test_every_bad_record_is_dead_lettered_and_nothing_is_lost(bad_input, tmp_path):
    folder, expected = bad_input
    out = tmp_path / "out"
    # A real subprocess: exit code, stdout and stderr exactly as a user sees them.
    proc = subprocess.run([sys.executable, "-m", "qurate.pipelines.cli", "run", "--input", str(folder),
                           "--output", str(out), "--stages", "", "--set", "health.max_dead_letter_share=1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert "conservation holds" in proc.stdout

    manifest = json.loads((out / "manifest.json").read_text())
    dead = read_rows(out, "dead_letter")
    mixture = read_rows(out, "mixture")
    rejected = read_rows(out, "rejected")
    kept = [r for r in mixture if r["repeat"] == 0]

    # Records read, counted from the files we wrote: JSONL lines that are not blank, Parquet rows, plus for the
    # truncated gzip the complete lines before the cut and one entry for its lost tail.
    truncated_read = [r for r in kept if r["id"].startswith("cut-")]
    assert 0 < len(truncated_read) < 200
    n_bad_jsonl = sum(1 for line in (folder / "bad.jsonl").read_bytes().split(b"\n") if line.strip())
    records = n_bad_jsonl + 6 + 5 + 6 + (len(truncated_read) + 1) + 1
    assert manifest["input"]["records"] == records
    assert manifest["input"]["files"] == manifest["input"]["files_read"] == 6
    assert manifest["input"]["unreadable_files"] == 2
    # Conservation, from the output files themselves and from the manifest.
    assert len(kept) + len(rejected) + len(dead) == records
    c = manifest["conservation"]
    assert c["ok"] and c["kept"] == len(kept) and c["dead_letter"] == len(dead)
    assert c["accounted"] == records

    # Each bad record is in the dead letter, with a reason whose rule names the problem, and where it came from.
    found = sorted((Path(r["file"]).name, _rule(r["error"])) for r in dead)
    assert found == sorted((name, rule) for name, _, rule in expected)
    for row in dead:
        assert row["stage"] == "read" and row["file"] and row["position"] is not None and row["source"]
        assert row["error_class"] == _rule(row["error"])
        assert len(row["error"]) > len(_rule(row["error"])) + 5, row["error"]  # rule plus a detail
    # Where a bad record has a usable id, the entry carries it (users grep their source for it).
    assert {"broken", "no-text", "number", "null-text", "blank", "huge", "surrogate", "pq-empty", "pq-null"} <= {
        r["id"] for r in dead}
    by_rule = {_rule(r["error"]): r for r in dead}
    assert "set input.text_field" in by_rule["missing text field"]["error"]
    assert "20,000,000 chars" in by_rule["text too large"]["error"]
    huge = by_rule["text too large"]  # the raw record is kept up to the cap, its full size recorded
    assert len(huge["raw"]) == RAW_LIMIT_CHARS and huge["raw_chars"] > BIG_CHARS
    assert "\\xe9" in by_rule["invalid UTF-8"]["raw"]
    dups = {r["id"]: r for r in dead if _rule(r["error"]) == "duplicate id"}
    assert set(dups) == {"doc-0", "doc-14"}
    assert "bad.jsonl" in dups["doc-0"]["error"] and "good.jsonl.gz" in dups["doc-14"]["error"]
    # The first copy of a duplicated id is the one kept.
    kept_docs = {r["id"]: r for r in read_rows(out, "docs")}
    assert "second doc" not in kept_docs["doc-0"]["text"]
    assert "same id" not in kept_docs["doc-14"]["text"]
    # Good records from every format made it, and an id-less record got a stable file+line id.
    for doc_id in ("doc-1", "doc-15", "doc-20", "doc-24", "bad.jsonl:" + str(n_bad_jsonl)):
        assert doc_id in kept_docs, doc_id
    assert len(kept_docs) == len(kept)


def test_empty_input_glob_is_a_clear_error(tmp_path, capsys):
    code = run_cli(["run", "--input", str(tmp_path / "nothing-here-*.jsonl"), "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and "no input files match" in err and "nothing-here-*.jsonl" in err
    assert not (tmp_path / "o").exists()


def _zstd_two_frames(data: bytes) -> bytes:
    cut = len(data) // 2  # two frames, as produced by concatenating two .zst files
    return zstandard.ZstdCompressor().compress(data[:cut]) + zstandard.ZstdCompressor().compress(data[cut:])


@pytest.mark.parametrize("suffix, compress", [
    (".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress), (".zst", _zstd_two_frames),
    (".zstd", zstandard.ZstdCompressor().compress),
])
def test_truncated_compressed_file_is_an_error_not_a_short_read(tmp_path, suffix, compress):
    from qurate.pipelines.textfile import decompressed_chunks, iter_lines

    data = b"".join(b'{"id": "%d", "text": "line %d"}\n' % (i, i) for i in range(5000))
    packed = compress(data)
    whole, cut = tmp_path / f"whole.jsonl{suffix}", tmp_path / f"cut.jsonl{suffix}"
    whole.write_bytes(packed)
    cut.write_bytes(packed[:-7])
    lines = list(iter_lines(decompressed_chunks(str(whole))))
    assert b"".join(lines) == data and len(lines) == 5000  # every frame, every line
    with pytest.raises(EOFError):  # Beam's own reader would return the truncated data without a word
        list(iter_lines(decompressed_chunks(str(cut))))


def test_overlapping_inputs_read_each_file_once(corpus_slice, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", _real_docs(corpus_slice, 3, "a"))
    write_jsonl(folder / "b.jsonl", [{"text": d["text"]} for d in _real_docs(corpus_slice, 2, "b")])
    (folder / "notes.txt").write_text("not a data file: a directory input skips it")
    out = tmp_path / "out"
    argv = ["run", "--input", str(folder), "--input", str(folder / "a.jsonl"), "--input", str(folder / "*.jsonl"),
            "--output", str(out), "--stages", ""]
    assert run_cli(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["input"]["files"] == manifest["input"]["files_read"] == 2
    assert manifest["input"]["records"] == 5 and not read_rows(out, "dead_letter")
    assert sorted(r["id"] for r in read_rows(out, "docs")) == ["a-0", "a-1", "a-2", "b.jsonl:0", "b.jsonl:1"]
