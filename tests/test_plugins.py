"""Custom filters from a separate distribution: tests/plugin_example is built and pip-installed into this venv,
named in a recipe by entry point (group ``qurate.filters``) and by dotted path, and run by the installed
``qurate`` command; nothing in qurate changes. Uninstalled at the end."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SAMPLE_CORPUS, read_rows, write_jsonl

PLUGIN_SRC = Path(__file__).parent / "plugin_example"
QURATE = Path(sys.executable).with_name("qurate")
MIN_CHARS = 1500


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """Builds and installs the example plugin (from a copy, so no build files land in the repo)."""
    src = tmp_path_factory.mktemp("plugin") / "plugin_example"
    shutil.copytree(PLUGIN_SRC, src)
    proc = _pip("install", "--no-deps", "--no-build-isolation", "--no-index", "-q", str(src))
    assert proc.returncode == 0, proc.stderr[-3000:]
    try:
        yield "qurate-plugin-example"
    finally:
        _pip("uninstall", "-y", "-q", "qurate-plugin-example")


def _sample_docs(n: int) -> list[dict]:
    with gzip.open(SAMPLE_CORPUS, "rt", encoding="utf-8") as handle:
        docs = [json.loads(line) for line in handle if line.strip()]
    return docs[:: len(docs) // n][:n]


def _recipe(path: Path, custom: list[dict]) -> Path:
    off = {"enabled": False}
    recipe = {"stages": ["heuristics"], "heuristics": {
        "gopher_quality": off, "gopher_repetition": off, "fineweb": off, "c4": off, "custom": custom},
        "health": {"max_dead_letter_share": 0.1}}  # one poisoned doc in ~30 is this test's point
    path.write_text(json.dumps(recipe))  # JSON is YAML
    return path


def test_entry_point_and_dotted_path_filters_run_inside_qurate(plugin, tmp_path):
    docs = _sample_docs(30)
    long_doc = next(d for d in docs if len(d["text"]) >= MIN_CHARS)
    docs.append({**long_doc, "id": "poisoned", "text": long_doc["text"] + "\nPOISON"})
    docs.append({**long_doc, "id": "marked", "text": long_doc["text"] + "\nDROP-ME"})
    data = write_jsonl(tmp_path / "in.jsonl", docs)
    recipe = _recipe(tmp_path / "recipe.yaml", [
        {"name": "min_chars", "filter": "min_chars", "params": {"min_chars": MIN_CHARS}},  # entry point, class
        {"name": "marked", "filter": "qurate_plugin_example.drop_marked", "params": {"marker": "DROP-ME"}},
        {"name": "fragile", "filter": "fragile"},  # entry point, function that raises on one doc
    ])
    out = tmp_path / "out"
    proc = subprocess.run([str(QURATE), "run", str(recipe), "--input", str(data), "--output", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    by_id = {d["id"]: d for d in docs}
    rejected = {r["id"]: r for r in read_rows(out, "rejected")}
    kept = {r["id"]: r for r in read_rows(out, "docs")}
    dead = read_rows(out, "dead_letter")
    short = [d["id"] for d in docs if len(d["text"]) < MIN_CHARS]
    assert short and set(short) < set(rejected)
    for doc_id in short:
        n = len(by_id[doc_id]["text"])
        assert rejected[doc_id]["stage"] == "heuristics"
        assert rejected[doc_id]["reason"] == f"min_chars.too_short: {n} chars < {MIN_CHARS}"
    assert rejected["marked"]["reason"] == "marked: marker 'DROP-ME' found"
    # the raising filter sent exactly its one document to the dead-letter output, with its error
    assert [(e["id"], e["stage"]) for e in dead] == [("poisoned", "heuristics")]
    assert "ValueError: cannot handle a document with POISON" in dead[0]["error"]
    # everything else was kept, annotated by the class filter
    assert set(kept) == set(by_id) - set(rejected) - {"poisoned"}
    assert kept and all(json.loads(r["meta"])["char_count"] == len(r["text"]) for r in kept.values())
    report = json.loads((out / "report.json").read_text())
    rules = {r["rule"]: r["docs"] for r in report["rejections"] if r["stage"] == "heuristics"}
    assert rules == {"min_chars.too_short": len(short), "marked": 1}


def test_unknown_filter_is_a_recipe_error_naming_the_key(plugin, tmp_path):
    data = write_jsonl(tmp_path / "in.jsonl", _sample_docs(3))
    recipe = _recipe(tmp_path / "bad.yaml", [{"name": "x", "filter": "min_chars"},
                                             {"name": "y", "filter": "no_such_filter_anywhere"}])
    proc = subprocess.run([str(QURATE), "run", str(recipe), "--input", str(data), "--output",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert "heuristics.custom.1.filter" in lines[-1] and "no_such_filter_anywhere" in lines[-1], proc.stderr
