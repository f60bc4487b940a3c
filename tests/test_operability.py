"""qurate as a data engineer operates it (issue 14): runs that fail when their output is broken, a command line
that refuses what it does not know, settings that can be discovered and overridden, secrets that never reach the
outputs, inputs that never swallow an earlier run, outputs that load with `datasets`, and `qurate finalize` for a
run whose launcher exited."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from conftest import read_rows, run_cli, write_jsonl

QURATE = Path(sys.executable).with_name("qurate")  # the installed console script
FAST_STAGES = "langid,heuristics"  # enough stages for rejections, quick on the slice


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def _qurate(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(QURATE), *args], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**os.environ, **(env or {})})


# ------------------------------------------------------------------------------------------ settings you can find


def _undescribed(schema: dict) -> list[str]:
    """Every property of every object in a JSON Schema that has no description (``$defs`` included)."""
    missing = []
    objects = [("", schema), *((f"$defs.{name}", d) for name, d in schema.get("$defs", {}).items())]
    for where, obj in objects:
        for name, prop in (obj.get("properties") or {}).items():
            if not str(prop.get("description") or "").strip():
                missing.append(f"{where or 'Recipe'}.{name}")
    return missing


def test_every_recipe_field_has_a_description():
    from qurate.pipelines.recipe_dump import recipe_schema

    schema = recipe_schema()
    assert len(schema["properties"]) >= 8 and schema.get("$defs")  # the walk sees the stage sections too
    assert _undescribed(schema) == []


def test_the_schema_walk_catches_a_field_without_description():
    schema = {"properties": {"a": {"type": "int", "description": "x"}},
              "$defs": {"S": {"properties": {"b": {"type": "int"}, "c": {"description": " "}}}}}
    assert _undescribed(schema) == ["$defs.S.b", "$defs.S.c"]


def test_recipe_prints_the_full_effective_recipe_with_descriptions(tmp_path, capsys):
    from qurate.pipelines.recipe import load_recipe

    assert run_cli(["recipe"]) == 0
    text = capsys.readouterr().out
    data = yaml.safe_load(text)
    assert set(data) >= {"seed", "input", "output", "tokenizer", "health", "langid", "heuristics", "dedup"}
    default = load_recipe()
    from qurate.pipelines.recipe import parse_recipe

    assert parse_recipe(data).model_dump(mode="json") == default.model_dump(mode="json")  # loads back, same
    assert "# the run fails when more than this share of the records read ends in the dead-letter" in text
    assert "max_dead_letter_share: 0.01" in text


def test_recipe_schema_is_json(capsys):
    assert run_cli(["recipe", "--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "Recipe" and "health" in schema["properties"]
    health = schema["$defs"]["HealthConfig"]["properties"]["max_dead_letter_share"]
    assert health["default"] == 0.01 and "dead-letter" in health["description"]


def test_set_overrides_values_repeatably(capsys):
    assert run_cli(["recipe", "--set", "seed=7", "--set", "dedup.threshold=0.7",
                    "--set", "langid.allow=[en, de]", "--set", "health.fail_on_empty_mixture=false"]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    assert data["seed"] == 7 and data["dedup"]["threshold"] == 0.7
    assert data["langid"]["allow"] == ["en", "de"] and data["health"]["fail_on_empty_mixture"] is False


@pytest.mark.parametrize("argv, expected", [
    (["recipe", "--set", "dedup.threshhold=0.7"], "did you mean 'dedup.threshold'?"),
    (["recipe", "--set", "input.textfield=body"], "did you mean 'input.text_field'?"),
    (["recipe", "--set", "outptu.dir=x"], "did you mean 'output'?"),
    (["recipe", "--set", "seed"], "--set needs key=value"),
    (["recipe", "--set", "quality.judge.api_key=sk-xyz"], "did you mean 'quality.judge.api_key_env'?"),
])
def test_an_unknown_key_suggests_the_closest_valid_one(capsys, argv, expected):
    assert run_cli(argv) == 2
    assert expected in _one_line(capsys.readouterr().err)


def test_an_unknown_key_in_a_recipe_file_suggests_too(tmp_path, capsys):
    bad = tmp_path / "r.yaml"
    bad.write_text("tokenizer:\n  append_eso: false\n")
    assert run_cli(["run", str(bad), "--output", str(tmp_path / "o")]) == 2
    assert "did you mean 'tokenizer.append_eos'?" in _one_line(capsys.readouterr().err)


# ----------------------------------------------------------------------------------- a CLI that refuses typos


def test_version_prints_and_runs_nothing(tmp_path):
    from importlib.metadata import version

    proc = _qurate("--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == f"qurate {version('qurate')}"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv", [
    ["--output=/x"],  # no command: this ran the sample into ./out and ignored the flag
    ["--input", "x.jsonl"],
    ["stages", "--verbose"],
    ["report", "OUT", "--bogus"],
    ["recipe", "--schema", "--pretty"],
    ["finalize"],
])
def test_unknown_arguments_are_an_error_anywhere(tmp_path, argv):
    proc = _qurate(*argv, cwd=tmp_path)
    assert proc.returncode == 2
    assert _one_line(proc.stderr).startswith("qurate: ")
    assert not (tmp_path / "out").exists()


def test_stages_in_the_wrong_order_name_the_canonical_order(corpus_slice, tmp_path, capsys):
    assert run_cli(["run", "--input", str(corpus_slice), "--output", str(tmp_path / "o"),
                    "--stages", "heuristics,langid"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "canonical order" in err and "langid, heuristics" in err


@pytest.mark.parametrize("make_path", [
    lambda tmp: (tmp / "a_file.txt", "is a file"),
    lambda tmp: (tmp / "a_file.txt" / "below", "not writable"),
])
def test_an_output_path_that_cannot_be_written_fails_before_beam(corpus_slice, tmp_path, capsys, make_path):
    (tmp_path / "a_file.txt").write_text("not a directory\n")
    path, expected = make_path(tmp_path)
    assert run_cli(["run", "--input", str(corpus_slice), "--output", str(path), "--stages", ""]) == 2
    err = _one_line(capsys.readouterr().err)
    assert expected in err and str(path) in err
    assert (tmp_path / "a_file.txt").read_text() == "not a directory\n"


_BLOCK_LLM = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'transformers'):
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
sys.meta_path.insert(0, Block())
from qurate.pipelines.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_missing_optional_extra_is_one_line_naming_the_install(corpus_slice, tmp_path):
    """``train-quality`` runs the transformers judge; without the `llm` extra it names the pip command."""
    proc = subprocess.run([sys.executable, "-c", _BLOCK_LLM, "train-quality", "--input", str(corpus_slice),
                           "--out", str(tmp_path / "q.npz"), "--sample", "12",
                           "--set", "quality.judge.engine=transformers"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = _one_line(proc.stderr)
    assert "pip install 'qurate[llm]'" in line and "No module named" in line


def test_missing_extra_reads_wrapped_errors():
    from qurate.pipelines.cli_exits import missing_extra

    assert "qurate[llm]" in missing_extra(ModuleNotFoundError("No module named 'torch'", name="torch"))
    wrapped = RuntimeError("Error in bundle: ... ModuleNotFoundError: No module named 'transformers.models'")
    assert "qurate[llm]" in missing_extra(wrapped)
    assert missing_extra(ModuleNotFoundError("No module named 'numpy'", name="numpy")) is None


# ---------------------------------------------------------------------------------------------------- secrets


def test_redaction_masks_secret_keys_and_values():
    from qurate.pipelines.manifest import REDACTED, redact

    data = {"judge": {"api_key": "abc", "api_key_env": "OPENAI_API_KEY", "hf_token": "x", "shard_tokens": 5,
                      "base_url": "https://user:pa55@host/v1", "note": "key sk-proj-abcdefghij0123456789 here"},
            "tokenizer": {"name": "qwen2.5"}, "list": ["hf_abcdefghijklmnopqrstuvwxyz"]}
    out = redact(data)
    assert out["judge"]["api_key"] == REDACTED and out["judge"]["hf_token"] == REDACTED
    assert out["judge"]["api_key_env"] == "OPENAI_API_KEY" and out["judge"]["shard_tokens"] == 5
    assert out["judge"]["base_url"] == f"https://user:{REDACTED}@host/v1"
    assert out["judge"]["note"] == f"key {REDACTED} here" and out["list"] == [REDACTED]
    assert out["tokenizer"] == {"name": "qwen2.5"}


# ------------------------------------------------------------------------------- one small real run, shared

SECRET = "sk-live-0123456789abcdefghijklmn"


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, corpus_slice):
    """The slice through langid and heuristics, with a secret planted in a URL of the recipe."""
    out = tmp_path_factory.mktemp("ops") / "out"
    code = run_cli(["run", "--input", str(corpus_slice), "--output", str(out), "--stages", FAST_STAGES,
                    "--set", f"quality.judge.base_url=http://me:{SECRET}@judge.local/v1"])
    assert code == 0
    return out


def test_manifest_and_report_never_hold_the_secret(small_run):
    for name in ("manifest.json", "report.json", "report.html", "_stats/launch.json"):
        assert SECRET not in (small_run / name).read_text(), name
    manifest = json.loads((small_run / "manifest.json").read_text())
    assert manifest["recipe"]["quality"]["judge"]["base_url"] == "http://me:***redacted***@judge.local/v1"


def test_load_dataset_returns_every_row_one_config_per_component(small_run, tmp_path, monkeypatch):
    import datasets
    import huggingface_hub.constants

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    manifest = json.loads((small_run / "manifest.json").read_text())
    assert any(name.endswith("-dev") for name in manifest["components"])  # the name `datasets` took for a split
    loaded = datasets.load_dataset(str(small_run / "mixture"), cache_dir=str(tmp_path / "hf"))
    assert list(loaded) == ["train"]
    assert loaded["train"].num_rows == manifest["totals"]["rows"] == len(read_rows(small_run, "mixture"))
    assert sum(loaded["train"]["n_tokens"]) == manifest["totals"]["tokens"]
    for name in sorted(manifest["components"])[:3] + [n for n in manifest["components"] if n.endswith("-dev")]:
        one = datasets.load_dataset(str(small_run / "mixture"), name, split="train", cache_dir=str(tmp_path / "hf"))
        assert one.num_rows == manifest["components"][name]["rows"], name


def test_components_map_back_to_their_sources(small_run):
    manifest = json.loads((small_run / "manifest.json").read_text())
    values = {name: c["value"] for name, c in manifest["components"].items()}
    assert len(set(values.values())) == len(values)  # one folder per source, never shared
    by_folder: dict[str, set] = {}
    for shard in (small_run / "mixture").rglob("*.parquet"):
        by_folder.setdefault(shard.parent.name, set()).update(pq.read_table(shard).column("source").to_pylist())
    assert by_folder == {name: {value} for name, value in values.items()}
    card = (small_run / "mixture" / "README.md").read_text()
    assert all(f"| {name} | {value} |" in card for name, value in values.items())


def test_mixture_parquet_names_tokenizer_vocab_and_eos(small_run):
    shard = next((small_run / "mixture").rglob("*.parquet"))
    meta = pq.read_schema(shard).metadata
    assert meta[b"qurate.tokenizer"] == b"qwen2.5"
    assert meta[b"qurate.eos_id"] == b"151643" and meta[b"qurate.vocab_size"] == b"151644"
    assert max(max(t) for t in pq.read_table(shard).column("tokens").to_pylist()) < 151644


def test_finalize_after_deleting_the_manifest_reproduces_it(small_run, capsys):
    """In place, as after a detached run: the launcher never wrote manifest, card nor report."""
    out = small_run
    before = json.loads((out / "manifest.json").read_text())
    card_before = (out / "mixture" / "README.md").read_text()
    for name in ("manifest.json", "report.json", "report.html", "mixture/README.md"):
        (out / name).unlink()
    assert run_cli(["finalize", str(out)]) == 0
    assert "conservation holds" in capsys.readouterr().out
    after = json.loads((out / "manifest.json").read_text())
    for m in (before, after):
        m.pop("created")
    assert after == before
    assert (out / "report.html").stat().st_size > 10_000 and (out / "report.json").exists()
    card = (out / "mixture" / "README.md").read_text()
    assert card.split("built ")[0] == card_before.split("built ")[0]  # same card, but for the timestamp


def test_finalize_without_the_workers_stats_is_a_clear_error(small_run, tmp_path, capsys):
    out = tmp_path / "unfinished"
    shutil.copytree(small_run, out)
    (out / "_stats" / "stats.jsonl").unlink()  # the pipeline has not finished
    assert run_cli(["finalize", str(out)]) == 2
    assert "has not finished" in _one_line(capsys.readouterr().err)
    assert run_cli(["finalize", str(tmp_path)]) == 2  # no run at all
    assert "holds no finished pipeline" in _one_line(capsys.readouterr().err)


# ------------------------------------------------------------------------------------------------------ input


def test_a_directory_holding_an_old_run_is_refused(small_run, corpus_slice, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(corpus_slice, data / "docs.jsonl")
    shutil.copytree(small_run, data / "last_run")
    assert run_cli(["run", "--input", str(data), "--output", str(tmp_path / "o")]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "qurate output folder" in err and "last_run" in err
    assert not (tmp_path / "o").exists()


def test_a_directory_input_reads_only_data_files(corpus_slice, tmp_path):
    from qurate.pipelines.input_files import match_input_files

    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    shutil.copy(corpus_slice, data / "a.jsonl")
    shutil.copy(corpus_slice, data / "sub" / "b.jsonl")
    for name in ("notes.txt", "archive.tar.gz", "manifest.json", "sub/c.csv"):
        (data / name).write_text("{}\n")
    found = match_input_files([str(data)])
    assert [Path(p).relative_to(data).as_posix() for p in found] == ["a.jsonl", "sub/b.jsonl"]


# --------------------------------------------------------------------------------------------------- run health


def test_a_run_whose_records_all_go_to_the_dead_letter_fails(tmp_path, capsys):
    """A file whose text is under `content`: every record is dead-lettered; the run exits 1, says why on stderr,
    and still writes its outputs."""
    src = write_jsonl(tmp_path / "content.jsonl", [{"id": f"d{i}", "content": f"text {i}"} for i in range(20)])
    out = tmp_path / "out"
    assert run_cli(["run", "--input", str(src), "--output", str(out), "--stages", FAST_STAGES]) == 1
    err = capsys.readouterr().err
    assert "RUN FAILED: the mixture is empty" in err
    assert "20 of 20 records (100.0%) went to the dead letter" in err
    assert "top dead-letter reasons" in err and "input.text_field" in err
    assert (out / "manifest.json").exists() and len(read_rows(out, "dead_letter")) == 20


def test_an_empty_mixture_fails_with_the_top_rejection_reasons(corpus_slice, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(["run", "--input", str(corpus_slice), "--output", str(out), "--stages", "langid",
                    "--set", "langid.allow=[yo]"]) == 1
    err = capsys.readouterr().err
    assert "RUN FAILED: the mixture is empty" in err
    assert "top rejection reasons" in err and "langid: lang_not_allowed" in err
    assert (out / "report.html").exists()


def test_the_health_limits_are_recipe_settings(tmp_path, capsys):
    records = [{"id": f"d{i}", "text": "A plain sentence with enough words to be kept by nothing at all."}
               for i in range(20)] + [{"id": "bad", "content": "no text field"}]
    src = write_jsonl(tmp_path / "mixed.jsonl", records)
    args = ["run", "--input", str(src), "--stages", ""]
    assert run_cli([*args, "--output", str(tmp_path / "a")]) == 1  # 1 of 21 dead-lettered: 4.8 % > 1 %
    assert "more than health.max_dead_letter_share (1.0%)" in capsys.readouterr().err
    assert run_cli([*args, "--output", str(tmp_path / "b"), "--set", "health.max_dead_letter_share=0.05"]) == 0
    err = capsys.readouterr().err
    assert "RUN FAILED" not in err and "top dead-letter reasons (1 records" in err  # always shown


# ------------------------------------------------------------------------------------------------------ progress


def test_live_counts_come_from_beam_metrics_after_each_bundle(corpus_slice, tmp_path):
    from qurate.pipelines.cli_progress import Progress
    from qurate.pipelines.runners import watch_counters

    seen: list[dict] = []
    progress = Progress(["langid", "heuristics"], live=False)
    unwatch = watch_counters(lambda counters: (seen.append(counters), progress._add(counters)))
    try:
        assert run_cli(["run", "--input", str(corpus_slice), "--output", str(tmp_path / "o"),
                        "--stages", FAST_STAGES]) == 0
    finally:
        unwatch()
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert len(seen) > 1  # told bundle by bundle, not once at the end
    assert progress.kept["read"] == manifest["input"]["records"]
    for row in manifest["stages"]:
        assert progress.kept[row["stage"]] == row["kept"]
        assert progress.rejected.get(row["stage"], 0) == row["rejected"]
    line = progress.line()
    assert f"read {manifest['input']['records']:,}" in line and "heuristics" in line and "docs/s" in line
