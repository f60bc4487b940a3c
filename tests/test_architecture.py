"""The three layers (issue 9): the core and the stage libraries never import the wiring, Beam or pyarrow; the report
builds no PTransform; a whole stage plugs in through the ``qurate.stages`` entry point with one module."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, read_rows, write_jsonl

LIBRARIES = ["qurate", "filters", "dedup", "classifiers", "synth", "decontam"]
QURATE = Path(sys.executable).with_name("qurate")

# Runs in a fresh interpreter: importing apache_beam or pyarrow (or any qurate.pipelines module) raises there.
_BLOCKED_IMPORTS = r'''
import importlib, importlib.abc, pkgutil, sys

BLOCKED = ("apache_beam", "pyarrow", "qurate.pipelines")

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError(f"{name} is blocked: a stage library must not import it")
        return None

sys.meta_path.insert(0, Block())
import qurate
names = []
for package in ("qurate", "qurate.filters", "qurate.dedup", "qurate.classifiers", "qurate.synth",
                "qurate.decontam"):
    module = importlib.import_module(package)
    names.append(package)
    for info in pkgutil.iter_modules(module.__path__, package + "."):
        if info.name == "qurate.pipelines":
            continue
        importlib.import_module(info.name)
        names.append(info.name)
print(len(names))
'''


def test_stage_libraries_import_without_beam_pyarrow_or_the_wiring():
    proc = subprocess.run([sys.executable, "-c", _BLOCKED_IMPORTS], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout.strip()) >= 20  # every library module was imported


def test_no_library_names_the_wiring_package():
    offenders = [f"{path.relative_to(REPO)}:{i}"
                 for lib in LIBRARIES for path in (REPO / lib).rglob("*.py")
                 for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if "qurate.pipelines" in line and lib != "qurate"]
    core = [f"{path.relative_to(REPO)}" for path in (REPO / "qurate").rglob("*.py")
            if "qurate.pipelines" in path.read_text(encoding="utf-8")]
    assert offenders == [] and core == []


def test_every_stage_is_declared_once_with_a_section_in_the_recipe():
    from qurate.pipelines import registry
    from qurate.pipelines.recipe import Recipe

    names = registry.available()
    assert len(names) == len(set(names))
    for spec in registry.specs():
        assert Recipe.model_fields[spec.name].annotation is spec.config
        assert spec.description, f"stage {spec.name} has no description"


def test_the_report_builds_no_ptransform(monkeypatch, tmp_path, corpus_slice):
    """``qurate report`` rebuilds every section from the stats alone."""
    import apache_beam as beam
    from conftest import run_cli
    from qurate.pipelines.report import build_report

    out = tmp_path / "out"
    assert run_cli(["run", "--input", str(corpus_slice), "--output", str(out)]) == 0
    before = json.loads((out / "report.json").read_text())

    def no_transforms(self, *args, **kwargs):
        raise AssertionError("the report built a PTransform")

    monkeypatch.setattr(beam.PTransform, "__init__", no_transforms)
    report = build_report(str(out))
    assert set(report["stages"]) == set(before["stages"]) and report["stages"]
    assert report["stages"] == before["stages"]


@pytest.fixture(scope="module")
def stage_plugin(tmp_path_factory):
    """Builds and installs tests/stage_plugin_example (from a copy, so no build files land in the repo)."""
    src = tmp_path_factory.mktemp("stage_plugin") / "stage_plugin_example"
    shutil.copytree(Path(__file__).parent / "stage_plugin_example", src)
    pip = [sys.executable, "-m", "pip"]
    proc = subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", "--no-index", "-q", str(src)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    try:
        yield
    finally:
        subprocess.run([*pip, "uninstall", "-y", "-q", "qurate-stage-example"], capture_output=True, timeout=300)


def test_a_stage_from_another_package_runs_in_the_pipeline(stage_plugin, tmp_path):
    """One module and one entry-point line add a stage: its section is in the recipe, it runs in canonical order,
    its rejects land in rejected/<stage> and are counted by conservation, and its report section is built."""
    docs = [{"id": f"d{i}", "text": " ".join(["word"] * (10 * i + 5)) + f" doc {i}.", "source": "web"}
            for i in range(12)]
    data = write_jsonl(tmp_path / "in.jsonl", docs)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(json.dumps({"stages": ["min_words"], "min_words": {"min_words": 60}}))
    out = tmp_path / "out"
    listed = subprocess.run([str(QURATE), "stages"], capture_output=True, text=True, timeout=300)
    assert "min_words" in listed.stdout
    proc = subprocess.run([str(QURATE), "run", str(recipe), "--input", str(data), "--output", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rejected = read_rows(out, "rejected")
    expected_rejects = {d["id"] for d in docs if len(d["text"].split()) < 60}
    assert {r["id"] for r in rejected} == expected_rejects
    assert all(r["stage"] == "min_words" and r["reason"].startswith("too_few_words: ") for r in rejected)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["conservation"]["ok"] is True
    assert [s["stage"] for s in manifest["stages"]] == ["min_words"]
    assert manifest["stages"][0]["rejected"] == len(expected_rejects)
    report = json.loads((out / "report.json").read_text())
    assert report["stages"]["min_words"]["summary"]["rejected"] == len(expected_rejects)
