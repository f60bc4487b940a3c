"""Issue 15, "nothing lost, nothing destroyed": one test (or more) per finding, each reproducing it first.

1. ``--output DIR`` deleted folders qurate did not create        -> test_output_folder_*
2. one bad record dropped the rest of its file, unseen           -> test_bad_record_costs_only_itself_*, test_lost_tail_*
3. one valid record failed the whole run                         -> test_deep_record_and_long_source_*, test_component_*
4. transient failures never retried; dead letters not replayable -> tests/test_replay.py (fault injection, replay),
                                                                    test_reader_retries_*, test_dead_letter_rows_*
5. manifest/report written in place, before conservation         -> test_disk_full_*, test_write_atomic_*
6. validation gaps                                               -> test_validation_*
7. smaller: quadratic splitting, BOM, non-string source, .parquet.gz, derived-id collision, Ctrl-C
                                                                 -> test_small_*
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from conftest import read_rows, rows_digest, run_cli, write_jsonl

RECIPE = "health:\n  max_dead_letter_share: 1\n"  # these inputs are mostly bad on purpose


def _docs(corpus_slice: Path, n: int, prefix: str, start: int = 0) -> list[dict]:
    lines = corpus_slice.read_bytes().splitlines()[start:start + n]
    return [{"id": f"{prefix}-{i}", "text": json.loads(line)["text"], "source": "slice"} for i, line in
            enumerate(lines)]


def _recipe(tmp_path: Path, extra: str = "") -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE + extra)
    return str(path)


def _cli(argv: list[str], cwd: Path | None = None, timeout: int = 300, **kw) -> subprocess.CompletedProcess:
    """``qurate`` as a user runs it: a real subprocess (exit code, stdout and stderr as they are)."""
    return subprocess.run([sys.executable, "-m", "qurate.pipelines.cli", *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, **kw)


def _accounted(out: Path) -> int:
    kept = [r for r in read_rows(out, "mixture") if r["repeat"] == 0]
    return len(kept) + len(read_rows(out, "rejected")) + len(read_rows(out, "dead_letter"))


# ---- 1. the output folder -------------------------------------------------------------------------------------

def test_output_folder_without_marker_is_refused_and_left_untouched(corpus_slice, tmp_path):
    # Reproduction: a project folder with a docs/ folder of its own, and `qurate run --output .` in it.
    project = tmp_path / "project"
    (project / "docs").mkdir(parents=True)
    (project / "docs" / "design.md").write_text("the user's own notes")
    (project / "mixture").mkdir()
    (project / "mixture" / "keep.txt").write_text("not qurate's either")
    for extra in ([], ["--overwrite"]):  # --overwrite allows replacing qurate's own outputs only
        proc = _cli(["run", "--input", str(corpus_slice), "--output", ".", "--stages", "", *extra], cwd=project)
        assert proc.returncode == 2, proc.stderr
        err = proc.stderr.strip().splitlines()[-1]
        assert "not written by qurate" in err and "Traceback" not in proc.stderr
    assert (project / "docs" / "design.md").read_text() == "the user's own notes"
    assert (project / "mixture" / "keep.txt").exists()
    assert sorted(p.name for p in project.iterdir()) == ["docs", "mixture"]


def test_output_folder_rerun_needs_overwrite_and_removes_only_qurates_outputs(corpus_slice, tmp_path):
    out = tmp_path / "out"
    argv = ["run", _recipe(tmp_path), "--input", str(corpus_slice), "--output", str(out), "--stages", ""]
    assert run_cli(argv) == 0
    assert (out / ".qurate").exists()
    first = rows_digest(read_rows(out, "mixture"))
    (out / "notes.txt").write_text("a user's file inside a qurate folder")
    assert run_cli(argv) == 2  # an earlier run is replaced only when asked
    assert (out / "manifest.json").exists()
    stale = out / "mixture" / "stale-component" / "part-00000-of-00001.parquet"
    stale.parent.mkdir()
    stale.write_bytes(b"from an earlier run")
    assert run_cli([*argv, "--overwrite"]) == 0
    assert not stale.exists()  # no stale shard survives a rerun
    assert (out / "notes.txt").read_text() == "a user's file inside a qurate folder"
    assert rows_digest(read_rows(out, "mixture")) == first


def test_clear_outputs_refuses_a_foreign_folder_from_the_api_too(tmp_path):
    from qurate.pipelines.run import OutputDirError, clear_outputs

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("x")
    with pytest.raises(OutputDirError):
        clear_outputs(str(tmp_path))
    assert (tmp_path / "docs" / "a.md").exists()
    fresh = tmp_path / "fresh"
    clear_outputs(str(fresh))
    assert json.loads((fresh / ".qurate").read_text())["qurate_output"] == 1


# ---- 2, 3 and 7: hostile input through one run ---------------------------------------------------------------

BIG_INT_AT = 33  # the bad line's position; 25 records follow it in a 58-record file


def _big_int_file(corpus_slice: Path, prefix: str) -> bytes:
    docs = _docs(corpus_slice, 57, prefix)
    lines = [json.dumps(d).encode() for d in docs]
    lines.insert(BIG_INT_AT, b'{"id": "%s-bigint", "text": "a number", "n": %s}' % (prefix.encode(), b"7" * 5000))
    return b"\n".join(lines) + b"\n"


@pytest.fixture(scope="module")
def hostile(corpus_slice, tmp_path_factory):
    """One read+write run over files that reproduce findings 2, 3 and 7; returns (input folder, out, proc)."""
    folder = tmp_path_factory.mktemp("hostile")
    # 2. a 5,000-digit integer (ValueError, not JSONDecodeError) at line 33 of 58, in plain, .gz and .zst
    (folder / "bigint.jsonl").write_bytes(_big_int_file(corpus_slice, "plain"))
    (folder / "bigint.jsonl.gz").write_bytes(gzip.compress(_big_int_file(corpus_slice, "gz")))
    (folder / "bigint.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(_big_int_file(corpus_slice, "zst")))
    # 2. a Parquet file with one row of invalid UTF-8 in a string column (pyarrow raises on the whole batch)
    good = _docs(corpus_slice, 5, "pq", start=60)
    texts = [d["text"].encode() for d in good]
    texts.insert(2, b"caf\xe9 \xff broken")
    binary = pa.array(texts, type=pa.binary())
    table = pa.table({"id": [d["id"] for d in good[:2]] + ["pq-bad"] + [d["id"] for d in good[2:]],
                      "text": pa.Array.from_buffers(pa.string(), len(binary), binary.buffers())})
    pq.write_table(table, folder / "badutf8.parquet")
    # 3. a record nested 500 deep, and a 300-character source
    deep: object = "leaf"
    for _ in range(500):
        deep = {"k": deep}
    write_jsonl(folder / "deep.jsonl", [{"id": "deep", "text": "a doc with a deep field", "deep": deep},
                                        {"id": "long-source", "text": "a doc from a long source", "source": "s" * 300},
                                        {"id": "slash-source", "text": "web/a", "source": "web/a"},
                                        {"id": "underscore-source", "text": "web--a", "source": "web--a"},
                                        *_docs(corpus_slice, 3, "deep-ok", start=70)])
    # 7. a BOM before the first record; non-string sources; a gzipped Parquet file; explicit id == derived id
    bom_docs = _docs(corpus_slice, 3, "bom", start=80)
    (folder / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + b"".join(json.dumps(d).encode() + b"\n" for d in bom_docs))
    write_jsonl(folder / "sources.jsonl", [
        {"id": "src-int", "text": "source is a number", "source": 7},
        {"id": "src-obj", "text": "source is an object", "source": {"site": "a", "crawl": 3}},
        {"id": "src-list", "text": "source is a list", "source": ["a", "b"]},
    ])
    gz_docs = _docs(corpus_slice, 4, "pqgz", start=90)
    pq.write_table(pa.Table.from_pylist(gz_docs), folder / "zipped.parquet.raw")
    (folder / "zipped.parquet.gz").write_bytes(gzip.compress((folder / "zipped.parquet.raw").read_bytes()))
    (folder / "zipped.parquet.raw").unlink()
    write_jsonl(folder / "ids.jsonl", [{"text": "no id: gets ids.jsonl:0"},
                                       {"id": "ids.jsonl:0", "text": "an explicit id equal to a derived one"}])
    out = tmp_path_factory.mktemp("hostile_out") / "out"
    recipe = folder.parent / "hostile_recipe.yaml"
    recipe.write_text(RECIPE)
    proc = _cli(["run", str(recipe), "--input", str(folder), "--output", str(out), "--stages", ""])
    return folder, out, proc


def test_hostile_run_exits_0_and_conserves(hostile):
    _, out, proc = hostile
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    c = manifest["conservation"]
    physical = 58 * 3 + 6 + 7 + 3 + 3 + 4 + 2  # lines / Parquet rows written above
    assert manifest["input"]["records"] == physical == c["accounted"] == _accounted(out)
    assert manifest["input"]["records_emitted"] == physical and c["ok"]


def test_bad_record_costs_only_itself_in_plain_gz_and_zst(hostile):
    _, out, _ = hostile
    dead = {r["id"]: r for r in read_rows(out, "dead_letter")}
    kept = {r["id"] for r in read_rows(out, "docs")}
    for prefix, name in (("plain", "bigint.jsonl"), ("gz", "bigint.jsonl.gz"), ("zst", "bigint.jsonl.zst")):
        entry = dead[f"{prefix}-bigint"]
        assert entry["error"].startswith("number too large") and entry["position"] == BIG_INT_AT
        assert entry["file"].endswith(name) and len(entry["raw"]) > 5000
        assert {f"{prefix}-{i}" for i in range(57)} <= kept  # all 25 records after it too


def test_bad_record_costs_only_itself_in_parquet(hostile):
    _, out, _ = hostile
    dead = [r for r in read_rows(out, "dead_letter") if r["file"].endswith("badutf8.parquet")]
    assert len(dead) == 1 and dead[0]["position"] == 2 and dead[0]["error"].startswith("undecodable row")
    assert "\\xe9" in dead[0]["raw"] and "pq-bad" in dead[0]["raw"]
    assert {f"pq-{i}" for i in range(5)} <= {r["id"] for r in read_rows(out, "docs")}


def test_deep_record_and_long_source_do_not_fail_the_run(hostile):
    _, out, _ = hostile
    dead = {r["id"]: r for r in read_rows(out, "dead_letter")}
    assert dead["deep"]["error"].startswith("nested too deeply")
    docs = {r["id"]: r for r in read_rows(out, "docs")}
    assert docs["long-source"]["source"] == "s" * 300
    names = [p.name for p in (out / "mixture").iterdir() if p.is_dir()]
    assert all(len(name) <= 100 for name in names)
    by_id = {r["id"]: r for r in read_rows(out, "mixture")}
    # "web/a" and "web--a" are different sources: different folders
    assert by_id["slash-source"]["source"] == "web/a" and by_id["underscore-source"]["source"] == "web--a"
    folders = {}
    for path in (out / "mixture").rglob("*.parquet"):
        for row in pq.read_table(path, columns=["id"]).to_pylist():
            folders[row["id"]] = path.parent.name
    assert folders["slash-source"] != folders["underscore-source"]
    assert len(folders["long-source"]) <= 100


def test_component_names_are_bounded_and_collision_free():
    from qurate.pipelines.shards import MAX_NAME_CHARS, safe_component

    names = ["web/a", "web--a", "web_a", "web a", "web?a", "a" * 300, "a" * 301, "../etc", "etc", ".", "..",
             "CON", "x/", "/x", "x//y", "débat", "debat", "\u0000", "a.", "a", "-a", "a-", "7", 7, "None", None,
             "s" * 100, "s" * 101, "x~1234", "ключ", "ключи"]
    mapped = {}
    for name in names:
        folder = safe_component(name)
        assert 0 < len(folder) <= MAX_NAME_CHARS and "/" not in folder and folder not in (".", "..")
        mapped.setdefault(folder, set()).add(str(name) if name not in (None, "") else "")
    # None / "" map to "unknown"; every other value has a folder of its own
    assert all(len(values) == 1 for values in mapped.values()), mapped
    assert safe_component("web/trafilatura-tests") == "web--trafilatura-tests"  # readable when it can be


def test_small_bom_nonstring_source_parquet_gz_and_id_collision(hostile):
    _, out, _ = hostile
    docs = {r["id"]: r for r in read_rows(out, "docs")}
    assert {"bom-0", "bom-1", "bom-2"} <= set(docs)  # the first record of a file with a BOM is read
    assert docs["src-int"]["source"] == "7" and json.loads(docs["src-int"]["meta"]) == {"source": 7}
    assert json.loads(docs["src-obj"]["meta"]) == {"source": {"site": "a", "crawl": 3}}  # kept, not replaced
    assert docs["src-obj"]["source"] == "sources" and json.loads(docs["src-list"]["meta"]) == {"source": ["a", "b"]}
    assert {f"pqgz-{i}" for i in range(4)} <= set(docs)  # .parquet.gz is Parquet
    # the explicit id keeps its id; the record whose id was derived keeps its place under a suffixed id
    assert docs["ids.jsonl:0"]["text"] == "an explicit id equal to a derived one"
    derived = [d for i, d in docs.items() if i.startswith("ids.jsonl:0#")]
    assert len(derived) == 1 and derived[0]["text"] == "no id: gets ids.jsonl:0"
    assert not [r for r in read_rows(out, "dead_letter") if r["file"].endswith("ids.jsonl")]


def test_lost_tail_cannot_pass_conservation(corpus_slice, tmp_path, monkeypatch):
    """Fault injection into the reader (in-process runner): a reader that stops early, as the old one did after a
    bad record, is caught by the independent record count, and no manifest claims success."""
    from qurate.pipelines import read_file

    original = read_file.ReadFileFn._jsonl_records

    def loses_tail(self, path):
        for i, item in enumerate(original(self, path)):
            if i == 50:
                return
            yield item

    monkeypatch.setattr(read_file.ReadFileFn, "_jsonl_records", loses_tail)
    out = tmp_path / "out"
    assert run_cli(["run", _recipe(tmp_path), "--input", str(corpus_slice), "--output", str(out),
                    "--stages", ""]) == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["conservation"]["ok"] is False and manifest["input"]["count_mismatch_files"] == 1
    assert manifest["input"]["records"] == 120 and manifest["input"]["records_emitted"] == 50


# ---- 5. atomic, ordered finish; a full disk -------------------------------------------------------------------

def test_write_atomic_leaves_old_file_or_new_file_never_a_mix(tmp_path):
    from qurate.pipelines.shards import write_atomic

    target = tmp_path / "manifest.json"
    write_atomic(str(target), b'{"ok": true}')
    assert target.read_bytes() == b'{"ok": true}'

    with pytest.raises(TypeError):
        write_atomic(str(target), "not bytes")  # fails while writing
    assert target.read_bytes() == b'{"ok": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]  # no temporary file left behind


@contextlib.contextmanager
def _tmpfs(path: Path, size_bytes: int):
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _sizes(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_size for p in out.rglob("*") if p.is_file()}


def _pages(n: int) -> int:
    return -(-n // 4096) * 4096


def _digests(out: Path) -> tuple[str, str, bool]:
    manifest = out / "manifest.json"
    ok = manifest.exists() and json.loads(manifest.read_text())["conservation"]["ok"]
    return rows_digest(read_rows(out, "mixture")), rows_digest(read_rows(out, "docs")), ok


def _fsize_limit(limit: int):
    def apply():  # in the child: a file may not grow past `limit` bytes (EFBIG, as a full disk gives ENOSPC)
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_disk_full_gives_a_clear_exit_no_successful_manifest_and_an_identical_rerun(corpus_slice, tmp_path):
    recipe = _recipe(tmp_path)
    clean = tmp_path / "clean"
    argv = ["run", recipe, "--input", str(corpus_slice), "--stages", ""]
    assert run_cli([*argv, "--output", str(clean)]) == 0
    sizes = _sizes(clean)
    finish = {"report.json", "report.html", "manifest.json"}
    pipeline_bytes = sum(_pages(n) for name, n in sizes.items() if name not in finish)
    report_bytes = _pages(sizes["report.json"]) + _pages(sizes["report.html"])
    # Where the disk fills: in the pipeline's writes, in the report, in the manifest (the last file).
    fills = {"pipeline": pipeline_bytes // 2, "report": pipeline_bytes + _pages(sizes["report.json"]) + 64 * 1024,
             "manifest": pipeline_bytes + report_bytes + _pages(sizes["manifest.json"]) // 2}
    mount = tmp_path / "disk"
    with _tmpfs(tmp_path / "probe", 1 << 20) as can_mount:
        pass
    for where, size in fills.items():
        out = mount / "out"
        if can_mount:
            with _tmpfs(mount, size):
                proc = _cli([*argv, "--output", str(out)])
                manifest = (out / "manifest.json").read_text() if (out / "manifest.json").exists() else None
                left = sorted(str(p.relative_to(out)) for p in out.rglob("*")) if out.exists() else []
                report_json = (out / "report.json").read_text() if "report.json" in left else None
                html = (out / "report.html").read_text() if "report.html" in left else None
                # Space freed (the same disk, grown): the rerun into the same folder gives a clean run's output.
                if where == "report":  # one rerun keeps the test short; the finish is the interesting cut
                    subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)
                    rerun = _cli([*argv, "--output", str(out), "--overwrite"])
                    digests = _digests(out)
        else:  # no tmpfs here (not root): the same failure, injected through the per-file size limit
            if where == "manifest":
                continue  # a per-file limit cannot fail the manifest while the larger report fits
            limit = {"pipeline": 64, "report": sizes["report.json"] + 1}[where]
            shutil.rmtree(out, ignore_errors=True)
            proc = _cli([*argv, "--output", str(out)], preexec_fn=_fsize_limit(limit))
            manifest = (out / "manifest.json").read_text() if (out / "manifest.json").exists() else None
            left = sorted(str(p.relative_to(out)) for p in out.rglob("*")) if out.exists() else []
            report_json = (out / "report.json").read_text() if "report.json" in left else None
            html = (out / "report.html").read_text() if "report.html" in left else None
            if where == "report":
                rerun = _cli([*argv, "--output", str(out), "--overwrite"])
                digests = _digests(out)
        assert proc.returncode == 1, (where, proc.returncode, proc.stderr[-2000:])
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("qurate: run failed:") and "Traceback" not in proc.stderr, (where, proc.stderr)
        assert manifest is None, (where, manifest[:200])  # nothing claims success
        assert not [name for name in left if name.endswith(".tmp")]  # a failed write removes its temporary file
        if "report.json" in left:  # written whole before the disk filled, or not at all
            json.loads(report_json)
        if "report.html" in left:
            assert html.rstrip().endswith("</html>"), where
        if where == "report":
            assert rerun.returncode == 0, rerun.stderr[-2000:]
            assert digests == (rows_digest(read_rows(clean, "mixture")), rows_digest(read_rows(clean, "docs")), True)


# ---- 6. validation at start-up ---------------------------------------------------------------------------------

@pytest.mark.parametrize("yaml_text, words", [
    ("heuristics:\n  fineweb:\n    line_punct_thr: 5\n", "heuristics.fineweb.line_punct_thr"),
    ("heuristics:\n  fineweb:\n    line_punct_thr: -0.1\n", "heuristics.fineweb.line_punct_thr"),
    ("heuristics:\n  gopher_repetition:\n    dup_line_frac: 1.5\n", "dup_line_frac"),
    ("heuristics:\n  gopher_quality:\n    min_doc_words: -3\n", "min_doc_words"),
    ("langid:\n  allow: [en, xx]\n", "'xx'"),
    ("output:\n  component_key: no_such_field\n", "component_key"),
    ("seed: 1\nseed: 2\n", "duplicate key 'seed'"),
    ("input:\n  text_field: body\n  text_field: text\n", "duplicate key 'text_field'"),
])
def test_validation_rejects_bad_recipes_at_start_up(tmp_path, capsys, yaml_text, words):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml_text)
    tiny = write_jsonl(tmp_path / "tiny.jsonl", [{"text": "one doc"}])  # a missed check must not run for long
    assert run_cli(["run", str(recipe), "--input", str(tiny), "--output", str(tmp_path / "o"), "--stages", ""]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and err.count("\n") == 0, err
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_validation_rejects_an_alias_bomb_and_a_huge_recipe(tmp_path, capsys):
    # 9 levels of 9 aliases each: 9^9 = 387 million values from a few hundred bytes
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    assert bomb.stat().st_size < 600
    assert run_cli(["run", str(bomb), "--output", str(tmp_path / "o")]) == 2
    assert "aliases" in capsys.readouterr().err
    huge = tmp_path / "huge.yaml"
    huge.write_text("seed: 0\n" + "# padding\n" * 200_000)
    assert run_cli(["run", str(huge), "--output", str(tmp_path / "o")]) == 2
    assert "larger than" in capsys.readouterr().err


def test_validation_checks_filters_and_paths_before_beam_starts(corpus_slice, tmp_path, capsys):
    cases = {
        "heuristics:\n  custom:\n    - name: bad\n      filter: math.pi\n": "heuristics.custom",
        "heuristics:\n  custom:\n    - name: bad\n      filter: no_such_module_xyz.f\n": "no_such_module_xyz",
        "tokenizer:\n  name: /no/such/tokenizer.json\n": "tokenizer.name",
        "decontam:\n  files:\n    - path: /no/such/bench.jsonl\n": "/no/such/bench.jsonl",
    }
    for text, words in cases.items():
        recipe = tmp_path / "r.yaml"
        recipe.write_text(text)
        out = tmp_path / "o"
        code = run_cli(["run", str(recipe), "--input", str(corpus_slice), "--output", str(out),
                        "--stages", "heuristics,decontam"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and words in err and "Traceback" not in err, (text, code, err)
        assert not (out / "mixture").exists()


# ---- 7. smaller items ----------------------------------------------------------------------------------------

def test_small_line_splitting_of_a_huge_line_is_exact_and_bounded():
    """The split joins a line's pieces once (the old one re-copied the growing line for every 64 KiB chunk,
    675 s for 200 MB; bench/line_split.py measures it). Here: exactness at 64 MiB and the over-long line cap."""
    from qurate.textlines import CHUNK_BYTES, LongLine, count_records, iter_lines

    line = b'{"text": "' + b"x" * (64 << 20) + b'"}'
    data = b'{"a": 1}\n' + line + b"\n" + b'{"b": 2}'
    chunks = [data[i:i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)]
    lines = list(iter_lines(chunks))
    assert [len(x) for x in lines] == [9, len(line) + 1, 8] and lines[1][:-1] == line
    capped = list(iter_lines(chunks, max_line_bytes=1 << 20))
    assert isinstance(capped[1], LongLine) and capped[1].size == len(line) + 1 and len(capped[1].head) == 1 << 20
    assert capped[0] == b'{"a": 1}\n' and capped[2] == b'{"b": 2}'
    assert count_records(chunks, 1 << 20) == (3, None)


def test_small_ctrl_c_exits_130_with_one_line(tmp_path):
    # The input is a named pipe nobody writes to: the run blocks in its read, so Ctrl-C lands mid-pipeline.
    fifo = tmp_path / "input.jsonl"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "qurate.pipelines.cli", "run", _recipe(tmp_path), "--input",
                             str(fifo), "--output", str(out), "--stages", ""],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "running the pipeline" not in _peek(out) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # Beam is inside the read now
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == "qurate: interrupted", stderr[-3000:]
    assert not (out / "manifest.json").exists()


def _peek(out: Path) -> str:
    return "running the pipeline" if (out / "_stats" / "launch.json").exists() else ""


# ---- 4. transient vs permanent (the stage side is in tests/test_replay.py) ------------------------------------

def test_reader_retries_a_transient_error_and_resumes_after_what_it_gave(monkeypatch):
    from qurate.pipelines import read_file

    monkeypatch.setattr(read_file, "READ_BACKOFF_S", 0.0)
    opened = []

    def records(fail_at: int | None, error: type[Exception]):
        def make():
            opened.append(1)
            for i in range(5):
                if i == fail_at and len(opened) == 1:
                    raise error("the store hiccupped")
                yield i
        return make

    assert list(read_file._retrying(records(3, ConnectionError), "f")) == [0, 1, 2, 3, 4] and len(opened) == 2
    opened.clear()
    got = []
    with pytest.raises(ValueError):  # a permanent error is not retried
        for item in read_file._retrying(records(3, ValueError), "f"):
            got.append(item)
    assert got == [0, 1, 2] and len(opened) == 1


def test_dead_letter_rows_are_always_writable():
    from qurate.pipelines.schema import DEAD_LETTER_SCHEMA
    from qurate.pipelines.shards import rows_to_table
    from qurate.pipelines.sinks import dead_letter_row

    entries = [{"stage": "x", "error": "lone \ud800 in a message", "position": True, "id": 7, "raw": "ok"},
               {"stage": None, "error": None, "raw_chars": "12", "source": {"a": 1}}]
    table = rows_to_table([dead_letter_row(e) for e in entries], DEAD_LETTER_SCHEMA)
    rows = table.to_pylist()
    assert rows[0]["error"] == "lone \\ud800 in a message" and rows[0]["position"] is None and rows[0]["id"] == "7"
    assert rows[1]["stage"] == "unknown" and rows[1]["raw_chars"] is None and rows[1]["source"] == "{'a': 1}"
