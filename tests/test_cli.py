"""The command line as a user meets it: recipe and option errors (exit 2, one line naming the key), the bare
``qurate run`` on the bundled sample (full output layout, conservation, loadable shards), ``qurate report``."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import apache_beam as beam
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SLICE_DOCS, read_rows, run_cli
from qurate.hashing import stable_hash
from qurate.section import Section
from qurate.spec import StageSpec

QURATE = Path(sys.executable).with_name("qurate")  # the installed console script
EOS = 151643


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err, err
    return err


def test_unknown_recipe_key_exits_2_with_one_line_naming_it(tmp_path):
    """Acceptance 5, through the installed ``qurate`` script as a user runs it."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\noutptu:\n  dir: x\n")
    proc = subprocess.run([str(QURATE), "run", str(bad)], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "outptu" in lines[0] and "unknown key" in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("yaml_text, names", [
    ("input:\n  textfield: body\n", "input.textfield"),  # nested unknown key
    ("output:\n  shard_tokens: -5\n", "output.shard_tokens"),  # bad value
    ("tokenizer:\n  append_eos: perhaps\n", "tokenizer.append_eos"),
    ("seed: [1, 2]\n", "seed"),
    ("stages: [langid, no_such_stage]\n", "no_such_stage"),
    ("input: [a.jsonl]\n", "input"),  # a section that is not a mapping
    ("seed: 1\n  indented: wrong\n", "not valid YAML"),
])
def test_bad_recipes_exit_2_naming_the_key(tmp_path, capsys, yaml_text, names):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml_text)
    assert run_cli(["run", str(bad), "--output", str(tmp_path / "o")]) == 2
    assert names in _one_line_error(capsys)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, names", [
    (["--stages", "no_such_stage"], "no_such_stage"),
    (["--stages", "langid,bogus"], "bogus"),
    (["--stage", "langid"], "--stage"),  # a typo of a qurate option is not passed to Beam silently
    (["--direct_num_worker", "2"], "--direct_num_worker"),
    (["missing_recipe.yaml"], "missing_recipe.yaml"),
])
def test_bad_command_lines_exit_2_naming_the_problem(tmp_path, capsys, argv, names):
    assert run_cli(["run", *argv, "--output", str(tmp_path / "o")]) == 2
    assert names in _one_line_error(capsys)


def test_beam_options_with_values_are_not_taken_for_the_recipe():
    from qurate.pipelines.cli_parser import split_run_args

    ours, beam = split_run_args(["--direct_num_workers", "2", "my.yaml", "--stages", "langid",
                                 "--direct_running_mode=multi_processing", "--save_main_session", "--debug"])
    assert ours == ["my.yaml", "--stages", "langid", "--debug"]
    assert beam == ["--direct_num_workers", "2", "--direct_running_mode=multi_processing", "--save_main_session"]


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """``qurate run`` with no arguments in an empty directory, as a newcomer runs it."""
    cwd = tmp_path_factory.mktemp("bare_run")
    started = time.monotonic()
    proc = subprocess.run([str(QURATE), "run"], capture_output=True, text=True, cwd=cwd, timeout=600)
    seconds = time.monotonic() - started
    print(f"bare `qurate run` took {seconds:.1f} s")  # acceptance 1 asks < 120 s on 2 cores (see report)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd / "out", proc


