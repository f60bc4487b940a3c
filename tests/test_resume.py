"""Stage checkpoints and ``qurate run --resume`` (issue 17): a checkpointed run writes what a single-graph run
writes; a run killed after dedup resumes after dedup, reuses the earlier stages' files untouched and ends with the
same outputs; a changed section re-runs that stage and the later ones only; a damaged checkpoint is run again."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import run_cli
from qurate.pipelines.checkpoints import decode_record, encode_record, find_resume_point
from qurate.pipelines.recipe import load_recipe
from qurate.pipelines.run import clear_outputs, plan_run
from qurate.pipelines.segments import stage_checks

STAGES = "langid,heuristics,dedup,decontam"
COMPARED = ("mixture", "docs", "rejected", "dead_letter")


@pytest.fixture(scope="module")
def corpus(corpus_slice: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real slice plus a broken line and a repeated id: the read stage's dead-letter path is checkpointed
    too."""
    lines = corpus_slice.read_bytes().splitlines()
    first = json.loads(lines[0])
    path = tmp_path_factory.mktemp("resume") / "corpus.jsonl"
    path.write_bytes(b"\n".join([*lines, b'{"id": "broken", "text": ', json.dumps(first).encode()]) + b"\n")
    return path


def _run(corpus: Path, out: Path, *extra: str, stages: str = STAGES) -> int:
    return run_cli(["run", "--input", str(corpus), "--output", str(out), "--stages", stages,
                    "--set", "health.max_dead_letter_share=0.05", *extra])  # 2 of 122 records: on purpose