def test_bare_run_writes_the_full_layout(sample_run):
    out, proc = sample_run
    assert "Traceback" not in proc.stderr
    assert "conservation holds" in proc.stdout and "mixture" in proc.stdout  # the summary
    assert "stages: read," in proc.stderr  # what is about to run, before it runs
    manifest = json.loads((out / "manifest.json").read_text())
    for name in ("report.json", "report.html"):
        assert (out / name).stat().st_size > 1000
    shards = sorted((out / "mixture").rglob("*.parquet"))
    assert shards and all(re.fullmatch(r"part-\d{5}-of-\d{5}\.parquet", p.name) for p in shards)
    assert {p.parent.name for p in shards} == set(manifest["components"])
    listed = {s["path"] for c in manifest["components"].values() for s in c["shards"]}
    assert listed == {p.relative_to(out).as_posix() for p in shards}
    assert list((out / "docs").glob("part-*-of-*.parquet"))

    mixture, docs = read_rows(out, "mixture"), read_rows(out, "docs")
    rejected, dead = read_rows(out, "rejected"), read_rows(out, "dead_letter")
    kept = [r for r in mixture if r["repeat"] == 0]
    records = manifest["input"]["records"]
    assert records == 2481  # every line of the bundled sample
    c = manifest["conservation"]
    assert len(kept) + len(rejected) + len(dead) == records + c["added_by_stages"]
    assert c["ok"] and c["kept"] == len(kept) == len(docs)
    assert manifest["totals"]["tokens"] == sum(r["n_tokens"] for r in mixture)
    assert {r["stage"] for r in rejected} == {s["stage"] for s in manifest["stages"] if s["rejected"]}
    rejected_dirs = {p.name for p in (out / "rejected").iterdir()} if (out / "rejected").exists() else set()
    assert rejected_dirs == {s["stage"] for s in manifest["stages"] if s["rejected"]}
    assert (out / "dead_letter").exists() == bool(dead)
    assert all(r["reason"] and r["stage"] for r in rejected)


def test_shards_load_with_pyarrow_pandas_and_datasets(sample_run, tmp_path, monkeypatch):
    out, _ = sample_run
    manifest = json.loads((out / "manifest.json").read_text())
    files = sorted(str(p) for p in (out / "mixture").rglob("*.parquet"))
    table = pq.read_table(files[0])
    tokens_type = table.schema.field("tokens").type
    assert pa.types.is_list(tokens_type) and tokens_type.value_type == pa.uint32()
    frame = pd.concat(pd.read_parquet(f) for f in files)
    assert len(frame) == manifest["totals"]["rows"]
    assert frame["n_tokens"].sum() == manifest["totals"]["tokens"]
    assert all(int(t[-1]) == EOS for t in frame["tokens"])

    import datasets
    import huggingface_hub.constants

    # Offline, whether or not datasets was imported before: local Parquet files need no hub.
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    ds = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf"))
    assert ds.num_rows == manifest["totals"]["rows"]
    assert sum(ds["n_tokens"]) == manifest["totals"]["tokens"]
    row = ds[0]
    assert row["tokens"][-1] == EOS and len(row["tokens"]) == row["n_tokens"]


def test_report_rebuilds_and_escapes_document_text(sample_run, tmp_path, capsys):
    import shutil

    src, _ = sample_run
    out = tmp_path / "copy"
    shutil.copytree(src, out)
    before = json.loads((out / "report.json").read_text())
    scripts_before = (out / "report.html").read_text().lower().count("<script")  # Plotly, report.js, chart data
    (out / "report.json").unlink()
    (out / "report.html").unlink()
    # Plant a rejected doc whose text is markup: the report must show it as text, never run it.
    planted = {"stage": "heuristics", "rule": "planted", "id": "<b>id</b>",
               "reason": "planted: <img src=x onerror=alert(1)>", "text": "<script>alert('qurate')</script> & co"}
    key = ["example", "heuristics: planted", "000", *planted.values()]  # as PickExamples writes it
    with (out / "_stats" / "stats.jsonl").open("a") as handle:
        handle.write(json.dumps([key, {"docs": 1}]) + "\n")
    assert run_cli(["report", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert planted in report["examples"]
    assert {k: v for k, v in report.items() if k != "examples"} == {
        k: v for k, v in before.items() if k != "examples"}  # rebuilt from the run's files: the same report
    assert [e for e in report["examples"] if e != planted] == before["examples"]
    # Jinja2 (markupsafe) and html.escape spell the escaped quotes differently
    page = (out / "report.html").read_text().replace("&#39;", "&#x27;").replace("&#34;", "&quot;")
    assert page.lower().count("<script") == scripts_before  # the planted text added no script
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>id</b>" not in page
    assert "&lt;script&gt;alert(&#x27;qurate&#x27;)&lt;/script&gt; &amp; co" in page
    assert before["examples"]  # the sample's rejections give real examples; they appear, escaped
    for example in before["examples"]:
        assert html.escape(example["text"], quote=True) in page
    capsys.readouterr()


def test_report_of_a_directory_without_a_run_is_a_clear_error(tmp_path, capsys):
    assert run_cli(["report", str(tmp_path)]) == 2
    assert str(tmp_path) in _one_line_error(capsys)


class _LosesDocs(beam.PTransform):
    """A deliberately broken stage: drops every other doc without rejecting it (what conservation must catch)."""

    name = "loses_docs"

    def expand(self, docs):
        return {"kept": docs | beam.Filter(lambda d: stable_hash(d["id"]) % 2 == 0)}


def build_losing_stage(config, ctx) -> beam.PTransform:
    return _LosesDocs()


class _NoConfig(Section):
    pass


def test_a_run_that_loses_docs_fails_loudly(monkeypatch, corpus_slice, tmp_path, capsys):
    from qurate.pipelines import registry

    losing = StageSpec(name="loses_docs", order=99, config=_NoConfig, build=f"{__name__}:build_losing_stage")
    specs = (*registry.specs(), losing)
    monkeypatch.setattr(registry, "specs", lambda: specs)
    out = tmp_path / "out"
    assert run_cli(["run", "--input", str(corpus_slice), "--output", str(out), "--stages", "loses_docs"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "records were lost or duplicated" in err and f"records read ({SLICE_DOCS})" in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["conservation"]["ok"] is False
    assert 0 < manifest["conservation"]["kept"] < SLICE_DOCS


def test_rejected_tokens_uncounted_are_reported_unknown_not_zero(corpus_slice, tmp_path):
    """``output.count_rejected_tokens: false`` skips the tokenizer pass over rejected docs: the same docs and
    mixture, rejected rows without token counts, and a manifest and report that say "unknown" (null), not 0."""
    runs = {}
    for counted in (True, False):
        out = tmp_path / f"counted_{counted}"
        assert run_cli(["run", "--input", str(corpus_slice), "--output", str(out), "--stages", "langid,heuristics",
                        "--set", f"output.count_rejected_tokens={str(counted).lower()}",
                        "--set", "pack.enabled=false"]) == 0
        runs[counted] = (out, json.loads((out / "manifest.json").read_text()),
                         json.loads((out / "report.json").read_text()))
    (out_on, man_on, rep_on), (out_off, man_off, rep_off) = runs[True], runs[False]
    by_id = {r["id"]: r for r in read_rows(out_on, "rejected")}
    rejected_off = read_rows(out_off, "rejected")
    assert rejected_off and {r["id"] for r in rejected_off} == set(by_id)
    assert all(r["n_tokens"] is None for r in rejected_off)
    assert all(by_id[r["id"]]["n_tokens"] > 0 for r in rejected_off if r["text"])
    assert read_rows(out_off, "mixture") == read_rows(out_on, "mixture")
    assert man_off["conservation"]["ok"] and man_off["totals"] == man_on["totals"]
    assert sum(s["rejected_tokens"] for s in man_on["stages"]) > 0
    assert [s["rejected_tokens"] for s in man_off["stages"]] == [None] * len(man_off["stages"])
    # the last row (after the last stage) is the mixture itself, known either way; earlier rows are not
    assert rep_off["funnel"][-1]["tokens_kept"] == rep_on["funnel"][-1]["tokens_kept"] > 0
    assert [f["tokens_kept"] for f in rep_off["funnel"][:-1]] == [None] * (len(rep_off["funnel"]) - 1)
    assert all(f["tokens_kept"] > rep_on["funnel"][-1]["tokens_kept"] for f in rep_on["funnel"][:-1])
    assert "count_rejected_tokens: false" in (out_off / "report.html").read_text()