def _outputs(out: Path) -> dict[str, str]:
    """sha256 of every output data file (Parquet; the dataset card holds a timestamp), by its path in ``out``."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for sub in COMPARED for p in sorted((out / sub).rglob("*.parquet"))}


def _stable_manifest(out: Path) -> dict:
    """The manifest without its time, the folder and export paths; the recipe fingerprint ignores checkpoints."""
    manifest = json.loads((out / "manifest.json").read_text())
    for key in ("created", "export"):
        manifest.pop(key)
    for key in ("dir", "checkpoints"):
        manifest["recipe"]["output"].pop(key)
    return manifest


def _stats(out: Path) -> str:
    return (out / "_stats" / "stats.jsonl").read_text().replace(str(out), "OUT")


def _same_run(out: Path, reference: Path) -> None:
    assert _outputs(out) == _outputs(reference)
    assert _stable_manifest(out) == _stable_manifest(reference)
    assert _stats(out) == _stats(reference)


def _stage_files(out: Path, *stages: str) -> dict[str, tuple[int, int]]:
    """(inode, mtime in ns) of every checkpoint file of ``stages``: a file re-run would be a new file."""
    return {str(p): (p.stat().st_ino, p.stat().st_mtime_ns) for stage in stages
            for p in sorted((out / "_stages").glob(f"*-{stage}/**/*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("single") / "out"
    assert _run(corpus, out, "--set", "output.checkpoints=off") == 0
    assert not (out / "_stages").exists()
    return out


@pytest.fixture(scope="module")
def checkpointed(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("chained") / "out"
    assert _run(corpus, out, "--set", "output.checkpoints=on") == 0
    return out


def test_checkpointed_run_writes_what_a_single_graph_run_writes(checkpointed: Path, reference: Path) -> None:
    _same_run(checkpointed, reference)
    assert _stable_manifest(reference)["totals"]["dead_letter"] == 2  # the broken line and the repeated id
    names = sorted(p.name for p in (checkpointed / "_stages").iterdir())
    assert names == ["01-langid", "02-heuristics", "03-dedup", "04-decontam"]
    langid = json.loads((checkpointed / "_stages" / "01-langid" / "manifest.json").read_text())
    assert langid["counts"]["dead_letter"]["rows"] == 2
    assert langid["counts"]["kept"]["rows"] + langid["counts"]["rejected"]["rows"] + 2 == 122


def test_resume_after_kill_reuses_finished_stages(corpus: Path, reference: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "import sys; from qurate.pipelines.cli import main; sys.exit(main())", "run",
           "--input", str(corpus), "--output", str(out), "--stages", STAGES, "--set", "output.checkpoints=on",
           "--set", "health.max_dead_letter_share=0.05"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    marker = out / "_stages" / "03-dedup" / "manifest.json"
    try:
        while not marker.exists():
            assert proc.poll() is None, "the run ended before its dedup checkpoint was written"
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and any worker it started, at once
        proc.wait()
    assert not (out / "_stages" / "04-decontam" / "manifest.json").exists()
    assert not (out / "manifest.json").exists()
    before = _stage_files(out, "langid", "heuristics", "dedup")

    assert _run(corpus, out, "--resume") == 0
    err = capsys.readouterr().err
    assert "resuming after dedup: read, langid, heuristics, dedup are reused" in err, err
    assert _stage_files(out, "langid", "heuristics", "dedup") == before
    _same_run(out, reference)


def test_changed_section_reruns_that_stage_and_later_ones(checkpointed: Path, corpus: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    shutil.copytree(checkpointed, out)
    before = _stage_files(out, "langid", "heuristics", "dedup")
    decontam = _stage_files(out, "decontam")

    assert _run(corpus, out, "--resume", "--set", "decontam.min_ratio=0.7") == 0
    err = capsys.readouterr().err
    assert "resuming after dedup" in err and "decontam runs again (its recipe section" in err, err
    assert _stage_files(out, "langid", "heuristics", "dedup") == before
    after = _stage_files(out, "decontam")
    assert after and all(after[path] != decontam.get(path) for path in after)  # rewritten: decontam ran again
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["recipe"]["decontam"]["min_ratio"] == 0.7


def test_damaged_checkpoint_is_run_again(checkpointed: Path, reference: Path, corpus: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    shutil.copytree(checkpointed, out)
    kept = next((out / "_stages" / "02-heuristics").glob("kept-*.parquet"))
    kept.write_bytes(kept.read_bytes()[:-100])  # a truncated file: its size no longer matches the manifest
    langid = _stage_files(out, "langid")

    assert _run(corpus, out, "--resume") == 0
    err = capsys.readouterr().err
    assert "resuming after langid" in err and "heuristics runs again (its checkpoint file kept-" in err, err
    assert _stage_files(out, "langid") == langid
    _same_run(out, reference)


def test_same_size_damage_is_found_in_the_files_a_resume_reads(checkpointed: Path, corpus: Path,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(checkpointed, out)
    recipe = load_recipe(None, {"input.paths": [str(corpus)], "output.dir": str(out),
                                "health.max_dead_letter_share": 0.05})
    checks, upstream = stage_checks(plan_run(recipe, stage_names=STAGES.split(",")))
    whole = find_resume_point(checks, upstream)
    assert [m["stage"] for m in whole.reused] == STAGES.split(","), whole.reason
    assert find_resume_point(checks, "another input").reused == []  # the first stage's upstream is the input

    # one byte changed, same size: the sha256 of the files the resumed run reads tells
    last = next((out / "_stages" / "04-decontam").glob("kept-*.parquet"))
    data = bytearray(last.read_bytes())
    data[len(data) // 2] ^= 0xFF
    last.write_bytes(bytes(data))
    point = find_resume_point(checks, upstream)
    assert [m["stage"] for m in point.reused] == ["langid", "heuristics", "dedup"]
    assert point.reason and "corrupt (sha256 differs)" in point.reason

    # a manifest edited by hand (valid JSON, no file list), or not JSON at all: that stage runs again, no traceback
    manifest = out / "_stages" / "03-dedup" / "manifest.json"
    data = json.loads(manifest.read_text())
    del data["files"]
    manifest.write_text(json.dumps(data))
    assert find_resume_point(checks, upstream).reason == "its checkpoint manifest is malformed"
    manifest.write_text("{not json")
    assert find_resume_point(checks, upstream).reason == "it has no finished checkpoint"


def test_resume_without_checkpoints_runs_from_the_start(corpus: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert _run(corpus, out, "--resume", stages="langid") == 0
    assert "no stage checkpoints" in capsys.readouterr().err and (out / "_stages" / "01-langid").is_dir()
    assert _run(corpus, out, "--resume", "--set", "output.checkpoints=off", stages="langid") == 2
    assert "--resume needs stage checkpoints" in capsys.readouterr().err


def test_overwrite_removes_checkpoints_and_resume_keeps_them(tmp_path: Path) -> None:
    out = tmp_path / "out"
    clear_outputs(str(out))
    (out / "_stages" / "01-langid").mkdir(parents=True)
    (out / "mixture").mkdir()
    clear_outputs(str(out), keep_stages=True)
    assert (out / "_stages" / "01-langid").is_dir() and not (out / "mixture").exists()
    clear_outputs(str(out))
    assert not (out / "_stages").exists()


def test_records_round_trip_exactly() -> None:
    import numpy as np

    records = [
        {"id": "a", "text": "héllo", "source": "web", "meta": {"n": 1, "x": [1.5, None, True], "nested": {"k": "v"}},
         "lang": "fr", "lang_score": 0.1 + 0.2, "quality": {"edu": 3.25}, "repeats": 2},
        {"text": "t", "id": "b", "meta": {1: "int key", "t": (1, 2), "b": b"\x00\xff", "\x00t": "tag-like"},
         "score": math.inf, "when": datetime(2024, 1, 2, tzinfo=timezone.utc), "np": np.float32(0.5)},
        {"id": "c", "text": "lone \udc80 surrogate", "stage": "langid", "reason": "x"},
        {"file": "f.jsonl", "position": 3, "stage": "read", "error": "bad \ud800", "id": None, "raw": "{"},
    ]
    for record in records:
        back = decode_record(encode_record(record))
        assert back == record and list(back) == list(record)
        assert [type(v) for v in back.values()] == [type(v) for v in record.values()]
    assert math.isnan(decode_record(encode_record({"v": math.nan}))["v"])


def test_two_pass_domains_stage_in_a_chain_writes_what_one_job_writes(corpus: Path, tmp_path: Path) -> None:
    """domains as the first stage of a chain: pass 1 reads the input (read's dead letter and stats counted
    there), labels, counts and plans, staging the labelled docs; pass 2 decides over the staged docs only. The
    outputs equal a one-job run's, and the plan folder is gone afterwards."""
    one, chain = tmp_path / "one", tmp_path / "chain"
    assert _run(corpus, one, "--set", "output.checkpoints=off", stages="domains") == 0
    assert _run(corpus, chain, "--set", "output.checkpoints=on", stages="domains") == 0
    _same_run(chain, one)
    assert _stable_manifest(one)["totals"]["dead_letter"] == 2
    folder = chain / "_stages" / "01-domains"
    assert (folder / "manifest.json").exists() and not (folder / "_plan").exists()
